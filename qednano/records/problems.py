"""`problems.jsonl`: the problems a run worked on, so that later readers (the viewer) can show
statements, reference solutions and marking schemes without loading the benchmark again."""

from __future__ import annotations

import json
from pathlib import Path

from qednano.problems.record import Problem
from qednano.records.jsonl import read_jsonl

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
    return {problem.id: problem for problem in read_jsonl(path, Problem)}
