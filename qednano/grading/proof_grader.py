"""The rubric grader: an LLM marks a proof 0-7 against the problem's reference and scheme.

One grader serves evaluation (IMO-ProofBench), the RL reward (score / 7) and the SFT filter,
so that training and evaluation cannot drift apart.

Prompt variants (files in `prompts/`):
- `reference`: reference solution + grading guidelines, IMO scale 7/6/1/0 (the guidelines'
  "(Partial)" items are worth 1, "(Almost)" items 6), as IMO-ProofBench grades;
- `strict`: marking scheme applied literally, a checkpoint's points only when fully achieved;
- `advisory`: marking scheme as a guide, alternative methods mapped onto equivalent checkpoints;
- `marking_scheme`: the marking scheme alone, no reference solution, strictly applied, with a
  `<score>N</score>` verdict (the RL reward's and ProofBench's grading);
- `no_reference`: neither reference nor scheme, the proof judged on its own merits;
- `auto` (the default): chosen per problem from what it carries (`choose_variant`).
A problem that lacks a field its (explicitly chosen) variant needs is refused with the problem
and the field named (`variant_for`), never graded against "(none given)".

Why the prompts look the way they do: each variant file holds the task and scale; the shared
pieces live once: `untrusted.txt` (the warning that the proof between its marker lines is
untrusted data, shared with every scaffold that shows proofs; see `qednano.grading.untrusted`)
and `verdict_*.txt` (the answer format, last, so it is the final thing the grader reads after
the proof). The format examples use `<...>` placeholders, never a
number, so a grader that echoes the prompt back produces no valid verdict.

Re-asks: an answer with no valid verdict gets a follow-up turn: the grader sees its own answer
and is asked for the verdict line alone, in the required form (`verdict_reminder.txt`). Weak
graders often write a sound assessment but forget or garble the format; asking for the verdict
of the assessment already written is cheaper and more faithful than grading again from scratch.
Only the follow-up's own answer is parsed. Attempt `a` (0-based) of grading sample `i` is model
sample `i * (max_reasks + 1) + a`, so every attempt has its own cache entry and seed and a
resumed run replays the same calls. Changing `max_reasks` changes which cached samples are used.
"""

from __future__ import annotations

from collections.abc import Iterable

from qednano.grading.record import Grade
from qednano.grading.untrusted import proof_block, untrusted_note
from qednano.grading.verdict import ParsedVerdict, Rejection, check_score_tag, check_verdict
from qednano.llm.model import Model
from qednano.llm.types import Messages, Sampling
from qednano.problems.record import Problem
from qednano.prompts import fill, load_prompt

MAX_SCORE = 7
IMO_SCALE = frozenset({0, 1, 6, 7})
FULL_SCALE = frozenset(range(MAX_SCORE + 1))
SCALES: dict[str, frozenset[int]] = {
    "reference": IMO_SCALE,
    "strict": FULL_SCALE,
    "advisory": FULL_SCALE,
    "marking_scheme": FULL_SCALE,
    "no_reference": FULL_SCALE,
}
# The problem fields each variant's prompt shows ("marking_scheme": criteria or guidelines).
NEEDS: dict[str, tuple[str, ...]] = {
    "reference": ("reference_solution", "grading_guidelines"),
    "strict": ("marking_scheme", "reference_solution"),
    "advisory": ("marking_scheme", "reference_solution"),
    "marking_scheme": ("marking_scheme",),
    "no_reference": (),
}
AUTO = "auto"
VARIANTS = tuple(SCALES)  # the prompt variants
CHOICES = (AUTO, *VARIANTS)  # what a user may choose


class VariantError(ValueError):
    """A grader variant that a problem cannot be graded with; names the problem and the field."""


def choose_variant(problem: Problem) -> str:
    """The variant for a problem's own material: a per-criterion scheme is marked checkpoint by
    checkpoint (`strict` beside a reference solution, else `marking_scheme`), free-text guidelines
    with a solution as IMO-ProofBench does (`reference`)."""
    solution = bool(problem.reference_solution.strip())
    if problem.criteria:
        return "strict" if solution else "marking_scheme"
    if problem.grading_guidelines.strip():
        return "reference" if solution else "marking_scheme"
    return "no_reference"


def missing_fields(problem: Problem, variant: str) -> list[str]:
    present = {
        "reference_solution": problem.reference_solution.strip(),
        "grading_guidelines": problem.grading_guidelines.strip(),
        "marking_scheme": problem.marking_scheme_text().strip(),
    }
    return [field for field in NEEDS[variant] if not present[field]]


def variant_for(problem: Problem, variant: str) -> str:
    """The variant a problem is graded with; refuses a variant whose fields the problem lacks."""
    if variant == AUTO:
        return choose_variant(problem)
    if missing := missing_fields(problem, variant):
        field = " and ".join(missing).replace("marking_scheme", "marking scheme (criteria or grading_guidelines)")
        raise VariantError(
            f"problem {problem.id!r} has no {field}, which grader variant {variant!r} needs; "
            f"use --variant auto (chosen per problem), or map the column with --column FIELD=COLUMN"
        )
    return variant


def check_variant(problems: Iterable[Problem], variant: str) -> None:
    """Refuse, before any grading starts, a variant that some problem cannot be graded with."""
    for problem in problems:
        variant_for(problem, variant)


def scale_words(variant: str) -> str:
    """The variant's score scale as the prompts name it."""
    return "one of 0, 1, 6 or 7" if SCALES[variant] == IMO_SCALE else "an integer from 0 to 7"


def verdict_format(variant: str) -> str:
    if variant in ("strict", "advisory"):
        return load_prompt(__file__, "verdict_checkpoints").strip()
    if variant == "marking_scheme":
        return load_prompt(__file__, "verdict_score_tag").strip()
    return fill(load_prompt(__file__, "verdict_score"), scale=scale_words(variant)).strip()


def grading_messages(problem: Problem, proof: str, variant: str) -> Messages:
    """The grader's conversation for one proof; `variant` must already suit the problem."""
    fields: dict[str, str] = {
        "problem": problem.statement.strip(),
        "untrusted": untrusted_note(),
        "proof": proof_block(proof),
        "verdict": verdict_format(variant),
    }
    reference = problem.reference_solution.strip()
    if variant == "reference":
        fields |= {"reference_solution": reference, "guidelines": problem.grading_guidelines.strip()}
    elif variant in ("strict", "advisory"):
        fields |= {"reference_solution": reference, "marking_scheme": problem.marking_scheme_text().strip()}
    elif variant == "marking_scheme":
        fields |= {"marking_scheme": problem.marking_scheme_text().strip()}
    return [{"role": "user", "content": fill(load_prompt(__file__, f"grade_{variant}"), **fields)}]


def verdict_form(variant: str) -> str:
    if variant == "marking_scheme":
        return "<score><an integer from 0 to 7></score>"
    if variant in ("strict", "advisory"):
        return "CHECKPOINT <title>: <points awarded>   (one line per checkpoint)\nFINAL SCORE: <an integer from 0 to 7>"
    return f"FINAL SCORE: <{scale_words(variant)}>"


def follow_up(messages: Messages, answer: str, variant: str, reason: str) -> Messages:
    """The conversation that asks the grader for the verdict of the answer it already gave."""
    reminder = fill(load_prompt(__file__, "verdict_reminder"), reason=reason, form=verdict_form(variant))
    return [*messages, {"role": "assistant", "content": answer}, {"role": "user", "content": reminder.strip()}]


def read_verdict(content: str, variant: str, problem: Problem) -> ParsedVerdict | Rejection:
    if variant == "marking_scheme":
        return check_score_tag(content, SCALES[variant])
    return check_verdict(content, SCALES[variant], problem.criteria)


def grader_call_index(sample_index: int, attempt: int, max_reasks: int) -> int:
    """The model sample used by attempt `attempt` of grading sample `sample_index`."""
    return sample_index * (max_reasks + 1) + attempt


class RubricGrader:
    """Grades proofs with one model and one prompt variant; implements `ProofGrader`."""

    def __init__(self, model: Model, variant: str = AUTO, max_reasks: int = 2, sampling: Sampling | None = None):
        if variant not in CHOICES:
            raise ValueError(f"unknown grader variant {variant!r}; choose one of {', '.join(CHOICES)}")
        if max_reasks < 0:
            raise ValueError(f"max_reasks must be 0 or more, got {max_reasks}")
        self.model = model
        self.variant = variant
        self.max_reasks = max_reasks
        self.sampling = sampling
        self.name = f"{model.name}/{variant}"

    async def grade(self, problem: Problem, proof: str, sample_index: int = 0) -> Grade:
        variant = variant_for(problem, self.variant)
        label = self.name if variant == self.variant else f"{self.name}->{variant}"
        if not proof.strip():
            return Grade(status="no_proof", score=0, max_score=MAX_SCORE, grader=label)

        messages = grading_messages(problem, proof, variant)
        calls, reason, content, assessment = [], "", "", ""
        for attempt in range(self.max_reasks + 1):
            index = grader_call_index(sample_index, attempt, self.max_reasks)
            conversation = messages if attempt == 0 else follow_up(messages, assessment, variant, reason)
            done = await self.model.complete(conversation, self.sampling, sample_index=index)
            calls.append(done)
            if not done.ok:
                # The backend has already retried transient errors; asking again would not help.
                error = f"grader call failed ({done.error_kind or 'error'}): {done.error}"
                return Grade(status="ungraded", max_score=MAX_SCORE, grader=label, error=error, calls=calls)
            content = done.content
            assessment = assessment or content  # follow-ups always show the first, full answer
            verdict = read_verdict(content, variant, problem)
            if isinstance(verdict, ParsedVerdict):
                return Grade(
                    status="graded",
                    score=verdict.score,
                    max_score=MAX_SCORE,
                    criteria=verdict.criteria,
                    assessment=content if attempt == 0 else f"{assessment}\n\n{content}",
                    grader=label,
                    calls=calls,
                )
            reason = verdict.reason
            if done.finish_reason == "length":
                reason += " (the grader's answer was cut off at max_tokens)"
        error = f"no valid verdict in {len(calls)} grader answers; last: {reason}"
        return Grade(status="ungraded", max_score=MAX_SCORE, assessment=content, grader=label, error=error, calls=calls)
