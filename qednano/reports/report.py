"""The evaluation report of one run: scores, pass@k, breakdowns, panel disagreement, failures,
tokens and cost (rendered as tables by `render.py`).

How the mean is taken: each problem's samples are averaged first (only samples whose
`SampleRecord.score` is not None), then those per-problem means are averaged. Every problem
weighs the same however many of its samples could be scored, and the bootstrap interval
resamples problems, which are the independent units of a benchmark. Which samples count, and
as what, is `counts.py`'s concern.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from pydantic import BaseModel, Field

from qednano.records.failures import FailureSummary, summarize
from qednano.records.sample import SampleRecord
from qednano.reports.counts import Costs, Counts, Tokens, count_costs, count_samples, count_tokens
from qednano.reports.disagreement import PanelDisagreement, panel_disagreement
from qednano.reports.metrics import best_at_k, bootstrap_ci, mean_at_k, pass_at_k
from qednano.reports.strict import std_over_runs, strict_mean

BREAKDOWN_FIELDS = ("category", "level", "source")
PASS_TOLERANCE = 1e-9  # scores are floats; 6.9999999 from a sum of criteria still passes 7


class KMetrics(BaseModel):
    k: int
    pass_at_k: float = Field(description="Mean over problems of the unbiased pass@k.")
    mean_at_k: float = Field(description="Expected mean score of k samples, in points (equals the mean).")
    best_at_k: float = Field(description="Expected best score of k samples, in points.")


class GroupScore(BaseModel):
    value: str  # e.g. "Algebra"; "(none)" when the problem has no value for the field
    mean: float  # points: mean over the group's problems of per-problem means
    problems: int
    samples: int  # scored samples in the group


class Report(BaseModel):
    bench: str | None = None
    model: str | None = None
    run_status: str | None = None  # the manifest's status: running / finished / interrupted / failed
    max_score: float | None = None  # points of a perfect sample; None when nothing is graded
    pass_threshold: float | None = None
    problems: int = 0  # problems with at least one scored sample
    problems_seen: int = 0
    mean_points: float | None = None
    mean_percent: float | None = None
    strict_mean_points: float | None = None  # failed, ungraded and pending samples scored 0
    std_over_runs: float | None = None  # sample std of per-sample-index run means (strict)
    ci_points: tuple[float, float] | None = None  # bootstrap 95% interval of mean_points
    at_k: list[KMetrics] = Field(default_factory=list)
    ks_left_out: list[int] = Field(default_factory=list)  # asked for, but some problem has fewer scored samples
    breakdown: dict[str, list[GroupScore]] = Field(default_factory=dict)
    panel: PanelDisagreement | None = None  # how far a panel's graders disagree; None without a panel
    counts: Counts = Field(default_factory=Counts)
    tokens: Tokens = Field(default_factory=Tokens)
    cost: Costs = Field(default_factory=Costs)
    failures: FailureSummary = Field(default_factory=FailureSummary)  # failed samples by stage and kind
    source: str = ""  # digest of what the report was computed from, so an unchanged run can reuse it


def scores_by_problem(records: Iterable[SampleRecord]) -> dict[str, list[float]]:
    """Scored samples' points per problem, in problem-id order; problems with none are left out."""
    scores: dict[str, list[float]] = defaultdict(list)
    for record in records:
        if (score := record.score) is not None:
            scores[record.problem_id].append(score)
    return {problem: scores[problem] for problem in sorted(scores)}


def problem_means(scores: dict[str, list[float]]) -> dict[str, float]:
    return {problem: sum(values) / len(values) for problem, values in scores.items()}


def max_score_of(records: Iterable[SampleRecord]) -> float | None:
    """The one max_score of the run's grades; mixing scales (7-point and 0/1) is an error."""
    scales = {record.grade.max_score for record in records if record.grade is not None}
    if len(scales) > 1:
        raise ValueError(f"grades in one run use different max scores {sorted(scales)}; report proof and answer runs apart")
    return scales.pop() if scales else None


def check_unique(records: Sequence[SampleRecord]) -> None:
    seen: set[tuple[str, int]] = set()
    for record in records:
        if record.key in seen:
            raise ValueError(f"sample {record.key} appears twice; pass one record per (problem_id, sample_index)")
        seen.add(record.key)


def build_report(
    records: list[SampleRecord],
    manifest: dict,
    pass_threshold: float | None = None,
    ks: Sequence[int] = (1, 2, 4, 8),
    n_boot: int = 10_000,
    seed: int = 0,
) -> Report:
    """Everything `qednano report` shows about one run.

    `pass_threshold` is the points a sample needs to count as a pass in pass@k; by default a
    full score (7 of 7 for proofs, 1 of 1 for answers). A k is reported only when every
    scored problem has at least k scored samples, so all k are over the same problems.
    """
    check_unique(records)
    config = manifest.get("config") or {}
    max_score = max_score_of(records)
    threshold = pass_threshold if pass_threshold is not None else max_score
    scores = scores_by_problem(records)
    means = problem_means(scores)
    report = Report(
        bench=_label(config.get("bench")),
        model=_label(config.get("model")),
        run_status=manifest.get("status"),
        max_score=max_score,
        pass_threshold=threshold,
        problems=len(scores),
        problems_seen=len({record.problem_id for record in records}),
        counts=count_samples(records),
        tokens=count_tokens(records),
        cost=count_costs(records),
        breakdown=breakdowns(records, scores),
        panel=panel_disagreement(records),
        failures=summarize(records),
    )
    if not means:
        return report
    mean = sum(means.values()) / len(means)
    report.mean_points = mean
    report.strict_mean_points = strict_mean(records)
    report.std_over_runs = std_over_runs(records)
    report.mean_percent = 100 * mean / max_score if max_score else None
    report.ci_points = bootstrap_ci(list(means.values()), n_boot=n_boot, seed=seed)
    report.at_k = at_k_metrics(scores, ks, threshold)
    report.ks_left_out = sorted(set(ks) - {m.k for m in report.at_k})
    return report


def _label(value: object) -> str | None:
    """A manifest's bench/model may be a name or a nested spec; show a name either way."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):
        return str(value.get("name") or value.get("model") or value)
    return str(value)


def at_k_metrics(scores: dict[str, list[float]], ks: Sequence[int], threshold: float | None) -> list[KMetrics]:
    smallest = min(len(values) for values in scores.values())
    rows = []
    for k in sorted(set(ks)):
        if k > smallest:
            continue
        passes = [pass_at_k(len(v), _passing(v, threshold), k) for v in scores.values()]
        rows.append(
            KMetrics(
                k=k,
                pass_at_k=sum(passes) / len(passes),
                mean_at_k=sum(mean_at_k(v, k) for v in scores.values()) / len(scores),
                best_at_k=sum(best_at_k(v, k) for v in scores.values()) / len(scores),
            )
        )
    return rows


def _passing(values: list[float], threshold: float | None) -> int:
    if threshold is None:
        return 0
    return sum(1 for value in values if value >= threshold - PASS_TOLERANCE)


def breakdowns(records: Sequence[SampleRecord], scores: dict[str, list[float]]) -> dict[str, list[GroupScore]]:
    """Mean score per category, level and source; fields no problem fills are left out."""
    out: dict[str, list[GroupScore]] = {}
    for field in BREAKDOWN_FIELDS:
        value_of = {record.problem_id: getattr(record, field) for record in records}
        if not any(value_of.values()):
            continue
        groups: dict[str, list[str]] = defaultdict(list)
        for problem in scores:
            groups[value_of[problem] or "(none)"].append(problem)
        out[field] = [
            GroupScore(
                value=value,
                mean=sum(sum(scores[p]) / len(scores[p]) for p in problems) / len(problems),
                problems=len(problems),
                samples=sum(len(scores[p]) for p in problems),
            )
            for value, problems in sorted(groups.items())
        ]
    return out
