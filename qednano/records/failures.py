"""Failed samples counted by kind, and the tolerance that stops a run early.

A run whose every call failed must not look finished. Every command that runs samples ends with
a summary of its failures (how many, by stage and kind, with one example message each), puts it
in its report, and stops early once failures pass what `--max-failures` tolerates, as
inspect_ai's `fail_on_error` does: a count of failures would only be read after the money or
the hours were spent, when a whole grader was down from the first call.

A sample fails when its generation failed, or when its grading came back ungraded because a
grader call failed. A grader that answered without a readable verdict is not a failure here: the
report counts those as ungraded.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, Field

from qednano.records.limits import DEFAULT_MAX_FAILURES
from qednano.records.sample import SampleRecord
from qednano.scaffolds.base import Attempt

Stage = Literal["generation", "grading"]
EXAMPLE_LIMIT = 300  # characters of an example message worth showing


class FailureKind(BaseModel):
    stage: Stage
    kind: str  # the failed call's error_kind: timeout, connection, auth, http_503, ...
    count: int
    example: str  # one such failure's message


class FailureSummary(BaseModel):
    samples: int = 0
    failed: int = 0
    kinds: list[FailureKind] = Field(default_factory=list)

    @property
    def all_failed(self) -> bool:
        return self.samples > 0 and self.failed == self.samples


class RunLimits(BaseModel):
    """How long one model call may wait, and how many failed samples a run tolerates."""

    max_failures: float = Field(DEFAULT_MAX_FAILURES, ge=0, description=(
        "Failed samples tolerated before the run stops: below 1 a fraction of the samples, else a count."))
    timeout_s: float | None = Field(None, gt=0, description="Total seconds per HTTP call (overrides model files).")
    idle_timeout_s: float | None = Field(None, gt=0, description="Seconds without a streamed token before an HTTP "
                                         "call counts as hung and is retried (overrides model files).")

    def call_limits(self) -> dict[str, float | None]:
        return {"timeout_s": self.timeout_s, "idle_timeout_s": self.idle_timeout_s}


class RunFailed(Exception):
    """A run stopped by its failures, or one in which every sample failed. The records made so
    far are in the run directory (`records`, when the caller read them back); the message says
    what failed."""

    def __init__(self, message: str, summary: FailureSummary):
        super().__init__(message)
        self.summary = summary
        self.records: list[SampleRecord] = []


def attempt_failure_kind(attempt: Attempt) -> str:
    """The error kind of the call that failed the attempt (its last failed call)."""
    failed = [step.completion for step in attempt.steps if not step.completion.ok]
    return (failed[-1].error_kind if failed else None) or "error"


def sample_failure(record: SampleRecord) -> tuple[Stage, str, str] | None:
    """(stage, kind, message) when this sample failed, else None."""
    if record.attempt.status == "failed":
        return "generation", attempt_failure_kind(record.attempt), record.attempt.error or ""
    grade = record.grade
    if grade is None or grade.status != "ungraded":
        return None
    failed = [call for call in grade.calls if not call.ok]
    if not failed:
        return None  # the grader answered, without a verdict: ungraded, not failed
    return "grading", failed[-1].error_kind or "error", grade.error or failed[-1].error or ""


def summarize(records: Iterable[SampleRecord]) -> FailureSummary:
    summary = FailureSummary()
    kinds: dict[tuple[str, str], FailureKind] = {}
    for record in records:
        summary.samples += 1
        if (failure := sample_failure(record)) is None:
            continue
        summary.failed += 1
        stage, kind, message = failure
        if (stage, kind) in kinds:
            kinds[stage, kind].count += 1
        else:
            kinds[stage, kind] = FailureKind(stage=stage, kind=kind, count=1, example=message[:EXAMPLE_LIMIT])
    summary.kinds = sorted(kinds.values(), key=lambda k: (-k.count, k.stage, k.kind))
    return summary


def allowance(max_failures: float, total: int) -> int:
    """How many failed samples a run of `total` tolerates: below 1, a fraction of them (rounded up,
    so a small run is not stopped by its first failure); else a count."""
    if max_failures < 0:
        raise ValueError(f"--max-failures must be at least 0, got {max_failures:g}")
    if max_failures < 1:
        return math.ceil(max_failures * total - 1e-9)  # 0.07 * 100 is 7.000000000000001 in floats
    if max_failures != int(max_failures):
        raise ValueError(f"--max-failures is a fraction below 1 or a whole count, got {max_failures:g}")
    return int(max_failures)


def failure_rows(summary: FailureSummary) -> list[tuple[str, str, str, str]]:
    return [(k.stage, k.kind, str(k.count), " ".join(k.example.split())) for k in summary.kinds]


FAILURE_HEADER = ("stage", "kind", "samples", "example")


def headline(summary: FailureSummary) -> str:
    """One line: how many samples failed, and the commonest kind."""
    if not summary.failed:
        return f"no failures in {summary.samples} samples"
    return f"{summary.failed} of {summary.samples} samples failed; {commonest(summary)}"


def tally(summary: FailureSummary) -> str:
    """One line of counts (the failures table holds the messages)."""
    kinds = ", ".join(f"{k.stage} {k.kind}: {k.count}" for k in summary.kinds)
    return f"{summary.failed} of {summary.samples} samples failed ({kinds})"


def commonest(summary: FailureSummary) -> str:
    top = summary.kinds[0]
    return f"most often {top.stage} {top.kind} ({top.count}): {top.example}"


def check_outcome(summary: FailureSummary) -> None:
    """Raise RunFailed when every sample of a run failed: such a run must not exit 0."""
    if summary.all_failed:
        raise RunFailed(f"every sample failed: {headline(summary)}", summary)
