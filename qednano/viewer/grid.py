"""The run page's grid: one row per problem, one cell per sample, with a status per cell.

Statuses follow MathArena's grid: a graded cell shows its points; a cell with no proof (empty or
unclosed reasoning) counts 0; an ungraded cell (no grade yet, or no readable verdict) and a
failed cell (the model call failed) are shown but not counted, and each row says how many of
its samples its mean counts. Truncation (the proof's call hit its token limit) is a mark on top
of the status, since a truncated proof can still be graded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import fmean
from typing import Literal

from pydantic import BaseModel, Field

from qednano.problems.record import Problem
from qednano.records.sample import SampleRecord

CellStatus = Literal["graded", "no_proof", "ungraded", "failed"]
STATUSES: tuple[CellStatus, ...] = ("graded", "no_proof", "ungraded", "failed")
SORTS = ("id", "-id", "mean", "-mean", "category", "level", "source", "tokens", "-tokens")


@dataclass
class Cell:
    sample_index: int
    status: CellStatus
    score: float | None  # None when not counted (failed, ungraded)
    max_score: float
    truncated: bool
    tokens: int

    @property
    def fraction(self) -> float | None:
        return None if self.score is None or not self.max_score else self.score / self.max_score


def cell_status(record: SampleRecord) -> CellStatus:
    if record.attempt.status == "failed":
        return "failed"
    if record.attempt.status == "no_proof" or (record.grade is not None and record.grade.status == "no_proof"):
        return "no_proof"
    if record.grade is None or record.grade.status == "ungraded":
        return "ungraded"
    return "graded"


def make_cell(record: SampleRecord) -> Cell:
    usage = record.attempt.usage
    return Cell(
        sample_index=record.sample_index,
        status=cell_status(record),
        score=record.score,
        max_score=record.grade.max_score if record.grade else 7.0,
        truncated=record.attempt.truncated,
        tokens=usage.prompt_tokens + usage.completion_tokens,
    )


@dataclass
class Row:
    problem_id: str
    statement: str
    category: str
    level: str
    source: str
    cells: list[Cell | None] = field(default_factory=list)  # by sample index; None = not run yet

    @property
    def present(self) -> list[Cell]:
        return [c for c in self.cells if c is not None]

    @property
    def counted(self) -> list[float]:
        return [c.score for c in self.present if c.score is not None]

    @property
    def mean(self) -> float | None:
        return fmean(self.counted) if self.counted else None

    @property
    def max_score(self) -> float:
        return max((c.max_score for c in self.present), default=7.0)

    @property
    def tokens(self) -> int:
        return sum(c.tokens for c in self.present)


def build_rows(records: list[SampleRecord], problems: dict[str, Problem]) -> list[Row]:
    """One row per problem (in the order first seen), cells placed by sample index."""
    width = 1 + max((r.sample_index for r in records), default=-1)
    rows: dict[str, Row] = {}
    for record in records:
        row = rows.get(record.problem_id)
        if row is None:
            problem = problems.get(record.problem_id)
            row = Row(
                problem_id=record.problem_id,
                statement=problem.statement if problem else "",
                category=record.category or (problem.category if problem else ""),
                level=record.level or (problem.level if problem else ""),
                source=record.source or (problem.source if problem else ""),
                cells=[None] * width,
            )
            rows[record.problem_id] = row
        row.cells[record.sample_index] = make_cell(record)
    return list(rows.values())


class Filters(BaseModel):
    """The run page's query parameters; empty strings mean "any"."""

    min_score: float | None = None
    max_score: float | None = None
    category: str = ""
    level: str = ""
    source: str = ""
    status: CellStatus | Literal[""] = ""  # rows with at least one cell of this status
    truncated: Literal["", "yes", "no"] = ""  # rows with (yes) or without (no) a truncated cell
    q: str = Field("", description="search in the problem id and statement")
    sort: str = "id"

    def keeps(self, row: Row) -> bool:
        mean = row.mean
        if self.min_score is not None and (mean is None or mean < self.min_score):
            return False
        if self.max_score is not None and (mean is None or mean > self.max_score):
            return False
        for name in ("category", "level", "source"):
            wanted = getattr(self, name)
            if wanted and getattr(row, name) != wanted:
                return False
        if self.status and not any(c.status == self.status for c in row.present):
            return False
        if self.truncated and any(c.truncated for c in row.present) != (self.truncated == "yes"):
            return False
        needle = self.q.strip().lower()
        return not needle or needle in row.statement.lower() or needle in row.problem_id.lower()


def sort_rows(rows: list[Row], sort: str) -> list[Row]:
    name = sort.lstrip("-")
    if name == "mean":
        # rows with nothing counted go last whichever the direction
        counted = sorted((r for r in rows if r.mean is not None), key=lambda r: r.mean, reverse=sort.startswith("-"))
        return counted + [r for r in rows if r.mean is None]
    if name in {"category", "level", "source", "tokens"}:
        return sorted(rows, key=lambda r: (getattr(r, name), r.problem_id), reverse=sort.startswith("-"))
    return sorted(rows, key=lambda r: r.problem_id, reverse=sort == "-id")


def select(rows: list[Row], filters: Filters) -> list[Row]:
    return sort_rows([r for r in rows if filters.keeps(r)], filters.sort if filters.sort in SORTS else "id")


def choices(rows: list[Row], name: str) -> list[str]:
    """The distinct non-empty values of a row field, for a filter's menu."""
    return sorted({getattr(r, name) for r in rows if getattr(r, name)})


def status_counts(rows: list[Row]) -> dict[str, int]:
    counts = {status: 0 for status in STATUSES}
    for row in rows:
        for cell in row.present:
            counts[cell.status] += 1
    counts["truncated"] = sum(c.truncated for r in rows for c in r.present)
    return counts


def overall_mean(rows: list[Row]) -> tuple[float | None, int, int]:
    """Mean points over every counted cell, how many were counted, and how many cells there are."""
    scores = [s for r in rows for s in r.counted]
    total = sum(len(r.present) for r in rows)
    return (fmean(scores) if scores else None), len(scores), total
