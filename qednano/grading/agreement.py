"""How well a grader agrees with human graders (the `grader-bench`).

Input rows are (problem_id, human points, grader points or None); None means the grader gave
no usable verdict. Such rows are counted and left out of every number. Besides the usual
error and correlation numbers, two measure what RL training actually uses: whether the
grader ranks two answers to the same problem the way humans do, and whether the GRPO
advantages computed from its scores point the same way as those computed from human scores.

The IMO-GradingBench CSV labels each response incorrect / partial / almost / correct, which
stand for 0 / 1 / 6 / 7 points on the IMO-ProofBench scale; its Points column holds the human
points. The default buckets below put each of those four values in its own bucket.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from itertools import combinations
from typing import NamedTuple

import numpy as np
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from scipy import stats

from qednano.tables import markdown_table, number, rich_table

# (name, lowest points): a score belongs to the last bucket whose lowest points it reaches,
# so the buckets are [0, 1), [1, 4), [4, 7), [7, ...) and fractional grader scores fit too.
Buckets = tuple[tuple[str, float], ...]
IMO_BUCKETS: Buckets = (("incorrect", 0.0), ("partial", 1.0), ("almost", 4.0), ("correct", 7.0))

ADVANTAGE_EPS = 1e-4  # the epsilon TRL's GRPO adds to the group std
ZERO = 1e-9  # an advantage this small is "no push either way"


class AgreementRow(NamedTuple):
    problem_id: str
    human: float
    grader: float | None  # None: the grader gave no usable verdict


class AgreementReport(BaseModel):
    rows: int
    ungraded: int  # rows whose grader points are None; excluded below
    used: int
    problems: int
    mae: float | None = None
    exact_accuracy: float | None = None
    bucket_accuracy: float | None = None
    buckets: list[str]
    pearson: float | None = None  # None when either side is constant
    spearman: float | None = None
    kendall: float | None = None
    pairs: int = 0  # same-problem pairs with different human points
    pairwise_agreement: float | None = None
    advantage_groups: int = 0  # problems with at least two used rows
    advantage_rows: int = 0
    advantage_correlation: float | None = None
    advantage_sign_agreement: float | None = None


def bucket_of(points: float, buckets: Buckets = IMO_BUCKETS) -> str:
    """The name of the last bucket whose lowest points `points` reaches (the first if none)."""
    name = buckets[0][0]
    for bucket, lowest in buckets:
        if points >= lowest:
            name = bucket
    return name


def _correlation(method, x: np.ndarray, y: np.ndarray) -> float | None:
    # scipy warns and returns nan for constant input; a constant side has no correlation to report.
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(method(x, y).statistic)


def pairwise_agreement(groups: dict[str, list[tuple[float, float]]]) -> tuple[int, float | None]:
    """(pairs, agreement) over pairs of responses to the same problem that humans score apart.

    A pair counts 1 when the grader orders it as the humans do, 0.5 when the grader gives both
    the same points, and 0 when it orders them the other way. Pairs are pooled over problems.
    """
    pairs, credit = 0, 0.0
    for scored in groups.values():
        for (h1, g1), (h2, g2) in combinations(scored, 2):
            if h1 == h2:
                continue
            pairs += 1
            credit += 0.5 if g1 == g2 else float((g1 > g2) == (h1 > h2))
    return pairs, (credit / pairs if pairs else None)


def group_advantages(rewards: Sequence[float], eps: float = ADVANTAGE_EPS) -> np.ndarray:
    """GRPO advantages of one group: (r - mean(r)) / (std(r) + eps), std with Bessel's
    correction, as TRL's GRPO trainer computes them."""
    values = np.asarray(rewards, dtype=float)
    return (values - values.mean()) / (values.std(ddof=1) + eps)


def advantage_agreement(groups: dict[str, list[tuple[float, float]]], eps: float = ADVANTAGE_EPS) -> dict:
    """Do grader-based GRPO advantages push the same way as human-based ones?

    Each problem with at least two used rows is one GRPO group. Within it, advantages are
    computed once from the human points and once from the grader points (`group_advantages`).
    Reported over all rows of all such groups, pooled:
    - correlation: Pearson correlation of the grader advantages with the human advantages
      (None when either side is constant, e.g. every group is unanimous);
    - sign agreement: the fraction of rows where both advantages have the same sign, with an
      advantage within 1e-9 of zero counted as sign 0 (a group where humans see no difference
      agrees only when the grader sees none either).
    """
    human, grader, groups_used = [], [], 0
    for scored in groups.values():
        if len(scored) < 2:
            continue
        groups_used += 1
        human.append(group_advantages([h for h, _ in scored], eps))
        grader.append(group_advantages([g for _, g in scored], eps))
    if not groups_used:
        return {"advantage_groups": 0, "advantage_rows": 0}
    a_h, a_g = np.concatenate(human), np.concatenate(grader)
    signs_h = np.where(np.abs(a_h) < ZERO, 0, np.sign(a_h))
    signs_g = np.where(np.abs(a_g) < ZERO, 0, np.sign(a_g))
    return {
        "advantage_groups": groups_used,
        "advantage_rows": int(a_h.size),
        "advantage_correlation": _correlation(stats.pearsonr, a_h, a_g),
        "advantage_sign_agreement": float(np.mean(signs_h == signs_g)),
    }


def agreement(rows: Iterable[tuple[str, float, float | None]], buckets: Buckets = IMO_BUCKETS) -> AgreementReport:
    """Grader-vs-human agreement over `rows` of (problem_id, human points, grader points).

    MAE is in points; exact accuracy counts grader == human; bucket accuracy counts the same
    bucket (`bucket_of`); Pearson, Spearman and Kendall (tau-b) come from scipy.stats.
    """
    rows = [AgreementRow(*row) for row in rows]
    used = [row for row in rows if row.grader is not None]
    groups: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for row in used:
        groups[row.problem_id].append((float(row.human), float(row.grader)))
    report = AgreementReport(
        rows=len(rows),
        ungraded=len(rows) - len(used),
        used=len(used),
        problems=len(groups),
        buckets=[name for name, _ in buckets],
    )
    if not used:
        return report
    human = np.array([row.human for row in used], dtype=float)
    grader = np.array([row.grader for row in used], dtype=float)
    report.mae = float(np.mean(np.abs(human - grader)))
    report.exact_accuracy = float(np.mean(np.isclose(human, grader)))
    report.bucket_accuracy = float(np.mean([bucket_of(h, buckets) == bucket_of(g, buckets) for h, g in zip(human, grader, strict=False)]))
    report.pearson = _correlation(stats.pearsonr, human, grader)
    report.spearman = _correlation(stats.spearmanr, human, grader)
    report.kendall = _correlation(stats.kendalltau, human, grader)
    report.pairs, report.pairwise_agreement = pairwise_agreement(groups)
    return report.model_copy(update=advantage_agreement(groups))


# ---- rendering ------------------------------------------------------------------------------


def _num(value: float | None) -> str:
    return number(value, 3)


def agreement_rows(report: AgreementReport) -> list[tuple[str, str]]:
    return [
        ("rows used", f"{report.used} of {report.rows} ({report.ungraded} ungraded, excluded)"),
        ("problems", str(report.problems)),
        ("MAE (points)", _num(report.mae)),
        ("exact accuracy", _num(report.exact_accuracy)),
        (f"bucket accuracy ({' / '.join(report.buckets)})", _num(report.bucket_accuracy)),
        ("Pearson", _num(report.pearson)),
        ("Spearman", _num(report.spearman)),
        ("Kendall tau-b", _num(report.kendall)),
        (f"pairwise order agreement ({report.pairs} pairs)", _num(report.pairwise_agreement)),
        (f"GRPO advantage correlation ({report.advantage_groups} groups)", _num(report.advantage_correlation)),
        (f"GRPO advantage sign agreement ({report.advantage_rows} rows)", _num(report.advantage_sign_agreement)),
    ]


def render_markdown(report: AgreementReport, title: str = "Grader vs human") -> str:
    return f"# {title}\n\n" + markdown_table(("metric", "value"), agreement_rows(report)) + "\n"


def render_terminal(report: AgreementReport, console: Console | None = None, title: str = "Grader vs human") -> Table:
    """The agreement as a rich table; printed to `console` when one is given, and returned."""
    return rich_table(title, ("metric", "value"), agreement_rows(report), console)
