"""How a source's columns become Problem fields (`ColumnMap`), and the checks its rows must pass (`Layout`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from qednano.errors import first_error


class ProblemLoadError(ValueError):
    """A source that cannot be read into problems; the message names file, row, field and fix."""


# A column name (it must exist), a tuple of candidates (the first one present is used, none is
# fine), or None (the field is not read). Dotted names reach into struct columns: "metadata.year".
Columns = str | tuple[str, ...] | None


class ColumnMap(BaseModel):
    """Which source column fills each Problem field. The defaults guess common names."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Columns = ("id", "problem_id", "question_id", "Problem ID", "problem_idx")
    statement: Columns = ("problem", "statement", "Problem", "question")
    reference_solution: Columns = ("solution", "reference_solution", "Solution")
    grading_guidelines: Columns = ("grading_guidelines", "Grading guidelines")
    rubric: Columns = Field(
        ("rubric", "rubrics", "marking_scheme", "grading_scheme"),
        description="A list of {title, points, desc} criteria (or its JSON text); plain text is read as guidelines.",
    )
    short_answer: Columns = ("answer", "short_answer", "Short Answer")
    category: Columns = ("category", "Category")
    level: Columns = ("level", "Level")
    source: Columns = ("source", "Source")
    year: Columns = Field(("year",), description="Read as a year; when unmapped, a year is parsed from source.")
    metadata: dict[str, str | tuple[str, ...]] = Field(default_factory=dict, description="Metadata key -> column.")
    # Graded responses, read only by `load_rated_responses` (grader benchmarks).
    response: Columns = None
    human_points: Columns = None
    generator: Columns = None

    def overridden(self, changes: ColumnMap | Mapping[str, Any]) -> ColumnMap:
        """This map with the fields set in `changes` replaced (the rest kept)."""
        try:
            given = changes if isinstance(changes, ColumnMap) else ColumnMap.model_validate(dict(changes))
        except ValidationError as err:
            field, message = first_error(err)
            known = ", ".join(ColumnMap.model_fields)
            raise ProblemLoadError(f"column map: {field!r}: {message}. Known fields: {known}") from err
        return self.model_copy(update={name: getattr(given, name) for name in given.model_fields_set})


class Layout(BaseModel):
    """How to read one dataset: its columns plus the checks its rows must pass."""

    model_config = ConfigDict(frozen=True)

    columns: ColumnMap = Field(default_factory=ColumnMap)
    imobench: bool = Field(False, description="Check Category (and Level) against the IMO-Bench sets.")
    required: tuple[str, ...] = Field((), description="Problem fields that must be non-empty ('marking_scheme' = criteria or guidelines).")
    one_row_per_problem: bool = Field(True, description="False when several rows (graded responses) share a problem.")
    hash_missing_ids: bool = Field(False, description="With no id column, make ids from a hash of the statement.")
    rescale_rubrics: bool = Field(False, description="Scale rubric points to sum to 7 instead of refusing another sum.")
