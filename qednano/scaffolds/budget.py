"""Per-attempt bookkeeping shared by the multi-call scaffolds: call indices, budgets, the trace.

Call indices. The cache key of a model call includes its sample index, and a sampled call's
seed is `seed + index`. Inside one attempt many calls can share a prompt (a population of N
proofs of the same problem), so each logical call needs its own index, and the index must be
the same when the attempt is run again, so that a resumed run replays every call from the
cache. `call_index(sample_index, role, turn, member)` hashes the call's place in the attempt
into [0, 2**31): deterministic, different across samples, roles, turns and members, and small
enough that `seed + index` fits any backend's seed type. A nested scaffold (RC inside RSA)
gets such an index as its own sample index and derives its calls from it in turn.

Budgets. `Budget(max_calls, max_total_tokens)` caps one attempt. It is counted from the
recorded steps (prompt + completion tokens, cached calls included), so a resumed run makes the
same stop decisions. A scaffold asks `trace.allows(k)` before each stage of k calls; when the
answer is no it stops and returns the best proof so far. A budget stop is not a failure: the
attempt keeps its status and its `finish_reason` becomes "budget". A stage whose call count is
unknown in advance (a nested generator) is let through while any budget is left, so it may
overshoot by that stage; the first generation stage always runs, since before it there is no
proof to return.

Failures. A call that still fails after the backend's own retries ends the attempt as failed,
with every step done so far kept: carrying on with a smaller population would silently change
the algorithm, and on resume the cache replays the calls that worked and retries the one that
did not.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from qednano.grading.record import Grade, ProofGrader
from qednano.llm.model import Model
from qednano.llm.types import Completion, Messages, Sampling
from qednano.problems.record import Problem
from qednano.scaffolds.base import Attempt, Scaffold, Step, attempt_from


def call_index(sample_index: int, role: str, turn: int = 0, member: int = 0) -> int:
    """The sample index of one logical call of an attempt (see the module docstring)."""
    key = f"{sample_index}|{role}|{turn}|{member}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "big") >> 1


def max_tokens(limit: int | None) -> Sampling | None:
    """Sampling that only caps the output length; None keeps the model's defaults."""
    return None if limit is None else Sampling(max_tokens=limit)


def best_first(scores: Sequence[float | None]) -> list[int]:
    """Indices by score, highest first; None (unreadable, ungraded) ranks last; ties keep order."""
    return sorted(range(len(scores)), key=lambda i: (scores[i] is None, -(scores[i] or 0.0), i))


@dataclass(frozen=True)
class Budget:
    """Caps on one attempt; None means no cap."""

    max_calls: int | None = None
    max_total_tokens: int | None = None  # prompt + completion tokens over all calls

    def __post_init__(self) -> None:
        for name in ("max_calls", "max_total_tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"Budget.{name} must be at least 1 (or None for no cap), got {value}")


@dataclass
class Call:
    """One model call a scaffold wants to make."""

    model: Model
    role: str
    messages: Messages
    sampling: Sampling | None = None
    turn: int = 0
    member: int = 0


class Trace:
    """The steps of one attempt so far, the budget they draw on, and how to finish it."""

    def __init__(self, problem: Problem, sample_index: int, scaffold: str, budget: Budget | None = None):
        self.problem = problem
        self.sample_index = sample_index
        self.scaffold = scaffold
        self.budget = budget or Budget()
        self.steps: list[Step] = []
        self.stopped: str | None = None  # why the budget first refused a stage, once it has

    @property
    def calls(self) -> int:
        return len(self.steps)

    @property
    def total_tokens(self) -> int:
        return sum(s.completion.usage.prompt_tokens + s.completion.usage.completion_tokens for s in self.steps)

    def allows(self, calls: int = 1) -> bool:
        """Whether a stage of `calls` more calls fits the budget.

        The first refusal is kept as the stop reason. A later, smaller stage may still fit (a
        final selection after a skipped round), so a refusal does not close the budget.
        """
        cap_calls, cap_tokens = self.budget.max_calls, self.budget.max_total_tokens
        refusal = None
        if cap_calls is not None and self.calls + calls > cap_calls:
            refusal = f"max_calls={cap_calls}: {self.calls} made, a stage needed {calls} more"
        elif cap_tokens is not None and self.total_tokens >= cap_tokens:
            refusal = f"max_total_tokens={cap_tokens}: {self.total_tokens} used"
        if refusal is not None and self.stopped is None:
            self.stopped = refusal
        return refusal is None

    def index(self, role: str, turn: int = 0, member: int = 0) -> int:
        return call_index(self.sample_index, role, turn, member)

    async def call(self, calls: list[Call]) -> list[Completion]:
        """Make the calls concurrently; their steps are recorded in the order given."""

        async def one(call: Call) -> Completion:
            index = self.index(call.role, call.turn, call.member)
            return await call.model.complete(call.messages, call.sampling, sample_index=index)

        done = await asyncio.gather(*(one(call) for call in calls))
        for call, completion in zip(calls, done, strict=True):
            self.steps.append(Step(role=call.role, turn=call.turn, messages=call.messages, completion=completion))
        return list(done)

    async def solve(self, generator: Scaffold, count: int, role: str = "generate", turn: int = 0) -> list[Attempt]:
        """`count` attempts of a nested scaffold, concurrently; their steps join this trace."""
        indices = [self.index(role, turn, member) for member in range(count)]
        attempts = await asyncio.gather(*(generator.solve(self.problem, i) for i in indices))
        for attempt in attempts:
            self.steps.extend(attempt.steps)
        return list(attempts)

    async def grade(self, grader: ProofGrader, proofs: list[Attempt], turn: int = 0) -> list[float | None]:
        """The proofs' scores, graded concurrently if the budget allows one call per proof.

        A score is None for a candidate without a proof (no call made), an ungraded proof, or
        every proof when the budget refuses the stage. The grader keeps its prompts to itself, so
        its calls are recorded with empty messages: enough for tokens, cost and latency.
        """
        if not self.allows(sum(p.status == "ok" for p in proofs)):
            return [None] * len(proofs)

        async def one(member: int, proof: Attempt) -> Grade | None:
            if proof.status != "ok":
                return None
            return await grader.grade(self.problem, proof.proof, self.index("grade", turn, member))

        grades = await asyncio.gather(*(one(m, p) for m, p in enumerate(proofs)))
        for grade in grades:
            for completion in grade.calls if grade is not None else []:
                self.steps.append(Step(role="grade", turn=turn, messages=[], completion=completion))
        return [g.score if g is not None and g.status == "graded" else None for g in grades]

    def candidate(self, completion: Completion) -> Attempt:
        """A proof produced inside this attempt (an aggregation, a refinement) as a candidate.

        Its steps are empty: the call is already in this trace.
        """
        return attempt_from(self.problem, self.sample_index, self.scaffold, completion, [])

    def finish(self, chosen: Attempt) -> Attempt:
        """The attempt's answer: the chosen candidate's proof and status, with the whole trace."""
        update = {
            "problem_id": self.problem.id,
            "sample_index": self.sample_index,
            "scaffold": self.scaffold,
            "steps": self.steps,
        }
        if self.stopped is not None and chosen.status != "failed":
            update["stopped_by"] = self.stopped
        return chosen.model_copy(update=update)

    def fail(self, error: str) -> Attempt:
        return Attempt(
            problem_id=self.problem.id,
            sample_index=self.sample_index,
            scaffold=self.scaffold,
            status="failed",
            error=error,
            finish_reason="error",
            steps=self.steps,
        )

    def fail_on_call(self, done: list[Completion], what: str) -> Attempt | None:
        """A failed attempt if any of these calls failed, else None."""
        for member, completion in enumerate(done):
            if not completion.ok:
                kind = f" ({completion.error_kind})" if completion.error_kind else ""
                return self.fail(f"{what} call {member} failed{kind}: {completion.error}")
        return None

    def fail_on_attempt(self, attempts: list[Attempt], what: str) -> Attempt | None:
        """A failed attempt if any nested attempt failed, else None."""
        for member, attempt in enumerate(attempts):
            if attempt.status == "failed":
                return self.fail(f"{what} {member} ({attempt.scaffold}) failed: {attempt.error}")
        return None
