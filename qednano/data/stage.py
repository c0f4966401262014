"""What every data stage shares: its input problems, its run directory, and the files in it.

A stage reads problems (a benchmark, a dataset, a file, or the run directory of an earlier
stage), does its work through `records.pipeline` inside a `records.rundir.Run`, and writes
`problems.jsonl` beside its own records: every problem its samples refer to (the viewer shows
them). A stage that selects problems (rubrics, label, difficulty) also writes `kept_ids.txt`,
one id per line; the next stage reads only those. Stages chain by pointing one at the
directory another wrote.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from qednano.llm.model import Model
from qednano.problems.loaders import load_problems
from qednano.problems.record import Problem
from qednano.records import problems as problem_file
from qednano.records.failures import check_outcome, summarize
from qednano.records.jsonl import read_jsonl
from qednano.records.pipeline import run_models
from qednano.records.rundir import read_manifest
from qednano.records.sample import SampleRecord
from qednano.records.store import load_run
from qednano.secrets import redact, secret_values

PROBLEMS_FILE = problem_file.FILENAME
# Settings a resumed run may change: more samples or problems extend it, the rest replays.
GROWS = ("concurrency", "samples", "limit", "problem_count", "max_failures", "timeout_s", "idle_timeout_s")
KEPT_FILE = "kept_ids.txt"


def is_run_dir(source: str | Path) -> bool:
    return Path(source).is_dir() and (Path(source) / "manifest.json").is_file()


def load_input(source: str, limit: int | None = None, columns: dict[str, str] | None = None) -> list[Problem]:
    """Problems from an earlier stage's run directory, or from anything `load_problems` reads."""
    if is_run_dir(source):
        problems = passed_on(Path(source))
        return problems[:limit] if limit else problems
    return load_problems(source, columns=columns or None, limit=limit)


def write_jsonl(path: Path, rows: Iterable[BaseModel | dict[str, Any]]) -> None:
    """Rewrite `path` atomically, one JSON object per line, secrets redacted."""
    secrets = secret_values()
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as handle:
        for row in rows:
            data = row.model_dump(mode="json") if isinstance(row, BaseModel) else row
            handle.write(json.dumps(redact(data, secrets), ensure_ascii=False) + "\n")
    tmp.replace(path)


def read_stage_file(path: Path, record: type[BaseModel]) -> list[Any]:
    """A stage's decisions file (`difficulty.jsonl`, ...); missing or bad lines fail naming it."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: is {path.parent} a run directory of the right stage?")
    return read_jsonl(path, record)


def write_problems(run_dir: Path, problems: Sequence[Problem], kept: Iterable[str] | None = None) -> None:
    """`problems.jsonl`, and `kept_ids.txt` when the stage passes on only the `kept` ids."""
    problem_file.write_problems(run_dir, list(problems))
    if kept is not None:
        wanted = set(kept)
        (run_dir / KEPT_FILE).write_text("".join(f"{p.id}\n" for p in problems if p.id in wanted))


def passed_on(run_dir: Path) -> list[Problem]:
    """The problems a stage's run directory passes on to the next stage."""
    problems = read_problems(run_dir)
    kept_path = run_dir / KEPT_FILE
    if not kept_path.is_file():
        return problems
    kept = set(kept_path.read_text().split())
    return [p for p in problems if p.id in kept]


def read_problems(run_dir: Path) -> list[Problem]:
    """The problems of a run directory; a missing or bad `problems.jsonl` fails naming it."""
    if not (run_dir / PROBLEMS_FILE).is_file():
        raise FileNotFoundError(f"{run_dir / PROBLEMS_FILE} does not exist: is {run_dir} a run directory of a data stage?")
    return list(problem_file.read_problems(run_dir).values())


def read_stage(run_dir: str | Path, commands: Sequence[str]) -> tuple[list[SampleRecord], list[Problem], dict]:
    """The samples, problems and manifest of a run written by one of `commands`."""
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    if manifest is None:
        raise FileNotFoundError(f"{run_dir} has no manifest.json: give a run directory written by qednano ({', '.join(commands)})")
    if manifest.get("command") not in commands:
        raise ValueError(f"{run_dir} was written by {manifest.get('command')!r}; this step reads runs of {', '.join(commands)}")
    records, _ = load_run(run_dir)
    return records, read_problems(run_dir), manifest


def check_resumable(run_dir: Path, config: dict[str, Any], may_change: Sequence[str] = GROWS) -> None:
    """An existing run directory is resumed only by the same command with the same settings."""
    previous = read_manifest(run_dir)
    if previous is None:
        return
    before = previous.get("config", {})
    changed = sorted(k for k in before.keys() | config.keys() if k not in may_change and before.get(k) != config.get(k))
    if changed:
        details = "; ".join(f"{k}: {before.get(k)!r} -> {config.get(k)!r}" for k in changed)
        raise ValueError(f"{run_dir} holds a run with different {', '.join(changed)} ({details}); choose another --out")


def run_samples(models: Sequence[Model], job: Awaitable[list[SampleRecord]]) -> list[SampleRecord]:
    """`run_models` for generate/grade work; a run whose every sample failed raises RunFailed
    (a run stopped early by --max-failures raises it from the pipeline)."""
    records = run_models(models, job)
    check_outcome(summarize(records))
    return records
