"""Scaffolds by name: build one from a name, a params mapping (YAML) and the models to use.

A scaffold config file under `configs/scaffolds/` names the scaffold and its params:

    scaffold: verify_refine
    description: DeepSeek-Math-V2 style search over RC proofs
    params:
      pool: 4
      verifications: 4
      generator: {scaffold: rc, params: {turns: 4, reasoning_tokens: 16384}}

Params are checked against a pydantic model per scaffold, so a misspelt key fails with the
scaffold's name and the key. Models are not params (they are objects, not YAML): every role
uses the `model` given to `build_scaffold` unless a role is given its own, by keyword —
`summarizer`, `aggregator`, `judge`, `verifier`, `refiner` (Models) or `grader` (a
ProofGrader). Roles pass down to nested generators. A `generator` param is the name of a
scaffold config (or of a scaffold, with its defaults) or an inline `{scaffold, params}` mapping.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from qednano.errors import first_error
from qednano.grading.record import ProofGrader
from qednano.llm.model import Model
from qednano.paths import search_dirs
from qednano.scaffolds.base import Scaffold
from qednano.scaffolds.budget import Budget, max_tokens
from qednano.scaffolds.direct import Direct
from qednano.scaffolds.reasoning_cache import ReasoningCache
from qednano.scaffolds.rsa import RSA
from qednano.scaffolds.self_check import SelfCheck
from qednano.scaffolds.tournament import BestOfN
from qednano.scaffolds.verify_refine import VerifyRefine

MODEL_ROLES = ("summarizer", "aggregator", "judge", "verifier", "refiner")
ROLES = (*MODEL_ROLES, "grader")

Tokens = int | None
GeneratorParam = str | dict[str, Any]


class ScaffoldConfigError(ValueError):
    """A scaffold name, config file or parameter that cannot be used; the message says the fix."""


class Params(BaseModel):
    """Settings every scaffold takes: the per-attempt budget."""

    model_config = ConfigDict(extra="forbid")

    max_calls: int | None = Field(None, gt=0, description="Most model calls per attempt.")
    max_total_tokens: int | None = Field(None, gt=0, description="Most prompt + completion tokens per attempt.")

    def budget(self) -> Budget | None:
        if self.max_calls is None and self.max_total_tokens is None:
            return None
        return Budget(self.max_calls, self.max_total_tokens)


class DirectParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_tokens: Tokens = Field(None, gt=0, description="Cap on the answer's tokens (reasoning included).")
    prompt: Literal["solve", "answer"] = Field("solve", description="Ask for a proof or a boxed final answer.")


class RCParams(Params):
    turns: int = Field(4, ge=1, description="Reasoning turns T.")
    reasoning_tokens: Tokens = Field(None, gt=0, description="H_R: max tokens of each reasoning turn.")
    summary_tokens: Tokens = Field(None, gt=0, description="H_S: max tokens of each summary call.")


class RSAParams(Params):
    generator: GeneratorParam = Field("direct", description="Scaffold writing the first population.")
    population: int = Field(4, ge=1, description="N: proofs per population.")
    subset: int = Field(2, ge=1, description="K: distinct members each aggregation sees.")
    rounds: int = Field(2, ge=0, description="R: aggregation rounds.")
    select: Literal["tournament", "grader"] = Field("tournament", description="How the final proof is chosen.")
    aggregate_tokens: Tokens = Field(None, gt=0)
    compare_tokens: Tokens = Field(None, gt=0)


class VerifyRefineParams(Params):
    generator: GeneratorParam = Field("direct", description="Scaffold writing the first pool.")
    pool: int = Field(4, ge=1, description="P: proofs in the first pool.")
    verifications: int = Field(4, ge=1, description="k: verifications per proof.")
    rounds: int = Field(2, ge=0, description="R: refinement rounds.")
    refine_top: int = Field(2, ge=1, description="m: proofs refined per round.")
    verify_tokens: Tokens = Field(None, gt=0)
    refine_tokens: Tokens = Field(None, gt=0)


class SelfCheckParams(Params):
    max_rounds: int = Field(4, ge=1, description="Most verifications.")
    passes_needed: int = Field(2, ge=1, description="Consecutive passes that end the loop.")
    solve_tokens: Tokens = Field(None, gt=0)
    verify_tokens: Tokens = Field(None, gt=0)
    refine_tokens: Tokens = Field(None, gt=0)


class BestOfNParams(Params):
    generator: GeneratorParam = Field("direct", description="Scaffold writing the n proofs.")
    n: int = Field(4, ge=1, description="Proofs generated.")
    scoring: Literal["self", "grader"] = Field("self", description="Model self-score (0-7) or a grader.")
    finalists: int | None = Field(None, ge=1, description="Best-scored proofs in the knockout (None: all).")
    score_tokens: Tokens = Field(None, gt=0)
    compare_tokens: Tokens = Field(None, gt=0)


@dataclass(frozen=True)
class Roles:
    """The models (and grader) a scaffold tree is built with; unset roles fall back to `model`."""

    model: Model
    summarizer: Model | None = None
    aggregator: Model | None = None
    judge: Model | None = None
    verifier: Model | None = None
    refiner: Model | None = None
    grader: ProofGrader | None = None

    def get(self, role: str) -> Model:
        return getattr(self, role) or self.model


def _needs_grader(name: str, roles: Roles) -> ProofGrader:
    if roles.grader is None:
        raise ScaffoldConfigError(f"scaffold {name!r} selects by grader: pass grader=... to build_scaffold")
    return roles.grader


def _direct(p: DirectParams, roles: Roles) -> Scaffold:
    return Direct(roles.model, max_tokens(p.max_tokens), prompt=p.prompt)


def _rc(p: RCParams, roles: Roles) -> Scaffold:
    summarizer = roles.get("summarizer")
    return ReasoningCache(roles.model, summarizer, p.turns, p.reasoning_tokens, p.summary_tokens, p.budget())


def _rsa(p: RSAParams, roles: Roles) -> Scaffold:
    return RSA(
        _generator("rsa", p.generator, roles),
        roles.get("aggregator"),
        population=p.population,
        subset=p.subset,
        rounds=p.rounds,
        select=p.select,
        grader=_needs_grader("rsa", roles) if p.select == "grader" else None,
        judge_model=roles.judge,  # None: RSA judges with its aggregator
        aggregate_tokens=p.aggregate_tokens,
        compare_tokens=p.compare_tokens,
        budget=p.budget(),
    )


def _verify_refine(p: VerifyRefineParams, roles: Roles) -> Scaffold:
    return VerifyRefine(
        _generator("verify_refine", p.generator, roles),
        roles.get("verifier"),
        pool=p.pool,
        verifications=p.verifications,
        rounds=p.rounds,
        refine_top=p.refine_top,
        refiner=roles.get("refiner"),
        verify_tokens=p.verify_tokens,
        refine_tokens=p.refine_tokens,
        budget=p.budget(),
    )


def _self_check(p: SelfCheckParams, roles: Roles) -> Scaffold:
    return SelfCheck(
        roles.model, p.max_rounds, p.passes_needed, p.solve_tokens, p.verify_tokens, p.refine_tokens, p.budget()
    )


def _best_of_n(p: BestOfNParams, roles: Roles) -> Scaffold:
    return BestOfN(
        _generator("best_of_n", p.generator, roles),
        p.n,
        roles.get("judge"),
        scoring=p.scoring,
        grader=_needs_grader("best_of_n", roles) if p.scoring == "grader" else None,
        finalists=p.finalists,
        score_tokens=p.score_tokens,
        compare_tokens=p.compare_tokens,
        budget=p.budget(),
    )


@dataclass(frozen=True)
class Entry:
    params: type[BaseModel]
    build: Callable[[Any, Roles], Scaffold]


SCAFFOLDS: dict[str, Entry] = {
    "direct": Entry(DirectParams, _direct),
    "rc": Entry(RCParams, _rc),
    "rsa": Entry(RSAParams, _rsa),
    "verify_refine": Entry(VerifyRefineParams, _verify_refine),
    "self_check": Entry(SelfCheckParams, _self_check),
    "best_of_n": Entry(BestOfNParams, _best_of_n),
}


def check_params(name: str, params: dict[str, Any]) -> BaseModel:
    """The validated params of scaffold `name`; errors name the scaffold and the bad key."""
    if name not in SCAFFOLDS:
        raise ScaffoldConfigError(f"unknown scaffold {name!r}; known: {', '.join(SCAFFOLDS)}")
    schema = SCAFFOLDS[name].params
    try:
        return schema.model_validate(params)
    except ValidationError as err:
        key, message = first_error(err)
        if err.errors()[0]["type"] == "extra_forbidden":
            known = ", ".join(schema.model_fields)
            raise ScaffoldConfigError(f"scaffold {name!r}: unknown parameter {key!r}; known: {known}") from err
        raise ScaffoldConfigError(f"scaffold {name!r}: parameter {key!r}: {message}") from err


def _build(name: str, params: dict[str, Any], roles: Roles) -> Scaffold:
    checked = check_params(name, params)
    try:
        return SCAFFOLDS[name].build(checked, roles)
    except ValueError as err:
        if isinstance(err, ScaffoldConfigError):
            raise
        raise ScaffoldConfigError(f"scaffold {name!r}: {err}") from err


def _generator(outer: str, spec: GeneratorParam, roles: Roles) -> Scaffold:
    """A nested generator from a config/scaffold name or an inline {scaffold, params} mapping."""
    try:
        if isinstance(spec, str):
            name, params = load_scaffold_config(spec)
        else:
            name, params = _read_config(spec, where=f"the generator of {outer!r}")
        return _build(name, params, roles)
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


def load_scaffold_config(path_or_name: str) -> tuple[str, dict[str, Any]]:
    """(scaffold name, params) from a YAML path, a config name in `scaffold_dirs()`, or a bare scaffold name."""
    if path_or_name.endswith((".yaml", ".yml")):
        path = Path(path_or_name)
        if not path.is_file():
            raise ScaffoldConfigError(f"scaffold config {path_or_name} does not exist")
    else:
        found = [d / f"{path_or_name}.yaml" for d in scaffold_dirs() if (d / f"{path_or_name}.yaml").is_file()]
        if not found:
            if path_or_name in SCAFFOLDS:
                return path_or_name, {}
            configs = sorted({p.stem for d in scaffold_dirs() if d.is_dir() for p in d.glob("*.yaml")})
            raise ScaffoldConfigError(
                f"unknown scaffold or config {path_or_name!r}; scaffolds: {', '.join(SCAFFOLDS)}; "
                f"configs: {', '.join(configs) or 'none'}"
            )
        path = found[0]
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ScaffoldConfigError(f"{path}: not valid YAML ({err})") from err
    name, params = _read_config(raw, where=str(path))
    try:
        check_params(name, params)  # fail here, naming the file, rather than at build time
    except ScaffoldConfigError as err:
        raise ScaffoldConfigError(f"{path}: {err}") from err
    return name, params


def load_scaffold(path_or_name: str, model: Model, overrides: dict[str, Any] | None = None, **models: Any) -> Scaffold:
    """`build_scaffold` from a config file or name, with `overrides` (e.g. from the command line) on top."""
    name, params = load_scaffold_config(path_or_name)
    return build_scaffold(name, {**params, **(overrides or {})}, model, **models)
