"""Benchmarks, Hugging Face datasets and local files, read into validated `Problem`s.

`load_problems(source)` takes
- a benchmark short name (`imo-proofbench`, `imo-answerbench`, `proofbench`): the local
  IMO-Bench CSV when a data directory holds one, else the benchmark's Hugging Face dataset;
- a Hugging Face dataset name (`lm-provers/IMOProofBench`), read with `datasets.load_dataset`;
- a path: a CSV, JSON/JSONL or parquet file, or a folder written by `Dataset.save_to_disk`.

The parts, one file each: `columns.py` (which column fills which field, `ColumnMap`, and a
source's checks, `Layout`), `layouts.py` (the datasets we know and the data folders),
`readers.py` (files and datasets as tables of rows, each row knowing its line), `rows.py` (row
checks and rows to Problems). This module puts them together, and reads graded responses
(problem, proof, human points) for grader benchmarks.

Errors name the file, where the row is and the field: "p.jsonl line 2", "p.csv lines 7-9" (a
quoted field spanning lines), "IMOProofBench [train] row 3" (sources without lines), as a text
editor or dataset viewer shows them; a field a record does not have "is missing", a field that
holds only whitespace "is empty".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from qednano.problems.columns import ColumnMap, Layout, ProblemLoadError
from qednano.problems.layouts import BENCHMARKS, HUB_LAYOUTS, detect_layout, find_local
from qednano.problems.readers import SourceRow, Table, read_hub, read_path
from qednano.problems.record import Problem
from qednano.problems.rows import RowChecker, as_number, problem_rows, problems_from

__all__ = ["ProblemLoadError", "RatedResponse", "load_problems", "load_rated_responses", "open_source", "responses_from"]


def open_source(
    source: str, split: str | None = None, columns: ColumnMap | Mapping[str, Any] | None = None, limit: int | None = None
) -> tuple[Table, Layout]:
    """The rows of a benchmark name, path or Hugging Face name, and how to read them."""
    if source in BENCHMARKS:
        benchmark = BENCHMARKS[source]
        local = find_local(benchmark.local_file) if benchmark.local_file else None
        source = str(local) if local else benchmark.hub
        split = split if local else (split or benchmark.split)
    path = Path(source).expanduser()
    if path.exists():
        table = read_path(path, split, limit)
        layout = detect_layout(table.columns)
    elif re.fullmatch(r"[\w.-]+/[\w.-]+", source):
        table = read_hub(source, split or "train", limit)
        layout = HUB_LAYOUTS.get(source, Layout())
    else:
        raise ProblemLoadError(
            f"{source!r} is not a benchmark name ({', '.join(BENCHMARKS)}), an existing file or folder, "
            "or a Hugging Face dataset name (owner/name)"
        )
    if columns is not None:
        layout = layout.model_copy(update={"columns": layout.columns.overridden(columns)})
    return table, layout


def load_problems(
    source: str,
    *,
    split: str | None = None,
    columns: ColumnMap | Mapping[str, Any] | None = None,
    limit: int | None = None,
    rescale_rubrics: bool = False,
) -> list[Problem]:
    """Problems from a benchmark short name, a Hugging Face dataset name or a file path.

    `columns` overrides the source's column map field by field, e.g.
    `{"id": "problem_idx", "statement": "problem"}`. `limit` keeps the first rows only.
    `rescale_rubrics` scales rubric points that do not sum to 7 (otherwise an error).
    """
    table, layout = open_source(source, split=split, columns=columns, limit=limit)
    return problems_from(table, layout.model_copy(update={"rescale_rubrics": rescale_rubrics}))


class RatedResponse(BaseModel):
    """A model's proof with the points a human expert gave it (for measuring graders)."""

    problem: Problem
    response: str
    points: float
    max_points: float = 7.0
    generator: str = ""  # the model that wrote the response
    response_id: str  # unique within the source


def responses_from(table: Table, layout: Layout) -> list[tuple[Problem, str, SourceRow]]:
    """(problem, response, row) for each row of a table of responses; rows of one problem share it."""
    return _responses(RowChecker(table, layout))


def _responses(checker: RowChecker) -> list[tuple[Problem, str, SourceRow]]:
    if checker.fields["response"] is None:
        raise ProblemLoadError(f"{checker.table.name}: no column for 'response'. Fix: pass --column response=COLUMN")
    return [(problem, checker.get(row, "response"), row) for problem, row in problem_rows(checker, unique_ids=False)]


def load_rated_responses(
    source: str = "wenjiema02/ProofBench",
    *,
    split: str | None = None,
    columns: ColumnMap | Mapping[str, Any] | None = None,
    limit: int | None = None,
    max_points: float = 7.0,
) -> list[RatedResponse]:
    """(problem, response, human points) rows of a graded-proof dataset such as wenjiema02/ProofBench."""
    table, layout = open_source(source, split=split, columns=columns, limit=limit)
    checker = RowChecker(table, layout)
    if checker.fields["human_points"] is None:
        raise ProblemLoadError(f"{table.name}: no column for 'human_points'. Fix: pass --column human_points=COLUMN")
    rated: list[RatedResponse] = []
    for problem, response, row in _responses(checker):
        raw = checker.raw(row, "human_points")
        points = as_number(raw)
        if points is None or not 0 <= points <= max_points:
            trouble = checker.blank(row, "human_points") if raw is None or raw == "" else f"is {raw!r}"
            raise checker.fail(row, problem.id, "human_points", f"{trouble}, not a number from 0 to {max_points:g}", "fix the rating")
        generator = checker.get(row, "generator")
        rated.append(
            RatedResponse(
                problem=problem,
                response=response,
                points=points,
                max_points=max_points,
                generator=generator,
                response_id=f"{problem.id}/{generator or 'response'}/row-{row.number}",
            )
        )
    return rated
