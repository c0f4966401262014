"""Run directories and their manifests.

Every command that produces results writes them into a run directory together with
`manifest.json`: the command line, the resolved configuration, package versions, the git
revision, start and end times, and per-model token and cost totals. The manifest is written
when the run starts (status "running") and rewritten when it ends, so a killed run is visible
as such and can be resumed from the same directory.

API keys never reach a manifest: configs only name the environment variable that holds a
key, and `qednano.secrets.redact` replaces the value of any secret-looking environment variable
anywhere in what we write.
"""

from __future__ import annotations

import asyncio
import json
import platform
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from qednano.llm.model import Model
from qednano.secrets import redact

PACKAGES = (
    "qednano", "torch", "transformers", "trl", "accelerate", "datasets", "openai",
    "onnxruntime-genai", "math-verify", "pydantic",
)


@cache
def package_versions() -> dict[str, str]:
    """The versions of the packages that decide a run's numbers, read once per process."""
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = installed_version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def installed_version(name: str) -> str:
    """`metadata.version(name)`, read from the `Version:` line in the head of the package's
    metadata file: `version()` parses the whole file as an email message, long description and
    all, about 2 ms a package, eight times as long."""
    dist = metadata.distribution(name)
    for line in (dist.read_text("METADATA") or dist.read_text("PKG-INFO") or "").splitlines():
        if not line:
            break  # the headers end at the first blank line
        if line.startswith("Version:"):
            return line.partition(":")[2].strip()
    return dist.version


@cache
def git_revision(checkout: Path = Path(__file__).resolve().parent) -> str | None:
    """The commit of the qednano checkout (with +dirty when it has local changes), if it is one:
    read once per process, so it names the code this process loaded, however often the manifest
    is written. One `git status` gives both (its header names the commit; any other line is a change)."""
    try:
        status = subprocess.run(["git", "status", "--porcelain=v2", "--branch"], cwd=checkout, capture_output=True,
                                text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = status.stdout.splitlines()
    commit = next((line.split()[2] for line in lines if line.startswith("# branch.oid ")), None)
    if status.returncode != 0 or commit in (None, "(initial)"):
        return None
    return commit + ("+dirty" if any(not line.startswith("#") for line in lines) else "")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Run:
    """A run directory: `with Run(path, command, config) as run: ... run.models.append(model)`."""

    def __init__(self, path: str | Path, command: str, config: dict[str, Any], models: list[Model] | None = None):
        self.path = Path(path)
        self.command = command
        self.config = config
        self.models = models or []
        self.started = now()
        self._t0 = time.monotonic()
        self.previous = read_manifest(self.path) or {}  # the manifest of the run this one resumes

    @property
    def manifest_path(self) -> Path:
        return self.path / "manifest.json"

    def totals(self) -> dict[str, Any]:
        """This invocation's calls, tokens and cost, per model and in all."""
        per_model = {m.name: m.meter.as_dict() for m in self.models}
        cost = sum(m.meter.cost_usd for m in self.models)
        tokens = sum(m.meter.usage.prompt_tokens + m.meter.usage.completion_tokens for m in self.models)
        return {"models": per_model, "tokens": tokens, "cost_usd": round(cost, 6)}

    def invocation(self, status: str) -> dict[str, Any]:
        """This invocation's own record: when, how it ended, and what it spent."""
        return {
            "argv": sys.argv,
            "status": status,
            "started": self.started,
            "ended": None if status == "running" else now(),
            "wall_s": round(time.monotonic() - self._t0, 3),
            "git_revision": git_revision(),
            "host": platform.node(),
            "totals": self.totals(),
        }

    def manifest(self, status: str) -> dict[str, Any]:
        """The whole run: its totals and wall time are sums over every invocation (a resumed run
        says what it cost in all), and `invocations` keeps each one's own figures."""
        invocations = [*earlier_invocations(self.previous), self.invocation(status)]
        latest = invocations[-1]
        return redact({
            "command": self.command,
            "argv": sys.argv,
            "config": self.config,
            "status": status,
            "started": self.started,
            "first_started": self.previous.get("first_started", self.started),
            "ended": latest["ended"],
            "wall_s": round(sum(i["wall_s"] for i in invocations), 3),
            "resumes": len(invocations) - 1,
            "versions": dict(package_versions()),
            "git_revision": latest["git_revision"],
            "host": latest["host"],
            "totals": add_totals([i["totals"] for i in invocations]),
            "invocations": invocations,
        })

    async def checkpoints(self, every_s: float = 30.0) -> None:
        """Rewrite the manifest every `every_s` seconds until cancelled, so an invocation that is
        killed still leaves what it had spent for the next one to add up."""
        while True:
            await asyncio.sleep(every_s)
            self.write("running")

    def write(self, status: str) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.manifest(status), indent=2, default=str))
        tmp.replace(self.manifest_path)

    def __enter__(self) -> Run:
        self.write("running")
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if kind is None:
            self.write("finished")
        elif issubclass(kind, KeyboardInterrupt):
            self.write("interrupted")
        else:
            self.write("failed")


def earlier_invocations(previous: dict[str, Any]) -> list[dict[str, Any]]:
    """The invocations recorded in an earlier manifest (one made before they were kept counts as one)."""
    if not previous:
        return []
    if "invocations" in previous:
        return list(previous["invocations"])
    keep = ("argv", "status", "started", "ended", "wall_s", "git_revision", "host", "totals")
    return [{key: previous.get(key) for key in keep} | {"wall_s": previous.get("wall_s") or 0.0,
                                                        "totals": previous.get("totals") or {}}]


def add_totals(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals summed over invocations, per model and figure by figure."""
    per_model: dict[str, dict[str, float]] = {}
    for part in parts:
        for name, figures in (part.get("models") or {}).items():
            into = per_model.setdefault(name, {})
            for key, value in figures.items():
                known = value is not None and into.get(key, 0) is not None
                into[key] = into.get(key, 0) + value if known else None  # None: unknown (reasoning tokens)
    for figures in per_model.values():
        if "cost_usd" in figures:
            figures["cost_usd"] = round(figures["cost_usd"], 6)
    tokens = sum(part.get("tokens", 0) for part in parts)
    cost = sum(part.get("cost_usd", 0.0) for part in parts)
    return {"models": per_model, "tokens": tokens, "cost_usd": round(cost, 6)}


def read_manifest(run_dir: str | Path) -> dict[str, Any] | None:
    """The manifest of an earlier run in `run_dir`, or None when there is none (or it is torn)."""
    path = Path(run_dir) / "manifest.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def default_run_dir(command: str, label: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-") or command
    return Path("runs") / f"{stamp}-{command}-{safe}"
