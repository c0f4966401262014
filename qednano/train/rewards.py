"""Graders as TRL reward functions: the proof grader (score / 7), the answer checker, penalties.

TRL's GRPOTrainer (1.16) calls every reward function with keyword arguments: `prompts`,
`completions` (strings, or for conversational data a list of messages per completion, the
assistant's last), `completion_ids`, one list per extra dataset column (one value per
completion), plus `trainer_state`, `log_extra` and `log_metric`. An async reward function is run
on the trainer's own event loop thread, and a None reward means "abstain" (TRL turns it into
NaN and leaves it out of that function's mean and of the group baseline).

So the training dataset carries a `problem_id` column, and the factory is given the Problems by
id. The reward calls the same grader evaluation uses (built by grading/build.py), so training
and evaluation cannot drift apart. The proof is the text after the completion's reasoning
(`</think>`): reasoning that never closed means no proof was written, which earns 0 without a
grader call and is counted. An ungraded proof (no valid verdict) abstains with None and is
counted; a failed grader call is also ungraded, logged with its error and counted separately,
and when more than `max_failed_fraction` of a batch fails the grader is taken to be down and
training stops rather than learning from abstentions.

All completions of a step are graded at once (`asyncio.gather`): G completions cost about one
grader latency, not G. The Model layer under the grader caches and retries each call.

The returned functions close over live Models (HTTP sessions, a SQLite cache), so they are not
picklable: use them with GRPOTrainer, not with trainers that ship rewards to another process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from qednano.grading.record import Grade, ProofGrader
from qednano.llm.types import proof_text
from qednano.problems.record import Problem

log = logging.getLogger(__name__)

RewardFunction = Callable[..., Awaitable[list[float | None]]]
# Keyword arguments TRL passes that are not dataset columns.
TRL_ARGUMENTS = ("prompts", "completion_ids", "trainer_state", "log_extra", "log_metric", "environments")


class GraderDown(RuntimeError):
    """Too many grader calls of one batch failed: training on abstentions would learn nothing."""


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


def problem_ids(columns: Mapping[str, Any], problems: Mapping[str, Problem], id_column: str) -> list[str]:
    if id_column not in columns:
        given = sorted(k for k in columns if k not in TRL_ARGUMENTS)
        raise KeyError(
            f"the reward needs a {id_column!r} column in the training dataset (one problem id per "
            f"row) to find each problem; the columns given are {given}"
        )
    ids = list(columns[id_column])
    unknown = sorted({pid for pid in ids if pid not in problems})
    if unknown:
        raise KeyError(
            f"dataset column {id_column!r} holds problem ids {unknown[:5]} that are not among the "
            f"{len(problems)} problems given to the reward; build both from the same problem set"
        )
    return ids


def grade_reward(
    grader: ProofGrader,
    problems: Mapping[str, Problem],
    *,
    kind: str = "grader",
    id_column: str = "problem_id",
    reasoning_in_prompt: bool = False,
    max_failed_fraction: float = 1.0,
) -> RewardFunction:
    """A TRL reward function: `grader`'s score as a fraction of its maximum, on each completion's proof.

    `kind` names the reward in TRL's logs (`grader_<name>` / `answer_<name>`) and the column of
    grade statuses in the completions table (`grade_status` / `answer_status`).
    """
    status_column = "grade_status" if kind == "grader" else f"{kind}_status"

    async def reward(completions: list, **columns: Any) -> list[float | None]:
        ids = problem_ids(columns, problems, id_column)
        proofs = [proof_of(c, reasoning_in_prompt) for c in completions]
        grades = await asyncio.gather(*(grade_one(grader, problems[pid], p) for pid, p in zip(ids, proofs, strict=True)))
        report(grades, columns, kind, status_column, max_failed_fraction)
        return [g.fraction for g in grades]

    reward.__name__ = f"{kind}_{grader.name}"  # TRL logs rewards under the function's name
    return reward


def grader_reward(grader: ProofGrader, problems: Mapping[str, Problem], **options: Any) -> RewardFunction:
    """The rubric grader's score / 7 (see `grade_reward`)."""
    return grade_reward(grader, problems, kind="grader", **options)


async def grade_one(grader: ProofGrader, problem: Problem, proof: str) -> Grade:
    if not proof.strip():
        return Grade(status="no_proof", score=0, grader=grader.name)
    return await grader.grade(problem, proof)


def call_failed(grade: Grade) -> bool:
    """The grade is ungraded because a grader call failed (not because the verdict was unreadable)."""
    return grade.status == "ungraded" and any(not call.ok for call in grade.calls)


def report(grades: Sequence[Grade], columns: Mapping[str, Any], kind: str, status_column: str, max_failed: float) -> None:
    """Statuses into TRL's completions table, status fractions into its metrics, failures into the log."""
    if not grades:
        return
    failed = [g for g in grades if call_failed(g)]
    for grade in failed:
        log.warning("%s call failed (reward abstains): %s", kind, grade.error)
    shares = {
        "no_proof_fraction": sum(g.status == "no_proof" for g in grades) / len(grades),
        "ungraded_fraction": sum(g.status == "ungraded" for g in grades) / len(grades),
        "failed_fraction": len(failed) / len(grades),
    }
    if log_extra := columns.get("log_extra"):
        log_extra(status_column, [g.status for g in grades])
    if log_metric := columns.get("log_metric"):
        for name, share in shares.items():
            log_metric(f"{kind}/{name}", share)
    if shares["failed_fraction"] > max_failed:
        raise GraderDown(
            f"{len(failed)} of {len(grades)} {kind} calls failed in one batch (more than the allowed "
            f"{max_failed:.0%}); first error: {failed[0].error}. Check the grader server, or raise max_failed_fraction"
        )


def length_penalty(weight: float, max_tokens: int) -> Callable[..., list[float]]:
    """-weight x (completion tokens / max_tokens): longer answers cost more, linearly."""

    def length(completions: list, completion_ids: list, **_: Any) -> list[float]:
        return [-weight * len(ids) / max_tokens for ids in completion_ids]

    return length


def format_penalty(weight: float, reasoning_in_prompt: bool) -> Callable[..., list[float]]:
    """-weight when a completion wrote no proof (reasoning never closed, or nothing after it)."""

    def format(completions: list, **_: Any) -> list[float]:
        return [0.0 if proof_of(c, reasoning_in_prompt).strip() else -weight for c in completions]

    return format
