"""Two runs on the same problems, side by side: is the difference more than noise?

Only problems that have at least one scored sample in both runs are compared; the others are
counted as dropped, per run. Each run's problem score is its per-problem mean (as in the
report), so a problem with 8 samples in one run and 4 in the other still pairs up.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from qednano.records.sample import SampleRecord
from qednano.reports.metrics import paired_bootstrap_ci, sign_flip_p_value
from qednano.reports.report import check_unique, max_score_of, problem_means, scores_by_problem
from qednano.tables import markdown_table, number, rich_table


class Comparison(BaseModel):
    a_name: str
    b_name: str
    max_score: float | None
    problems: int  # problems scored in both runs
    only_in_a: list[str]  # scored in a but not in b: dropped
    only_in_b: list[str]
    mean_a: float | None = None  # points, over the shared problems
    mean_b: float | None = None
    difference: float | None = None  # mean_a - mean_b
    ci: tuple[float, float] | None = None  # paired bootstrap 95% interval of the difference
    p_value: float | None = None  # paired sign-flip permutation test, two-sided
    a_wins: int = 0  # shared problems where a's mean is higher
    b_wins: int = 0
    ties: int = 0

    @property
    def dropped(self) -> int:
        return len(self.only_in_a) + len(self.only_in_b)


def compare_runs(
    a_records: Sequence[SampleRecord],
    b_records: Sequence[SampleRecord],
    a_name: str = "A",
    b_name: str = "B",
    n_boot: int = 10_000,
    n_resamples: int = 9_999,
    seed: int = 0,
) -> Comparison:
    """Run a against run b over the problems both scored; positive differences favour a."""
    check_unique(a_records)
    check_unique(b_records)
    scale_a, scale_b = max_score_of(a_records), max_score_of(b_records)
    if scale_a is not None and scale_b is not None and scale_a != scale_b:
        raise ValueError(f"{a_name} is graded out of {scale_a:g} and {b_name} out of {scale_b:g}; compare runs on one scale")
    means_a = problem_means(scores_by_problem(a_records))
    means_b = problem_means(scores_by_problem(b_records))
    shared = sorted(means_a.keys() & means_b.keys())
    result = Comparison(
        a_name=a_name,
        b_name=b_name,
        max_score=scale_a if scale_a is not None else scale_b,
        problems=len(shared),
        only_in_a=sorted(means_a.keys() - means_b.keys()),
        only_in_b=sorted(means_b.keys() - means_a.keys()),
    )
    if not shared:
        return result
    a = [means_a[p] for p in shared]
    b = [means_b[p] for p in shared]
    result.mean_a = sum(a) / len(a)
    result.mean_b = sum(b) / len(b)
    result.difference = result.mean_a - result.mean_b
    result.ci = paired_bootstrap_ci(a, b, n_boot=n_boot, seed=seed)
    result.p_value = sign_flip_p_value(a, b, n_resamples=n_resamples, seed=seed)
    result.a_wins = sum(x > y for x, y in zip(a, b, strict=False))
    result.b_wins = sum(y > x for x, y in zip(a, b, strict=False))
    result.ties = len(shared) - result.a_wins - result.b_wins
    return result


def comparison_rows(c: Comparison) -> list[tuple[str, str]]:
    ci = "-" if c.ci is None else f"{c.ci[0]:+.2f} to {c.ci[1]:+.2f}"
    difference = "-" if c.difference is None else f"{c.difference:+.2f}"
    return [
        ("problems compared", str(c.problems)),
        ("dropped (scored in one run only)", f"{c.dropped} ({len(c.only_in_a)} only in {c.a_name}, {len(c.only_in_b)} only in {c.b_name})"),
        (f"mean {c.a_name} (points)", number(c.mean_a)),
        (f"mean {c.b_name} (points)", number(c.mean_b)),
        (f"difference {c.a_name} - {c.b_name}", difference),
        ("paired bootstrap 95% CI", ci),
        ("sign-flip p-value", number(c.p_value, 4)),
        (f"problems {c.a_name} / {c.b_name} / tied", f"{c.a_wins} / {c.b_wins} / {c.ties}"),
    ]


def render_markdown(c: Comparison) -> str:
    return f"# {c.a_name} vs {c.b_name}\n\n" + markdown_table(("", "value"), comparison_rows(c)) + "\n"


def render_terminal(c: Comparison, console: Console | None = None) -> Table:
    """The comparison as a rich table; printed to `console` when one is given, and returned."""
    return rich_table(f"{c.a_name} vs {c.b_name}", ("", "value"), comparison_rows(c), console)
