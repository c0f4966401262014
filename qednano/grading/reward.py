"""A proof grader exposed as a TRL reward function: reward = score / 7.

TRL's GRPOTrainer (1.16) calls every reward function with keyword arguments: `prompts`,
`completions` (strings, or for conversational data a list of messages per completion, the
assistant's last), `completion_ids`, one list per extra dataset column (one value per
completion), plus `trainer_state`, `log_extra` and `log_metric`. An async reward function is run
on the trainer's own event loop thread, and a None reward means "abstain" (TRL turns it into
NaN and leaves it out of that function's mean).

So the training dataset carries a `problem_id` column, and the factory is given the Problems by
id. The proof is the text after the completion's reasoning (`</think>`): reasoning that never
closed means no proof was written, which earns 0.0 without a grader call. An ungraded proof
(the grader failed or never gave a valid verdict) abstains with None: it is not a zero.

The returned function closes over a live Model (HTTP sessions, a SQLite cache), so it is not
picklable: use it with GRPOTrainer, not with trainers that ship reward functions to another
process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from qednano.grading.record import Grade, ProofGrader
from qednano.llm.types import proof_text
from qednano.problems.record import Problem

RewardFunction = Callable[..., Awaitable[list[float | None]]]
# Keyword arguments TRL passes that are not dataset columns.
TRL_ARGUMENTS = ("prompts", "completion_ids", "trainer_state", "log_extra", "log_metric", "environments")


def completion_text(completion: str | list[dict[str, Any]]) -> str:
    """The generated text of one TRL completion: a string, or the last assistant message."""
    if isinstance(completion, str):
        return completion
    replies = [m for m in completion if m.get("role", "assistant") == "assistant"]
    if not replies:
        return ""
    content = replies[-1].get("content") or ""
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        content = "".join(part.get("text", "") for part in content if part.get("type") == "text")
    return content


def proof_of(completion: str | list[dict[str, Any]], reasoning_in_prompt: bool = False) -> str:
    """The proof in a completion: the text after the reasoning, "" when none was written.

    `reasoning_in_prompt`: the chat template opens `<think>` inside the prompt, so a completion
    without `</think>` is reasoning that never closed (not a proof without reasoning).
    """
    return proof_text(completion_text(completion), reasoning_in_prompt)


def grader_reward(
    grader: ProofGrader,
    problems: Mapping[str, Problem],
    id_column: str = "problem_id",
    reasoning_in_prompt: bool = False,
) -> RewardFunction:
    """A TRL reward function that grades each completion's proof with `grader`."""

    async def reward(completions: list, **columns: Any) -> list[float | None]:
        if id_column not in columns:
            given = sorted(k for k in columns if k not in TRL_ARGUMENTS)
            raise KeyError(
                f"grader reward needs a {id_column!r} column in the training dataset (one problem id per "
                f"row) to find each problem; the columns given are {given}"
            )
        ids = columns[id_column]
        unknown = sorted({pid for pid in ids if pid not in problems})
        if unknown:
            raise KeyError(
                f"dataset column {id_column!r} holds problem ids {unknown[:5]} that are not among the "
                f"{len(problems)} problems given to grader_reward; build both from the same problem set"
            )
        proofs = [proof_of(c, reasoning_in_prompt) for c in completions]
        pairs = zip(ids, proofs, strict=True)
        grades = await asyncio.gather(*(grade_one(grader, problems[pid], proof) for pid, proof in pairs))
        log_grades(grades, columns)
        return [g.fraction for g in grades]

    reward.__name__ = f"grader_{grader.name}"  # TRL logs rewards under the function's name
    return reward


async def grade_one(grader: ProofGrader, problem: Problem, proof: str) -> Grade:
    if not proof.strip():
        return Grade(status="no_proof", score=0, grader=grader.name)
    return await grader.grade(problem, proof)


def log_grades(grades: list[Grade], columns: Mapping[str, Any]) -> None:
    """Grade statuses into TRL's completions table and the ungraded share into its metrics."""
    if log_extra := columns.get("log_extra"):
        log_extra("grade_status", [g.status for g in grades])
    if (log_metric := columns.get("log_metric")) and grades:
        log_metric("grader/ungraded_fraction", sum(g.status == "ungraded" for g in grades) / len(grades))
