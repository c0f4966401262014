"""What a run's samples are counted as: each sample's state, the token totals and the cost.

Samples fall in exactly one of: failed (the generation call failed), pending (not graded
yet), graded, ungraded (the grader gave no usable verdict) and no_proof (nothing to grade;
scores 0). Failed, pending and ungraded samples are left out of every score and counted
instead. Truncated (finish reason "length") is counted across all of them.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, computed_field

from qednano.records.sample import SampleRecord


class Counts(BaseModel):
    samples: int = 0
    scored: int = 0  # graded + no_proof: the samples that enter the means
    graded: int = 0
    ungraded: int = 0
    no_proof: int = 0
    failed: int = 0
    pending: int = 0
    truncated: int = 0
    unanswered: int = 0  # short answers with no readable final answer, scored 0


class Tokens(BaseModel):
    """Per-sample means are over samples whose generation did not fail."""

    mean_reasoning: float | None = None  # None when unknown for any sample (see reasoning_unknown)
    mean_proof: float | None = None  # completion tokens minus reasoning tokens
    reasoning_unknown: int = 0  # samples whose reasoning/proof split no server or tokenizer gave
    generation_prompt: int = 0
    generation_completion: int = 0
    grading_prompt: int = 0
    grading_completion: int = 0

    @computed_field
    @property
    def total(self) -> int:
        return self.generation_prompt + self.generation_completion + self.grading_prompt + self.grading_completion


class Costs(BaseModel):
    generation_usd: float = 0.0
    grading_usd: float = 0.0


def sample_state(record: SampleRecord) -> str:
    """One of failed, pending, no_proof, graded, ungraded (see the module docstring)."""
    if record.attempt.status == "failed":
        return "failed"
    if record.grade is None:
        return "pending"
    if record.attempt.status == "no_proof" or record.grade.status == "no_proof":
        return "no_proof"
    return record.grade.status


def count_samples(records: Sequence[SampleRecord]) -> Counts:
    counts = Counts(samples=len(records))
    for record in records:
        state = sample_state(record)
        setattr(counts, state, getattr(counts, state) + 1)
        counts.scored += int(record.score is not None)
        counts.truncated += int(record.attempt.truncated)
        counts.unanswered += int(record.grade is not None and record.grade.unanswered)
    return counts


def count_tokens(records: Sequence[SampleRecord]) -> Tokens:
    tokens = Tokens()
    generated = [record.attempt.usage for record in records if record.attempt.status != "failed"]
    tokens.reasoning_unknown = sum(u.reasoning_tokens is None for u in generated)
    if generated and not tokens.reasoning_unknown:
        tokens.mean_reasoning = sum(u.reasoning_tokens for u in generated) / len(generated)
        tokens.mean_proof = sum(u.completion_tokens - u.reasoning_tokens for u in generated) / len(generated)
    for record in records:
        usage = record.attempt.usage  # failed calls still count what they spent
        tokens.generation_prompt += usage.prompt_tokens
        tokens.generation_completion += usage.completion_tokens
        for call in record.grade.calls if record.grade is not None else ():
            tokens.grading_prompt += call.usage.prompt_tokens
            tokens.grading_completion += call.usage.completion_tokens
    return tokens


def count_costs(records: Sequence[SampleRecord]) -> Costs:
    return Costs(
        generation_usd=sum(record.attempt.cost_usd for record in records),
        grading_usd=sum(record.grade.cost_usd for record in records if record.grade is not None),
    )
