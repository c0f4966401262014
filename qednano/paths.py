"""Where qednano looks for files: the cache directory, and folders of models, scaffolds and data."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]  # the checkout (qednano/ sits directly in it)


def cache_root() -> Path:
    """$QEDNANO_CACHE_DIR, else $XDG_CACHE_HOME/qednano, else ~/.cache/qednano."""
    if os.environ.get("QEDNANO_CACHE_DIR"):
        return Path(os.environ["QEDNANO_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "qednano"


def search_dirs(env_var: str, relative: str) -> list[Path]:
    """The folders to search, first match wins: those in `$env_var` (os.pathsep-separated), then
    `relative` under the working directory, then `relative` in the repository.

    Models (`configs/models`), scaffold configs (`configs/scaffolds`) and benchmark data (`data`)
    are all found this way, so a user's own folder always overrides the shipped one.
    """
    given = [Path(p).expanduser() for p in os.environ.get(env_var, "").split(os.pathsep) if p]
    return [*given, Path.cwd() / relative, REPO / relative]
