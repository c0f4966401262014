"""A scaffold whose answer is a JSON object that must validate, asked again a bounded number of times.

Rubric writing and problem labelling both ask a model for a small JSON object about a problem.
Weak or careless models return prose, broken JSON or values that break the rules (points that
do not add up to 7); a fresh sample is often fine, so an invalid answer is redrawn up to
`tries` times. An answer that never validates makes a *failed* attempt whose error says what
was wrong with the last one: it is recorded, never kept as data.

Because it is a scaffold, these stages run through the same resumable pipeline as generation.
Try `t` of problem sample `i` is model sample `i * tries + t`, so each try has its own cache
entry and a resumed run replays exactly the calls already made.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from pydantic import BaseModel, ValidationError

from qednano.errors import first_error
from qednano.llm.model import Model
from qednano.llm.types import Messages, Sampling
from qednano.problems.record import Problem
from qednano.scaffolds.base import Attempt, Step

FENCE = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.DOTALL)


class InvalidAnswer(ValueError):
    """An answer that does not hold the object asked for; the message says why."""


def json_object(text: str) -> dict:
    """The JSON object in a model's answer: a fenced ```json block, else the outermost braces."""
    fenced = FENCE.findall(text)
    candidate = fenced[-1] if fenced else text[text.find("{") : text.rfind("}") + 1]
    if not candidate:
        raise InvalidAnswer("no JSON object in the answer")
    try:
        value = json.loads(candidate)
    except json.JSONDecodeError as err:
        raise InvalidAnswer(f"the JSON does not parse ({err.msg} at char {err.pos})") from err
    if not isinstance(value, dict):
        raise InvalidAnswer(f"expected a JSON object, got {type(value).__name__}")
    return value


def parse_as(record: type[BaseModel], text: str) -> BaseModel:
    """`text`'s JSON object validated as `record`, or InvalidAnswer naming the bad field."""
    try:
        return record.model_validate(json_object(text))
    except ValidationError as err:
        field, message = first_error(err)
        raise InvalidAnswer(f"field {field or '(object)'!r}: {message}") from err


class JsonAsk:
    """Ask `model` with `messages_for(problem)`; the proof is the validated object as JSON."""

    def __init__(
        self,
        name: str,
        model: Model,
        messages_for: Callable[[Problem], Messages],
        parse: Callable[[str], BaseModel],
        tries: int = 3,
        sampling: Sampling | None = None,
    ):
        self.name = name
        self.model = model
        self.messages_for = messages_for
        self.parse = parse
        self.tries = tries
        self.sampling = sampling

    async def solve(self, problem: Problem, sample_index: int = 0) -> Attempt:
        messages = self.messages_for(problem)
        steps: list[Step] = []
        trouble = ""
        for attempt in range(self.tries):
            done = await self.model.complete(messages, self.sampling, sample_index=sample_index * self.tries + attempt)
            steps.append(Step(role=self.name, turn=attempt, messages=messages, completion=done))
            if not done.ok:
                trouble = f"the model call failed ({done.error_kind}: {done.error})"
                continue
            try:
                parsed = self.parse(done.content)
            except InvalidAnswer as err:
                trouble = str(err)
                continue
            return self._attempt(problem, sample_index, steps, "ok", parsed.model_dump_json(), None)
        error = f"no valid answer in {self.tries} tries; the last: {trouble}"
        return self._attempt(problem, sample_index, steps, "failed", "", error)

    def _attempt(self, problem: Problem, index: int, steps: list[Step], status: str, proof: str, error: str | None) -> Attempt:
        final = steps[-1].completion
        return Attempt(
            problem_id=problem.id, sample_index=index, scaffold=self.name, proof=proof, status=status, error=error,
            finish_reason=final.finish_reason, steps=steps,
        )
