"""What a model entry says: the `ModelSpec` read from a model file or a command-line spec.

This is the ground floor of `llm/`: backends are built from a spec and know nothing of the
registry that finds specs (`registry.py` imports the backends lazily, by name).
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from qednano.llm.types import Prices, Sampling

Precision = Literal["int4", "int8"]
PRECISIONS: tuple[Precision, ...] = ("int4", "int8")


class ModelConfigError(ValueError):
    """A model name, spec or file that cannot be used; the message says how to fix it."""


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
    timeout_s: float = Field(3600.0, gt=0, description="Total seconds one HTTP call may take (a long proof can "
                             "legitimately stream for most of an hour).")
    idle_timeout_s: float = Field(120.0, gt=0, description="Seconds without a streamed token (or the first one) "
                                  "before a call counts as hung and is retried.")
    stream: bool = Field(
        True,
        description="openai backend: stream answers (the idle timeout then catches hung connections). false asks "
        "for one body: a long answer costs the client one parse instead of one per token, and only timeout_s applies.",
    )
    max_retries: int = Field(6, ge=0, description="Retries of transient failures before recording one.")
    reasoning_model: bool = Field(False, description="Send max_completion_tokens (OpenAI reasoning models).")
    identity: str | None = Field(None, description="Cache identity; defaults to backend + model + URLs.")
    precision: Precision | None = Field(
        None, description="Embedded backend only: weight precision of the converted model (default int4)."
    )
    thinking_in_prompt: bool = Field(
        False,
        description="The chat template opens <think> in the prompt (QED-Nano, Qwen3-Thinking): output without "
        "</think> is reasoning that never ended, so no proof.",
    )
    tokenizer: str | None = Field(
        None,
        description="Hugging Face name or folder of the served model's tokenizer: counts reasoning tokens the "
        "server does not report, and its chat template is checked against thinking_in_prompt.",
    )
    description: str = ""

    @field_validator("stream")
    @classmethod
    def _stream_is_for_openai_models(cls, stream: bool, info: ValidationInfo) -> bool:
        backend = info.data.get("backend")
        if not stream and backend != "openai":
            raise ValueError(f"stream: false applies to openai models only, not to backend {backend!r}")
        return stream

    @field_validator("precision")
    @classmethod
    def _precision_is_for_embedded_models(cls, precision: str | None, info: ValidationInfo) -> str | None:
        backend = info.data.get("backend")
        if precision is not None and backend != "embedded":
            raise ValueError(f"precision applies to embedded models only, not to backend {backend!r}")
        return precision

    def with_limits(self, timeout_s: float | None = None, idle_timeout_s: float | None = None) -> ModelSpec:
        """This spec with the given call timeouts (None keeps the file's)."""
        given = {"timeout_s": timeout_s, "idle_timeout_s": idle_timeout_s}
        return self.model_copy(update={k: v for k, v in given.items() if v is not None})

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
