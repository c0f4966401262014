"""Test-time scaling: mean score against test-time tokens, one point per scaffold setting.

Input is a list of (setting label, the run's SampleRecords), e.g. ("rc T=1", ...), ("rc T=2",
...). For each setting, each problem's samples are averaged first (score over the samples that
count, tokens and cost over all samples, since failed ones spent compute too), then the problems
are averaged, so a problem with more samples does not weigh more. Tokens are the scaffold's
own prompt + completion tokens; grading is not test-time compute and is left out.

The plot draws settings whose labels share their first word ("rc T=1", "rc T=2") as one line.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from statistics import fmean

from pydantic import BaseModel

from qednano.records.sample import SampleRecord


class ScalingPoint(BaseModel):
    label: str
    problems: int  # problems with at least one sample
    samples: int
    uncounted: int  # samples without a score (failed or ungraded)
    mean_score: float | None  # over problems with at least one counted sample
    mean_tokens: float  # per attempt, prompt + completion
    mean_cost_usd: float  # per attempt

    @property
    def family(self) -> str:
        return self.label.split(" ", 1)[0]


def scaling_point(label: str, records: list[SampleRecord]) -> ScalingPoint:
    by_problem: dict[str, list[SampleRecord]] = defaultdict(list)
    for record in records:
        by_problem[record.problem_id].append(record)
    scores, tokens, costs = [], [], []
    for samples in by_problem.values():
        counted = [s.score for s in samples if s.score is not None]
        if counted:
            scores.append(fmean(counted))
        tokens.append(fmean(s.attempt.usage.prompt_tokens + s.attempt.usage.completion_tokens for s in samples))
        costs.append(fmean(s.attempt.cost_usd for s in samples))
    return ScalingPoint(
        label=label,
        problems=len(by_problem),
        samples=len(records),
        uncounted=sum(r.score is None for r in records),
        mean_score=fmean(scores) if scores else None,
        mean_tokens=fmean(tokens) if tokens else 0.0,
        mean_cost_usd=fmean(costs) if costs else 0.0,
    )


def scaling_points(settings: list[tuple[str, list[SampleRecord]]]) -> list[ScalingPoint]:
    labels = [label for label, _ in settings]
    if len(set(labels)) != len(labels):
        raise ValueError(f"scaling settings need distinct labels, got {labels}")
    return [scaling_point(label, records) for label, records in settings]


def scaling_table(points: list[ScalingPoint]) -> str:
    """A markdown table, one row per setting, in the order given."""
    rows = [
        "| setting | problems | samples | uncounted | mean score | tokens / attempt | cost / attempt (USD) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for p in points:
        score = "n/a" if p.mean_score is None else f"{p.mean_score:.2f}"
        cells = [p.label, p.problems, p.samples, p.uncounted, score, f"{p.mean_tokens:,.0f}", f"{p.mean_cost_usd:.4f}"]
        rows.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(rows) + "\n"


def plot_scaling(points: list[ScalingPoint], path: str | Path, title: str = "Test-time scaling") -> Path:
    """Score against tokens per attempt as a PNG; settings without a score are left out."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    families: dict[str, list[ScalingPoint]] = defaultdict(list)
    for p in points:
        if p.mean_score is not None:
            families[p.family].append(p)
    for family, members in families.items():
        members.sort(key=lambda p: p.mean_tokens)
        xs = [p.mean_tokens for p in members]
        ax.plot(xs, [p.mean_score for p in members], marker="o", label=family)
        for p in members:
            ax.annotate(p.label, (p.mean_tokens, p.mean_score), textcoords="offset points", xytext=(4, 4), fontsize=8)
    plotted = [p.mean_tokens for ps in families.values() for p in ps]
    if plotted and min(plotted) > 0 and max(plotted) / min(plotted) > 10:
        ax.set_xscale("log")  # scaffolds differ by orders of magnitude in tokens
    ax.set_xlabel("tokens per attempt (prompt + completion)")
    ax.set_ylabel("mean score per problem")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if families:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def scaling_report(settings: list[tuple[str, list[SampleRecord]]], out_dir: str | Path) -> tuple[Path, Path]:
    """Write `scaling.md` (the table) and `scaling.png` (the plot) into `out_dir`."""
    points = scaling_points(settings)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = out / "scaling.md"
    table.write_text(scaling_table(points))
    return table, plot_scaling(points, out / "scaling.png")
