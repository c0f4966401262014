"""What an evaluation run stores per sample: one JSON line in `samples.jsonl`.

Reports, the viewer and `qednano grade` all read this record, so it carries the problem's
breakdown fields (category, level, source) alongside the attempt and its grade.
"""

from __future__ import annotations

from pydantic import BaseModel

from qednano.grading.record import Grade
from qednano.problems.record import Problem
from qednano.scaffolds.base import Attempt


class SampleRecord(BaseModel):
    problem_id: str
    sample_index: int
    category: str = ""
    level: str = ""
    source: str = ""
    attempt: Attempt
    grade: Grade | None = None  # None until graded

    @classmethod
    def start(cls, problem: Problem, attempt: Attempt) -> SampleRecord:
        return cls(
            problem_id=problem.id,
            sample_index=attempt.sample_index,
            category=problem.category,
            level=problem.level,
            source=problem.source,
            attempt=attempt,
        )

    @property
    def key(self) -> tuple[str, int]:
        return (self.problem_id, self.sample_index)

    @property
    def score(self) -> float | None:
        """Points for this sample, or None when it cannot be counted (failed or ungraded)."""
        if self.attempt.status == "failed" or self.grade is None:
            return None
        if self.attempt.status == "no_proof":
            return 0.0
        return self.grade.score if self.grade.status == "graded" else None
