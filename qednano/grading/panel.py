"""A panel: several graders (or several samples of one) whose scores are aggregated.

Panels reduce the noise of a single LLM grader and measure it: the returned `PanelGrade` keeps
every member's Grade and reports how far they disagree (population standard deviation and
max - min of the graded scores). Ungraded members are left out of the aggregate; if none is
graded the panel is ungraded. Member calls are gathered into the panel's `calls`, so its cost is
the cost of all of them.

Member grades are kept in `Grade.members`; the summary of member scores and disagreement is
also written into `assessment` so that reports and the viewer can show it as text.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Callable, Sequence
from typing import Literal

from qednano.grading.record import Grade, ProofGrader
from qednano.problems.record import Problem

Aggregate = Literal["mean", "median", "min"]
AGGREGATES: dict[str, Callable[[Sequence[float]], float]] = {
    "mean": statistics.fmean,
    "median": statistics.median,
    "min": min,
}


class PanelGrade(Grade):
    """A Grade whose `spread` and `std` are filled from its members (plain fields of `Grade`, so
    they survive `samples.jsonl`, which stores every grade as a `Grade`)."""

    def model_post_init(self, context: object) -> None:
        scores = self.graded_scores
        if scores:
            self.spread = max(scores) - min(scores)
            self.std = statistics.pstdev(scores)

    @property
    def graded_scores(self) -> list[float]:
        return [m.score for m in self.members if m.status == "graded" and m.score is not None]


class Panel:
    """Implements `ProofGrader` by asking every member grader, concurrently."""

    def __init__(self, graders: list[ProofGrader], samples_per_grader: int = 1, aggregate: Aggregate = "mean"):
        if not graders:
            raise ValueError("a Panel needs at least one grader")
        if samples_per_grader < 1:
            raise ValueError(f"samples_per_grader must be 1 or more, got {samples_per_grader}")
        if aggregate not in AGGREGATES:
            raise ValueError(f"unknown aggregate {aggregate!r}; choose one of {', '.join(AGGREGATES)}")
        self.graders = list(graders)
        self.samples_per_grader = samples_per_grader
        self.aggregate = aggregate
        times = f"x{samples_per_grader}" if samples_per_grader > 1 else ""
        self.name = f"panel-{aggregate}({', '.join(g.name + times for g in self.graders)})"

    async def grade(self, problem: Problem, proof: str, sample_index: int = 0) -> PanelGrade:
        if not proof.strip():
            return PanelGrade(status="no_proof", score=0, grader=self.name)
        # Sample s of a grader for panel sample i is that grader's sample i * k + s: panel samples
        # never share a member's grading sample (or its cache entry).
        k = self.samples_per_grader
        jobs = [g.grade(problem, proof, sample_index * k + s) for g in self.graders for s in range(k)]
        members = list(await asyncio.gather(*jobs))
        return self.combine(members)

    def combine(self, members: list[Grade]) -> PanelGrade:
        """One PanelGrade from the members' Grades (public so tests and re-aggregation can use it)."""
        calls = [call for member in members for call in member.calls]
        graded = [m for m in members if m.status == "graded" and m.score is not None]
        common = {"grader": self.name, "members": members, "calls": calls}
        if not graded:
            if all(m.status == "no_proof" for m in members):
                return PanelGrade(status="no_proof", score=0, **common)
            errors = "; ".join(f"{m.grader}: {m.error}" for m in members)
            grade = PanelGrade(status="ungraded", error=f"no panel member gave a verdict ({errors})", **common)
            grade.assessment = summary(grade, self.aggregate)
            return grade
        tops = {m.max_score for m in graded}
        if len(tops) > 1:
            raise ValueError(f"panel {self.name} mixes score scales {sorted(tops)}; use graders of one scale")
        combine = AGGREGATES[self.aggregate]
        titles = {title for m in graded for title in m.criteria}
        criteria = {t: combine([m.criteria[t] for m in graded if t in m.criteria]) for t in sorted(titles)}
        grade = PanelGrade(
            status="graded",
            score=combine([m.score for m in graded]),
            max_score=tops.pop(),
            criteria=criteria,
            **common,
        )
        grade.assessment = summary(grade, self.aggregate)
        return grade


def summary(grade: PanelGrade, aggregate: str) -> str:
    """A readable account of the panel: the aggregate, the disagreement, each member's result."""
    graded = len(grade.graded_scores)
    head = f"panel {aggregate} over {graded} of {len(grade.members)} members: "
    if grade.score is None:
        head += "ungraded"
    else:
        head += f"{grade.score:g} (spread {grade.spread:g}, std {grade.std:.2f})"
    members = [
        f"- {m.grader}: {m.score:g}" if m.status == "graded" else f"- {m.grader}: {m.status}" for m in grade.members
    ]
    return "\n".join([head, *members])
