"""The strict view of a run, as the reference's multi-run statistics take it.

The report's main mean leaves failed and ungraded samples out (and counts them). The strict
mean instead scores every sample that is not a counted score as 0, the way the QED-Nano
reference's `stats.py` fills missing scores with 0: sample index i of every problem forms run
i, each run's mean is taken over all its rows, and the strict mean is the mean of the run means,
with their sample standard deviation (n - 1) as the spread between runs.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence

from qednano.records.sample import SampleRecord


def run_means(records: Sequence[SampleRecord]) -> list[float]:
    """Per sample index (one "run"), the mean score with failed/ungraded/pending samples as 0."""
    runs: dict[int, list[float]] = defaultdict(list)
    for record in records:
        runs[record.sample_index].append(record.score or 0.0)
    return [statistics.fmean(runs[index]) for index in sorted(runs)]


def strict_mean(records: Sequence[SampleRecord]) -> float | None:
    means = run_means(records)
    return statistics.fmean(means) if means else None


def std_over_runs(records: Sequence[SampleRecord]) -> float | None:
    """Sample standard deviation of the run means; None with fewer than two runs."""
    means = run_means(records)
    return statistics.stdev(means) if len(means) > 1 else None


def left_out_words(ungraded: int, failed: int, pending: int) -> str:
    """Beside the mean: what it leaves out, so a mean over few samples cannot pass for the whole."""
    if not (ungraded or failed or pending):
        return ""
    return f" ({ungraded} ungraded, {failed} failed, {pending} pending left out)"


def left_out_warning(samples: int, ungraded: int, failed: int, pending: int) -> str:
    if not (ungraded or failed or pending):
        return ""
    return (
        f"warning: {ungraded + failed + pending} of {samples} samples are not in the mean "
        f"({ungraded} ungraded, {failed} failed, {pending} pending); the strict mean counts them as 0"
    )
