"""Named models: YAML files under `configs/models/` and short specs on the command line.

A model file says which backend serves the model and how to reach it:

    name: deepseek-math-v2
    backend: openai
    model: deepseek-ai/DeepSeek-Math-V2
    base_urls: [http://gpu-1:8000/v1, http://gpu-2:8000/v1]
    api_key_env: null
    sampling: {temperature: 1.0, max_tokens: 65536}
    prices: {input: 0.28, output: 0.42}

On the command line a model is a registered name, a path to such a file, or a short spec:
`openai:MODEL@URL[,URL...]` for any OpenAI-compatible server. The offline default is the
registered `smollm2` (backend: embedded).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from qednano.errors import first_error
from qednano.llm.backend import Backend
from qednano.llm.cache import CallCache
from qednano.llm.embedded import Precision
from qednano.llm.model import Model, Prices
from qednano.llm.types import Sampling

REPO_CONFIGS = Path(__file__).resolve().parents[2] / "configs"


class ModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    backend: Literal["openai", "embedded", "scripted"]
    model: str = Field(description="The model id the server knows (or the embedded model name).")
    base_urls: list[str] = Field(default_factory=list, description="OpenAI-compatible endpoints, load-balanced.")
    api_key_env: str | None = Field(None, description="Environment variable holding the API key.")
    sampling: Sampling = Field(default_factory=Sampling)
    prices: Prices = Field(default_factory=Prices)
    max_concurrency: int = Field(64, gt=0, description="Calls in flight at once, over all endpoints.")
    timeout_s: float = Field(600.0, gt=0, description="Per-request timeout.")
    max_retries: int = Field(6, ge=0, description="Retries of transient failures before recording one.")
    reasoning_model: bool = Field(False, description="Send max_completion_tokens (OpenAI reasoning models).")
    identity: str | None = Field(None, description="Cache identity; defaults to backend + model + URLs.")
    precision: Precision | None = Field(
        None, description="Embedded backend only: weight precision of the converted model (default int4)."
    )
    description: str = ""

    @field_validator("precision")
    @classmethod
    def _precision_is_for_embedded_models(cls, precision: str | None, info: ValidationInfo) -> str | None:
        backend = info.data.get("backend")
        if precision is not None and backend != "embedded":
            raise ValueError(f"precision applies to embedded models only, not to backend {backend!r}")
        return precision

    def cache_identity(self) -> str:
        if self.identity:
            return self.identity
        return "|".join([self.backend, self.model, *sorted(self.base_urls)])

    def api_key(self) -> str | None:
        if self.api_key_env is None:
            return None
        key = os.environ.get(self.api_key_env)
        if not key:
            raise ModelConfigError(
                f"model {self.name!r} needs an API key: set the environment variable {self.api_key_env}"
            )
        return key


class ModelConfigError(ValueError):
    """A model name, spec or file that cannot be used; the message says how to fix it."""


def model_dirs() -> list[Path]:
    """Where model files are looked up: $QEDNANO_MODELS (colon-separated), ./configs/models, the repo's."""
    extra = [Path(p) for p in os.environ.get("QEDNANO_MODELS", "").split(os.pathsep) if p]
    return [*extra, Path.cwd() / "configs" / "models", REPO_CONFIGS / "models"]


def read_spec_file(path: Path) -> ModelSpec:
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ModelConfigError(f"{path}: not valid YAML ({err.__class__.__name__}: {err})") from err
    if not isinstance(raw, dict):
        raise ModelConfigError(f"{path}: expected a mapping of model settings, got {type(raw).__name__}")
    raw.setdefault("name", path.stem)
    try:
        return ModelSpec.model_validate(raw)
    except ValidationError as err:
        field, message = first_error(err)
        raise ModelConfigError(f"{path}: field {field!r}: {message}") from err


def registered_models() -> dict[str, tuple[ModelSpec, Path]]:
    """All model files found, by name; earlier directories win."""
    found: dict[str, tuple[ModelSpec, Path]] = {}
    for folder in model_dirs():
        for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
            spec = read_spec_file(path)
            found.setdefault(spec.name, (spec, path))
    return found


def resolve_spec(text: str) -> ModelSpec:
    """A ModelSpec from a registered name, a YAML path or a short `kind:model@urls` spec."""
    if text.endswith((".yaml", ".yml")):
        path = Path(text)
        if not path.is_file():
            raise ModelConfigError(f"model file {text} does not exist")
        return read_spec_file(path)
    if text.startswith("openai:"):
        model, sep, urls = text.removeprefix("openai:").partition("@")
        if not sep or not model or not urls:
            raise ModelConfigError(f"bad model spec {text!r}: write openai:MODEL@URL[,URL...]")
        return ModelSpec(name=text, backend="openai", model=model, base_urls=urls.split(","))
    registry = registered_models()
    if text in registry:
        return registry[text][0]
    known = ", ".join(sorted(registry)) or "none"
    raise ModelConfigError(
        f"unknown model {text!r}; registered: {known}. Use a name from `qednano models`, "
        "a YAML path, or openai:MODEL@URL"
    )


BackendFactory = Callable[[ModelSpec], Backend]


def _openai(spec: ModelSpec) -> Backend:
    from qednano.llm.openai_backend import OpenAIBackend

    return OpenAIBackend.from_spec(spec)


def _embedded(spec: ModelSpec) -> Backend:
    from qednano.llm.embedded import EmbeddedBackend

    return EmbeddedBackend.from_spec(spec)


def _scripted(spec: ModelSpec) -> Backend:
    from qednano.llm.scripted import ScriptedBackend

    return ScriptedBackend.from_spec(spec)


BACKENDS: dict[str, BackendFactory] = {"openai": _openai, "embedded": _embedded, "scripted": _scripted}


def build_model(spec: ModelSpec, cache: CallCache | None = None) -> Model:
    backend = BACKENDS[spec.backend](spec)
    return Model(spec.name, backend, defaults=spec.sampling, prices=spec.prices, cache=cache)


def load_model(text: str, cache: CallCache | None = None) -> Model:
    return build_model(resolve_spec(text), cache=cache)
