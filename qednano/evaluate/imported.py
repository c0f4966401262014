"""Generations and grades in the QED-Nano reference harness's file format.

Its generation files hold one row per model response: `problem`, `model_solution`, and the
problem's `solution`, `grading_guidelines` and `answer` (plus usually an id column such as
`problem_id` or `problem_idx`, and the generation cost in `cost_run`). Its graded files add
`score` (points out of 7, or 0/1 for answers), `grade` (a list of {points, desc}), `schema_0`
(the marking scheme as {title, desc, points}) and `grade_cost` ({input_tokens, output_tokens,
cost}). `qednano grade` reads the first kind and writes the second, and `qednano report` reads
graded files directly, so numbers can be checked against the reference harness's own.

Rows of one problem become samples 0, 1, 2, ... of it, in file order. A file with no id column
gets ids from a hash of the statement, so repeated problems still group.

A response is split at its last `</think>` as any model output is (`llm.types.split_reasoning`).
When the model's chat template opened `<think>` in the prompt (`thinking_in_prompt`, which a file
cannot say, so `qednano grade --thinking-in-prompt` does), a response without `</think>` never
stopped reasoning: no proof. A response whose reasoning never closed counts as cut off
(finish reason "length"), since the file keeps no finish reason of its own.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

from qednano.grading.build import is_answer_problem
from qednano.grading.record import Grade
from qednano.llm.types import Completion, Usage, split_reasoning
from qednano.problems.loaders import open_source, responses_from
from qednano.problems.record import Problem
from qednano.records.sample import SampleRecord
from qednano.records.store import load_run
from qednano.scaffolds.base import Attempt, Step, attempt_from

RESPONSE_COLUMNS = ("model_solution", "response", "completion")


class ImportedRow:
    """One row of a reference-format file: the problem, our attempt, and the row as read."""

    def __init__(self, problem: Problem, attempt: Attempt, values: dict[str, Any]):
        self.problem = problem
        self.attempt = attempt
        self.values = values


def read_generations(path: str | Path, columns: dict[str, Any] | None = None,
                     thinking_in_prompt: bool = False) -> list[ImportedRow]:
    table, layout = open_source(str(path), columns={"response": RESPONSE_COLUMNS, **(columns or {})})
    layout = layout.model_copy(update={"hash_missing_ids": True})
    seen: Counter[str] = Counter()
    rows = []
    for problem, response, row in responses_from(table, layout):
        index = seen[problem.id]
        seen[problem.id] += 1
        attempt = response_attempt(problem, index, response, cost=row.values.get("cost_run"),
                                   thinking_in_prompt=thinking_in_prompt)
        rows.append(ImportedRow(problem, attempt, dict(row.values)))
    return rows


def spent(cost: Any) -> tuple[Usage, float]:
    """Tokens and dollars of a reference-format cost cell ({input_tokens, output_tokens, cost})."""
    cost = cost if isinstance(cost, dict) else {}
    usage = Usage(prompt_tokens=int(cost.get("input_tokens") or 0), completion_tokens=int(cost.get("output_tokens") or 0))
    return usage, float(cost.get("cost") or 0.0)


def response_attempt(problem: Problem, index: int, response: str | None, scaffold: str = "imported", cost: Any = None,
                     thinking_in_prompt: bool = False) -> Attempt:
    """The attempt a written response records: the proof after any reasoning, its cost if given."""
    reasoning, proof, closed = split_reasoning(response or "", opened_in_prompt=thinking_in_prompt)
    usage, cost_usd = spent(cost)
    completion = Completion(
        model=scaffold, content=proof, reasoning=reasoning, reasoning_closed=closed, usage=usage, cost_usd=cost_usd,
        finish_reason="stop" if closed else "length",
    )
    return attempt_from(problem, index, scaffold, completion, [Step(role=scaffold, messages=[], completion=completion)])


def read_graded(path: str | Path) -> list[SampleRecord]:
    """Records of a graded reference-format file: its `score` column, as the harness wrote it."""
    rows = read_generations(path)
    if rows and "score" not in rows[0].values:
        raise ValueError(f"{path}: no 'score' column; grade it first with `qednano grade {path}`")
    records = []
    for row in rows:
        record = SampleRecord.start(row.problem, row.attempt)
        records.append(record.model_copy(update={"grade": imported_grade(row)}))
    return records


def imported_grade(row: ImportedRow) -> Grade:
    score = row.values.get("score")
    max_score = 1.0 if is_answer_problem(row.problem) else 7.0  # as `infer_task` decides
    usage, cost_usd = spent(row.values.get("grade_cost"))
    call = Completion(model="imported-grader", usage=usage, cost_usd=cost_usd)
    if score is None or (isinstance(score, float) and math.isnan(score)):
        return Grade(status="ungraded", max_score=max_score, grader="imported", error="no score in the file", calls=[call])
    return Grade(status="graded", score=float(score), max_score=max_score, grader="imported", calls=[call])


def load_records(path: str | Path) -> tuple[list[SampleRecord], dict]:
    """Records and manifest of a run directory, or of a graded reference-format file."""
    path = Path(path)
    if path.is_dir():
        return load_run(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is neither a run directory nor a graded file")
    return read_graded(path), {"config": {"bench": path.name}}


def graded_row(row: ImportedRow, record: SampleRecord) -> dict[str, Any]:
    """The input row plus the reference harness's grading columns."""
    grade = record.grade
    usage = Usage()
    for call in grade.calls if grade else []:
        usage = usage + call.usage
    points = [{"points": v, "desc": k} for k, v in grade.criteria.items()] if grade and grade.criteria else []
    if grade is not None and grade.score is not None and not points:
        points = [{"points": grade.score, "desc": grade.assessment}]
    schema = [{"title": c.title, "desc": c.description, "points": c.points} for c in row.problem.criteria]
    return {
        **row.values,
        "score": record.score,
        "grade": points,
        "schema_0": schema,
        "grade_cost": {
            "input_tokens": usage.prompt_tokens,
            "output_tokens": usage.completion_tokens,
            "cost": grade.cost_usd if grade else 0.0,
        },
        "grade_status": grade.status if grade else None,
    }


def write_graded(path: str | Path, rows: list[ImportedRow], records: list[SampleRecord]) -> None:
    with Path(path).open("w") as handle:
        for row, record in zip(rows, records, strict=True):
            handle.write(json.dumps(graded_row(row, record), ensure_ascii=False, default=str) + "\n")
