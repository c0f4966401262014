"""Recipes: YAML files whose keys are the fields of a trainer's config class.

A recipe is flat, like TRL's own example configs: every key is a field of the config class
(`SFTRecipe` or `RLRecipe`, which extend TRL's `SFTConfig` / `GRPOConfig`), so any TRL setting
can be written in a recipe and `--set key=value` overrides any of them (values read as YAML,
`rc.turns=4` reaches into the `rc:` section). A key that is not a field stops the load with the
file and the field named, and the nearest field names suggested: a mistyped `learning_rte` must
not silently train at the default rate.
"""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any, TypeVar

import yaml

REPO_RECIPES = Path(__file__).resolve().parents[2] / "configs" / "recipes"
Config = TypeVar("Config")


class RecipeError(ValueError):
    """A recipe that cannot become a config; the message names the file and the field."""


def find_recipe(name: str) -> Path:
    """A recipe path as given, or a name under ./configs/recipes or the repository's recipes."""
    for candidate in (Path(name), Path("configs/recipes") / f"{name}.yaml", REPO_RECIPES / f"{name}.yaml"):
        if candidate.is_file():
            return candidate
    known = sorted(p.stem for p in REPO_RECIPES.glob("*.yaml"))
    raise RecipeError(f"recipe {name!r} not found: give a YAML file or one of {', '.join(known)}")


def read_recipe(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise RecipeError(f"{path}: not valid YAML ({err})") from err
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: a recipe is a mapping of settings, got {type(raw).__name__}")
    return raw


def apply_overrides(settings: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`settings` with `--set` values on top; a dotted key (`rc.turns`) sets inside a section."""
    merged = dict(settings)
    for key, value in overrides.items():
        section, dot, field = key.partition(".")
        if not dot:
            merged[key] = value
            continue
        inner = merged.get(section) or {}
        if not isinstance(inner, dict):
            raise RecipeError(f"--set {key}: {section!r} is not a section of the recipe")
        merged[section] = {**inner, field: value}
    return merged


def check_keys(settings: dict[str, Any], config_class: type, where: str) -> None:
    known = [f.name for f in dataclasses.fields(config_class) if f.init]
    for key in settings:
        if key not in known:
            near = difflib.get_close_matches(key, known, n=3)
            hint = f"; did you mean {', '.join(near)}?" if near else f"; see `{config_class.__name__}` for the fields"
            raise RecipeError(f"{where}: unknown field {key!r} for {config_class.__name__}{hint}")


def build_config(config_class: type[Config], settings: dict[str, Any], where: str) -> Config:
    """The config from checked settings; a rejected value names `where` and the message of the check."""
    check_keys(settings, config_class, where)
    try:
        return config_class(**settings)
    except (ValueError, TypeError) as err:
        raise RecipeError(f"{where}: {err}") from err


def load_recipe(name: str, config_class: type[Config], overrides: dict[str, Any] | None = None) -> tuple[Config, dict]:
    """The config of a recipe file with overrides, and the settings it was built from (for the manifest)."""
    path = find_recipe(name)
    settings = apply_overrides(beside(read_recipe(path), path), overrides or {})
    return build_config(config_class, settings, str(path)), settings


def beside(settings: dict[str, Any], recipe: Path) -> dict[str, Any]:
    """A relative `dataset` path that names a file or folder beside the recipe is read from there."""
    dataset = settings.get("dataset")
    if isinstance(dataset, str) and not Path(dataset).is_absolute() and (recipe.parent / dataset).exists():
        return {**settings, "dataset": str((recipe.parent / dataset).resolve())}
    return settings
