"""How much a panel's graders disagree over a run: from each sample's panel grade (its `spread`,
`std` and member grades, kept in samples.jsonl) to a few numbers a report shows.

Only samples that at least two panel members graded count: with one graded member there is
nothing to disagree about. The count of samples whose members differ by `DISAGREE_POINTS` or
more says how often a single grader would have given a visibly different score.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from qednano.records.sample import SampleRecord
from qednano.tables import number

DISAGREE_POINTS = 2.0  # on the 7-point scale: more than a "6 against 7" judgement call


class PanelDisagreement(BaseModel):
    samples: int  # samples graded by at least two panel members
    mean_spread: float  # points: mean over those samples of highest minus lowest member score
    mean_std: float  # points: mean over those samples of the members' population std
    largest_spread: float
    disagree_at: float = DISAGREE_POINTS
    disagreeing: int  # samples whose members' scores differ by at least `disagree_at` points


def graded_members(record: SampleRecord) -> int:
    members = record.grade.members if record.grade is not None else []
    return sum(m.status == "graded" and m.score is not None for m in members)


def panel_disagreement(records: Sequence[SampleRecord]) -> PanelDisagreement | None:
    """The run's panel disagreement; None when no sample was graded by two or more members."""
    grades = [r.grade for r in records if graded_members(r) >= 2 and r.grade.spread is not None]
    if not grades:
        return None
    spreads = [grade.spread for grade in grades]
    return PanelDisagreement(
        samples=len(grades),
        mean_spread=sum(spreads) / len(grades),
        mean_std=sum(grade.std or 0.0 for grade in grades) / len(grades),
        largest_spread=max(spreads),
        disagreeing=sum(spread >= DISAGREE_POINTS for spread in spreads),
    )


def disagreement_rows(panel: PanelDisagreement) -> list[tuple[str, str]]:
    share = 100 * panel.disagreeing / panel.samples
    return [
        ("samples graded by 2+ members", str(panel.samples)),
        ("mean spread (max - min, points)", number(panel.mean_spread)),
        ("mean std (points)", number(panel.mean_std)),
        ("largest spread (points)", number(panel.largest_spread)),
        (f"members {number(panel.disagree_at, 0)}+ points apart", f"{panel.disagreeing} ({share:.1f}%)"),
    ]
