"""The short-answer checker: is the final answer of a response the reference answer?

Two judges, in order:

1. math-verify compares the final answers as mathematics, in worker processes (`math_check.py`;
   the final answer is the response's last box, `boxed.py`);
2. an LLM judge (`answer_judge.py`) decides what math-verify could not: answers with words in
   them, answers it cannot parse, checks that timed out.

A check that could not decide is a status (unparsed, timeout, failed) with `correct=None`. Without
a judge, an answer that could not be read (no box, words in it, nothing math-verify parses) is
wrong, as it would be in a contest: graded 0 and marked `unanswered`, which the report counts.
A check that timed out or broke is the checker's failure, not the model's: ungraded.
"""

from __future__ import annotations

import asyncio

from qednano.grading.answer_forms import asks_for_decimal
from qednano.grading.answer_judge import judge_answer
from qednano.grading.boxed import last_boxed
from qednano.grading.math_check import check_answer
from qednano.grading.record import AnswerVerdict, Grade
from qednano.llm.model import Model
from qednano.problems.record import Problem

# The judge reads the final answer only; a response with no box is sent whole, cut to its end
# (where the answer is), so a long unboxed derivation cannot flood the judge's context.
JUDGE_MAX_CHARS = 4000


async def grade_answer(problem: Problem, response: str, judge: Model | None = None, sample_index: int = 0) -> Grade:
    """Grade a short-answer response 1/0: math-verify first, then the LLM judge whenever math-verify
    could not decide (unparsed, timed out or failed). Without a judge an unreadable answer is wrong."""
    if not problem.short_answer.strip():
        raise ValueError(f"problem {problem.id!r} has no short answer; grade it with a proof grader")
    if not response.strip():
        return Grade(status="no_proof", score=0.0, max_score=1.0, grader="math-verify")
    decimal = asks_for_decimal(problem.statement)
    checked = await asyncio.to_thread(check_answer, problem.short_answer, response, decimal)
    if checked.status == "checked":
        return _grade(checked, "math-verify")
    if judge is None:
        reason = f"{checked.status}: {checked.detail}"
        if checked.status == "unparsed" and not checked.reference_unreadable:
            return Grade(status="graded", score=0.0, max_score=1.0, grader="math-verify", unanswered=True,
                         assessment=f"no readable final answer, scored 0 ({reason})")
        return Grade(status="ungraded", max_score=1.0, grader="math-verify", error=reason)
    candidate = checked.extracted or last_boxed(response) or response.strip()[-JUDGE_MAX_CHARS:]
    judged = await judge_answer(judge, problem, candidate, sample_index=sample_index)
    return _grade(judged, f"{judge.name}/answer-judge", fallback_reason=f"math-verify {checked.status}: {checked.detail}")


def _grade(verdict: AnswerVerdict, grader: str, fallback_reason: str = "") -> Grade:
    calls = [verdict.judge_call] if verdict.judge_call is not None else []
    if verdict.status != "checked":
        error = f"{verdict.status}: {verdict.detail}"
        return Grade(status="ungraded", max_score=1.0, grader=grader, error=error, calls=calls)
    if verdict.judge_call is not None:
        assessment = verdict.judge_call.content
    else:
        assessment = f"extracted answer: {verdict.extracted}"
    if fallback_reason:
        assessment = f"[{fallback_reason}]\n{assessment}"
    score = 1.0 if verdict.correct else 0.0
    return Grade(status="graded", score=score, max_score=1.0, grader=grader, assessment=assessment, calls=calls)
