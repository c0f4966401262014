"""Scaffolds by name, built from YAML configs: name -> (config class, scaffold class), and nesting.

A scaffold config file under `configs/scaffolds/` names the scaffold and its params:

    scaffold: verify_refine
    description: DeepSeek-Math-V2 style search over RC proofs
    params:
      pool: 4
      verifications: 4
      generator: {scaffold: rc, params: {turns: 4, reasoning_tokens: 16384}}

Params are validated by the scaffold's own config class (beside the scaffold, e.g. `RCConfig`
in reasoning_cache.py), so a misspelt key or a value out of range fails with the file, the
scaffold's name and the key. Models are not params (they are objects, not YAML): every role
uses the `model` given to `build_scaffold` unless a role is given its own, by keyword —
`summarizer`, `aggregator`, `judge`, `verifier`, `refiner` (Models) or `grader` (a
ProofGrader). Roles pass down to nested generators, and so do `task` and `prompts` unless the
generator sets its own. A `generator` param is the name of a scaffold config (or of a scaffold,
with its defaults) or an inline `{scaffold, params}` mapping. A relative `prompts` folder in a
config file is read from beside that file.
"""

from __future__ import annotations

import importlib
from dataclasses import fields
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from qednano.errors import first_error
from qednano.llm.model import Model
from qednano.paths import search_dirs
from qednano.scaffolds.base import Scaffold
from qednano.scaffolds.config import SHARED, GeneratorConfig, Roles

# name -> (module, config class, scaffold class). A scaffold's module is imported when the
# scaffold is first used: building the config models of all of them took about 25 ms of every
# eval's start, a tenth of a resume.
SCAFFOLDS: dict[str, tuple[str, str, str]] = {
    "direct": ("qednano.scaffolds.direct", "DirectConfig", "Direct"),
    "rc": ("qednano.scaffolds.reasoning_cache", "RCConfig", "ReasoningCache"),
    "rsa": ("qednano.scaffolds.rsa", "RSAConfig", "RSA"),
    "verify_refine": ("qednano.scaffolds.verify_refine", "VerifyRefineConfig", "VerifyRefine"),
    "self_check": ("qednano.scaffolds.self_check", "SelfCheckConfig", "SelfCheck"),
    "best_of_n": ("qednano.scaffolds.tournament", "BestOfNConfig", "BestOfN"),
}
ROLES = tuple(f.name for f in fields(Roles) if f.name != "model")


class ScaffoldConfigError(ValueError):
    """A scaffold name, config file or parameter that cannot be used; the message says the fix."""


def scaffold_classes(name: str) -> tuple[type[BaseModel], type]:
    """(config class, scaffold class) of scaffold `name`, its module imported now if not yet."""
    if name not in SCAFFOLDS:
        raise ScaffoldConfigError(f"unknown scaffold {name!r}; known: {', '.join(SCAFFOLDS)}")
    module, config_class, scaffold_class = SCAFFOLDS[name]
    loaded = importlib.import_module(module)
    return getattr(loaded, config_class), getattr(loaded, scaffold_class)


def check_params(name: str, params: dict[str, Any]) -> BaseModel:
    """The config of scaffold `name` from `params`; errors name the scaffold and the bad key."""
    config_class = scaffold_classes(name)[0]
    try:
        return config_class.model_validate(params)
    except ValidationError as err:
        key, message = first_error(err)
        if err.errors()[0]["type"] == "extra_forbidden":
            known = ", ".join(config_class.model_fields)
            raise ScaffoldConfigError(f"scaffold {name!r}: unknown parameter {key!r}; known: {known}") from err
        where = f"parameter {key!r}" if key else "parameters"
        raise ScaffoldConfigError(f"scaffold {name!r}: {where}: {message.removeprefix('Value error, ')}") from err


def _build(name: str, params: dict[str, Any], roles: Roles) -> Scaffold:
    config = check_params(name, params)
    scaffold_class = scaffold_classes(name)[1]
    try:
        if isinstance(config, GeneratorConfig):
            shared = {key: getattr(config, key) for key in SHARED if getattr(config, key) is not None}
            return scaffold_class(config, roles, _generator(name, config.generator, roles, shared))
        return scaffold_class(config, roles)
    except ValueError as err:
        if isinstance(err, ScaffoldConfigError):
            raise
        raise ScaffoldConfigError(f"scaffold {name!r}: {err}") from err


def _generator(outer: str, spec: str | dict[str, Any], roles: Roles, shared: dict[str, Any]) -> Scaffold:
    """A nested generator from a config/scaffold name or an inline {scaffold, params} mapping;
    `shared` settings of the outer scaffold apply unless the generator sets its own."""
    try:
        if isinstance(spec, str):
            name, params = load_scaffold_config(spec)
        else:
            name, params = _read_config(spec, where=f"the generator of {outer!r}")
        return _build(name, {**shared, **params}, roles)
    except ScaffoldConfigError as err:
        raise ScaffoldConfigError(f"in the generator of scaffold {outer!r}: {err}") from err


def build_scaffold(name: str, params: dict[str, Any] | None, model: Model, **models: Any) -> Scaffold:
    """Scaffold `name` with `params`; `model` plays every role not given by keyword (see module doc)."""
    unknown = sorted(set(models) - set(ROLES))
    if unknown:
        raise ScaffoldConfigError(
            f"build_scaffold({name!r}): unknown model role {unknown[0]!r}; roles are {', '.join(ROLES)}"
        )
    return _build(name, params or {}, Roles(model, **models))


def scaffold_dirs() -> list[Path]:
    """Where scaffold configs are looked up: $QEDNANO_SCAFFOLDS, ./configs/scaffolds, the repo's."""
    return search_dirs("QEDNANO_SCAFFOLDS", "configs/scaffolds")


def _read_config(raw: object, where: str) -> tuple[str, dict[str, Any]]:
    if not isinstance(raw, dict):
        raise ScaffoldConfigError(f"{where}: expected a mapping with 'scaffold' and 'params', got {type(raw).__name__}")
    extra = sorted(set(raw) - {"scaffold", "params", "description"})
    if extra:
        raise ScaffoldConfigError(f"{where}: unknown field {extra[0]!r}; fields are scaffold, params, description")
    name, params = raw.get("scaffold"), raw.get("params") or {}
    if not isinstance(name, str):
        raise ScaffoldConfigError(f"{where}: field 'scaffold' must name a scaffold ({', '.join(SCAFFOLDS)})")
    if not isinstance(params, dict):
        raise ScaffoldConfigError(f"{where}: field 'params' must be a mapping, got {type(params).__name__}")
    return name, params


def _config_path(path_or_name: str) -> Path | None:
    """The YAML file of a path or config name; None for a bare scaffold name with no file."""
    if path_or_name.endswith((".yaml", ".yml")):
        path = Path(path_or_name)
        if not path.is_file():
            raise ScaffoldConfigError(f"scaffold config {path_or_name} does not exist")
        return path
    found = [d / f"{path_or_name}.yaml" for d in scaffold_dirs() if (d / f"{path_or_name}.yaml").is_file()]
    if found:
        return found[0]
    if path_or_name in SCAFFOLDS:
        return None
    configs = sorted({p.stem for d in scaffold_dirs() if d.is_dir() for p in d.glob("*.yaml")})
    raise ScaffoldConfigError(
        f"unknown scaffold or config {path_or_name!r}; scaffolds: {', '.join(SCAFFOLDS)}; "
        f"configs: {', '.join(configs) or 'none'}"
    )


def load_scaffold_config(path_or_name: str, overrides: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """(scaffold name, params) from a YAML path, a config name in `scaffold_dirs()`, or a bare
    scaffold name, with `overrides` (e.g. `--set key=value`) on top; checked here, so that an
    error names the file (and says when an override was at fault)."""
    path = _config_path(path_or_name)
    if path is None:
        name, params, where = path_or_name, {}, ""
    else:
        import yaml  # here: a bare scaffold name reads no file, and PyYAML takes 15 ms to import

        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise ScaffoldConfigError(f"{path}: not valid YAML ({err})") from err
        name, params = _read_config(raw, where=str(path))
        where = str(path)
        if isinstance(params.get("prompts"), str):
            params = {**params, "prompts": str(path.parent / params["prompts"])}  # absolute stays absolute
    params = {**params, **(overrides or {})}
    try:
        check_params(name, params)
    except ScaffoldConfigError as err:
        given = ", ".join(f"{k}={v!r}" for k, v in (overrides or {}).items())
        source = " with ".join(part for part in (where, f"overrides {given}" if given else "") if part)
        if not source:
            raise
        raise ScaffoldConfigError(f"{source}: {err}") from err
    return name, params


def load_scaffold(path_or_name: str, model: Model, overrides: dict[str, Any] | None = None, **models: Any) -> Scaffold:
    """`build_scaffold` from a config file or name, with `overrides` (e.g. from the command line) on top."""
    name, params = load_scaffold_config(path_or_name, overrides)
    return build_scaffold(name, params, model, **models)
