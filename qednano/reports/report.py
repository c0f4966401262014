"""The evaluation report of one run: scores, pass@k, breakdowns, failures, tokens and cost.

How the mean is taken: each problem's samples are averaged first (only samples whose
`SampleRecord.score` is not None), then those per-problem means are averaged. Every problem
weighs the same however many of its samples could be scored, and the bootstrap interval
resamples problems, which are the independent units of a benchmark.

Samples fall in exactly one of: failed (the generation call failed), pending (not graded
yet), graded, ungraded (the grader gave no usable verdict) and no_proof (nothing to grade;
scores 0). Failed, pending and ungraded samples are left out of every score and counted
instead. Truncated (finish reason "length") is counted across all of them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from pydantic import BaseModel, Field, computed_field
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from qednano.records.failures import FAILURE_HEADER, FailureSummary, failure_rows, summarize
from qednano.records.sample import SampleRecord
from qednano.reports.metrics import best_at_k, bootstrap_ci, mean_at_k, pass_at_k
from qednano.reports.strict import left_out_warning, left_out_words, std_over_runs, strict_mean
from qednano.tables import markdown_table, number, rich_table

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
    counts: Counts = Field(default_factory=Counts)
    tokens: Tokens = Field(default_factory=Tokens)
    cost: Costs = Field(default_factory=Costs)
    failures: FailureSummary = Field(default_factory=FailureSummary)  # failed samples by stage and kind


# ---- building the report --------------------------------------------------------------------


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
        cost=Costs(
            generation_usd=sum(record.attempt.cost_usd for record in records),
            grading_usd=sum(record.grade.cost_usd for record in records if record.grade is not None),
        ),
        breakdown=breakdowns(records, scores),
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


# ---- rendering ------------------------------------------------------------------------------


def _title(report: Report) -> str:
    return f"{report.model or 'unknown model'} on {report.bench or 'unknown bench'}"


def summary_rows(report: Report) -> list[tuple[str, str]]:
    ci = report.ci_points
    rows = [("run status", report.run_status)] if report.run_status else []
    return rows + [
        ("problems scored", f"{report.problems} of {report.problems_seen}"),
        ("mean (points)", f"{number(report.mean_points)} of {number(report.max_score, 0)}{left_out_note(report)}"),
        ("mean (% of max)", number(report.mean_percent, 1)),
        ("strict mean (points)", f"{number(report.strict_mean_points)} (failed, ungraded, pending count 0)"),
        ("std over samples (runs)", number(report.std_over_runs)),
        ("95% CI (points)", "-" if ci is None else f"{ci[0]:.2f} to {ci[1]:.2f}"),
        ("pass threshold", number(report.pass_threshold, 2)),
        ("mean reasoning tokens", reasoning_number(report.tokens, report.tokens.mean_reasoning)),
        ("mean proof tokens", reasoning_number(report.tokens, report.tokens.mean_proof)),
        ("total tokens", str(report.tokens.total)),
        ("generation cost (USD)", f"{report.cost.generation_usd:.4f}"),
        ("grading cost (USD)", f"{report.cost.grading_usd:.4f}"),
    ]


def left_out_note(report: Report) -> str:
    c = report.counts
    return left_out_words(c.ungraded, c.failed, c.pending)


def warning(report: Report) -> str:
    c = report.counts
    return left_out_warning(c.samples, c.ungraded, c.failed, c.pending)


def reasoning_number(tokens: Tokens, value: float | None) -> str:
    unknown = tokens.reasoning_unknown
    return f"unknown ({unknown} samples without a reasoning count)" if unknown else number(value, 0)


def at_k_rows(report: Report) -> list[tuple[str, ...]]:
    return [(str(m.k), number(m.pass_at_k, 3), number(m.mean_at_k), number(m.best_at_k)) for m in report.at_k]


def at_k_note(report: Report) -> str:
    if not report.ks_left_out:
        return ""
    ks = ", ".join(str(k) for k in report.ks_left_out)
    return f"k = {ks} left out: some problem has fewer scored samples than that."


def breakdown_rows(groups: list[GroupScore], max_score: float | None) -> list[tuple[str, ...]]:
    percent = (lambda mean: number(100 * mean / max_score, 1)) if max_score else (lambda mean: "-")
    return [(g.value, number(g.mean), percent(g.mean), str(g.problems), str(g.samples)) for g in groups]


AT_K_HEADER = ("k", "pass@k", "mean@k (points)", "best@k (points)")
BREAKDOWN_HEADER = ("mean (points)", "% of max", "problems", "scored samples")


def render_terminal(report: Report, console: Console | None = None) -> Group:
    """The report as rich tables; printed to `console` when one is given, and returned."""
    counts = report.counts.model_dump()
    tables: list[Table | Text] = [
        rich_table(_title(report), ("", "value"), summary_rows(report)),
        *([Text(warn, style="bold yellow")] if (warn := warning(report)) else []),
        rich_table("samples", tuple(counts), [tuple(str(v) for v in counts.values())]),
    ]
    if report.at_k:
        tables.append(rich_table("at k samples", AT_K_HEADER, at_k_rows(report)))
    if note := at_k_note(report):
        tables.append(Text(note, style="dim"))
    for field, groups in report.breakdown.items():
        if not groups:
            continue  # nothing scored yet
        tables.append(rich_table(f"by {field}", (field, *BREAKDOWN_HEADER), breakdown_rows(groups, report.max_score)))
    if report.failures.failed:
        tables.append(rich_table("failures", FAILURE_HEADER, failure_rows(report.failures)))
    group = Group(*tables)
    if console is not None:
        console.print(group)
    return group


def render_markdown(report: Report) -> str:
    counts = report.counts.model_dump()
    parts = [
        f"# {_title(report)}",
        markdown_table(("", "value"), summary_rows(report)),
        *([f"**{warn}**"] if (warn := warning(report)) else []),
        "## Samples",
        markdown_table(tuple(counts), [tuple(str(v) for v in counts.values())]),
    ]
    if report.at_k:
        parts += ["## At k samples", markdown_table(AT_K_HEADER, at_k_rows(report))]
    if note := at_k_note(report):
        parts.append(note)
    for field, groups in report.breakdown.items():
        if not groups:
            continue
        parts += [f"## By {field}", markdown_table((field, *BREAKDOWN_HEADER), breakdown_rows(groups, report.max_score))]
    if report.failures.failed:
        parts += ["## Failures", markdown_table(FAILURE_HEADER, failure_rows(report.failures))]
    return "\n\n".join(parts) + "\n"
