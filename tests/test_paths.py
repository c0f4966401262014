"""The one lookup order for models, scaffold configs and data: $VAR folders, ./relative, the repository's."""

import os

from qednano.llm.registry import model_dirs
from qednano.paths import REPO, search_dirs
from qednano.problems.layouts import data_dirs
from qednano.scaffolds.registry import scaffold_dirs


def test_search_dirs_order(tmp_path, monkeypatch):
    first, second = tmp_path / "a", tmp_path / "b"
    monkeypatch.setenv("QEDNANO_TEST_DIRS", f"{first}{os.pathsep}{os.pathsep}{second}")  # an empty entry is skipped
    monkeypatch.chdir(tmp_path)
    assert search_dirs("QEDNANO_TEST_DIRS", "configs/x") == [first, second, tmp_path / "configs/x", REPO / "configs/x"]
    monkeypatch.delenv("QEDNANO_TEST_DIRS")
    assert search_dirs("QEDNANO_TEST_DIRS", "data") == [tmp_path / "data", REPO / "data"]


def test_models_scaffolds_and_data_share_the_lookup(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var, dirs, relative in (
        ("QEDNANO_MODELS", model_dirs, "configs/models"),
        ("QEDNANO_SCAFFOLDS", scaffold_dirs, "configs/scaffolds"),
        ("QEDNANO_DATA_DIR", data_dirs, "data"),
    ):
        monkeypatch.setenv(var, str(tmp_path / "mine"))
        assert dirs()[:3] == [tmp_path / "mine", tmp_path / relative, REPO / relative]
    assert data_dirs()[-1] == REPO.parent / "shared" / "data"  # the data folder beside the checkout
    assert (REPO / "configs" / "models").is_dir() and (REPO / "configs" / "scaffolds").is_dir()
