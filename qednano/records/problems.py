"""`problems.jsonl`: the problems a run worked on, so that later readers (the viewer) can show
statements, reference solutions and marking schemes without loading the benchmark again."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from qednano.errors import first_error
from qednano.problems.record import Problem

FILENAME = "problems.jsonl"


def write_problems(run_dir: str | Path, problems: list[Problem]) -> Path:
    """Write (atomically replace) `run_dir/problems.jsonl`, one problem per line."""
    path = Path(run_dir) / FILENAME
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for problem in problems:
            handle.write(json.dumps(problem.model_dump(mode="json"), ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


def read_problems(run_dir: str | Path) -> dict[str, Problem]:
    """The problems of `run_dir` by id ({} when the run stored none); a bad line names file, line and field."""
    path = Path(run_dir) / FILENAME
    if not path.is_file():
        return {}
    problems: dict[str, Problem] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            problem = Problem.model_validate(json.loads(line))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: not valid JSON ({err.msg} at column {err.colno})") from err
        except ValidationError as err:
            field, message = first_error(err)
            raise ValueError(f"{path}:{number}: not a Problem: field {field or '(record)'!r}: {message}") from err
        problems[problem.id] = problem
    return problems
