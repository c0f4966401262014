"""Shared fixtures: an isolated cache directory and a registry holding scripted models."""

import pytest

from qednano.llm.model import Model
from qednano.problems.layouts import data_dirs
from qednano.scaffolds.config import Roles
from qednano.scaffolds.direct import Direct, DirectConfig

# The IMO-Bench CSVs, found as the loaders find them: ../shared/data beside the checkout, or a
# folder in $QEDNANO_DATA_DIR (a git worktree elsewhere points there). Never copied into the repo.
IMOBENCH = next((d / "imobench" for d in data_dirs() if (d / "imobench").is_dir()), data_dirs()[-1] / "imobench")


@pytest.fixture
def scripted_registry(tmp_path, monkeypatch):
    """A model folder with an `echo` scripted model, first on the registry path."""
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "echo.yaml").write_text("name: echo\nbackend: scripted\nmodel: echo\nprices: {input: 1.0, output: 2.0}\n")
    monkeypatch.setenv("QEDNANO_MODELS", str(folder))
    monkeypatch.setenv("QEDNANO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)  # default run directories land under tmp_path/runs
    return folder


def direct(model: Model) -> Direct:
    """The one-call scaffold with its default config."""
    return Direct(DirectConfig(), Roles(model))
