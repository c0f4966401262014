"""The run directories a viewer serves, read through the contracts that eval, train and data write.

The viewer only reads. It knows each run by a short key made from its folder name and never
turns a URL into a path: a request names a key, and the key is looked up in `RunSet.runs`, so
nothing outside the folders given on the command line can be reached.

Files are re-read when they change on disk, so a run still in progress can be watched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from qednano.problems.record import Problem
from qednano.records.jsonl import read_jsonl
from qednano.records.problems import read_problems
from qednano.records.sample import SampleRecord
from qednano.records.store import SampleStore, load_manifest


class TrainingCompletion(BaseModel):
    """One line of a training run's `completions.jsonl`."""

    step: int
    problem_id: str = ""
    prompt: Any = ""  # a string, or chat messages
    completion: Any = ""
    reward: float | None = None  # weighted sum of the reward functions (None: none scored it)
    rewards: dict[str, float | None] = Field(default_factory=dict)  # per reward function
    advantage: float | None = None
    grade_status: str | None = None
    state: int | None = None  # reasoning-cache turn index


class Match(BaseModel):
    """One line of a dedup or decontamination run's `matches.jsonl`."""

    train_id: str
    against_id: str
    against: str = ""
    method: str
    similarity: float
    train_text: str = ""
    against_text: str = ""


def read_lines(path: Path, model: type[BaseModel] | None = None) -> list:
    """A run's JSONL file through the records' reader; [] when the run has none."""
    return read_jsonl(path, model) if path.is_file() else []


@dataclass
class RunDir:
    key: str
    path: Path
    _cache: dict[str, tuple[tuple, Any]] = field(default_factory=dict, repr=False)

    def _cached(self, name: str, load):
        """`load()` of file `name`, read again only when its size or mtime changed."""
        file = self.path / name
        stat = file.stat() if file.exists() else None
        stamp = (stat.st_mtime_ns, stat.st_size) if stat else None
        hit = self._cache.get(name)
        if hit is None or hit[0] != stamp:
            hit = (stamp, load())
            self._cache[name] = hit
        return hit[1]

    def has(self, name: str) -> bool:
        return (self.path / name).is_file()

    @property
    def manifest(self) -> dict:
        return self._cached("manifest.json", lambda: load_manifest(self.path / "manifest.json"))

    @property
    def command(self) -> str:
        return str(self.manifest.get("command", "")) or "(no manifest)"

    @property
    def kind(self) -> str:
        """What the run page shows: samples, training or matches (by the files present)."""
        if self.has("samples.jsonl"):
            return "samples"
        if self.has("metrics.jsonl") or self.has("completions.jsonl"):
            return "training"
        if self.has("matches.jsonl"):
            return "matches"
        return "empty"

    def samples(self) -> list[SampleRecord]:
        store = SampleStore(self.path / "samples.jsonl")
        return self._cached("samples.jsonl", lambda: list(store.read().values()))

    def problems(self) -> dict[str, Problem]:
        return self._cached("problems.jsonl", lambda: read_problems(self.path))

    def metrics(self) -> list[dict]:
        return self._cached("metrics.jsonl", lambda: read_lines(self.path / "metrics.jsonl"))

    def completions(self) -> list[TrainingCompletion]:
        return self._cached("completions.jsonl", lambda: read_lines(self.path / "completions.jsonl", TrainingCompletion))

    def matches(self) -> list[Match]:
        return self._cached("matches.jsonl", lambda: read_lines(self.path / "matches.jsonl", Match))


def run_key(path: Path, taken: set[str]) -> str:
    """A URL-safe name for a run: its folder name, with a number added if already taken."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", path.name).strip("-.") or "run"
    key, n = base, 2
    while key in taken:
        key, n = f"{base}-{n}", n + 1
    return key


RUN_FILES = ("manifest.json", "samples.jsonl", "metrics.jsonl", "completions.jsonl", "matches.jsonl")


def is_run(path: Path) -> bool:
    return any((path / name).is_file() for name in RUN_FILES)


def expand(path: Path) -> list[Path]:
    """A run directory as itself; a folder of runs (like `runs/`) as the runs directly inside it."""
    if is_run(path):
        return [path]
    inside = sorted(child for child in path.iterdir() if child.is_dir() and is_run(child))
    return inside or [path]


class RunSet:
    """The run directories given on the command line, by key, in the order given."""

    def __init__(self, paths: list[str | Path]):
        if not paths:
            raise ValueError("give at least one run directory")
        self.runs: dict[str, RunDir] = {}
        for given in paths:
            path = Path(given).resolve()
            if not path.is_dir():
                raise ValueError(f"{given}: not a directory (give run directories written by qednano)")
            for run in expand(path):
                key = run_key(run, set(self.runs))
                self.runs[key] = RunDir(key, run)

    def get(self, key: str) -> RunDir | None:
        return self.runs.get(key)
