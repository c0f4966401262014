"""What every scaffold's config shares, and the models a scaffold is built with.

Each scaffold module declares its parameters once, as a config class beside the scaffold (as TRL
puts a config dataclass beside each trainer): every field with its help text and range, rules
between fields checked in a validator. A scaffold is built from its config and its `Roles`:
`ReasoningCache(RCConfig(turns=2), Roles(model))`. A scaffold that starts from another
scaffold's proofs (RSA, verify-refine, best-of-n) also takes that generator, built by the
registry from the config's `generator` field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from qednano.grading.record import ProofGrader
from qednano.llm.model import Model
from qednano.scaffolds.budget import Budget


class ConfigBase(BaseModel):
    """Settings read from YAML: a misspelt key is an error, not a silently ignored setting."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ScaffoldConfig(ConfigBase):
    """Settings every multi-call scaffold takes: the per-attempt budget."""

    max_calls: int | None = Field(None, gt=0, description="Most model calls per attempt (None: no cap).")
    max_total_tokens: int | None = Field(
        None, gt=0, description="Most prompt + completion tokens per attempt, over all calls (None: no cap)."
    )

    def budget(self) -> Budget | None:
        if self.max_calls is None and self.max_total_tokens is None:
            return None
        return Budget(self.max_calls, self.max_total_tokens)


class GeneratorConfig(ScaffoldConfig):
    """A scaffold that improves on, or picks from, the proofs of another scaffold."""

    generator: str | dict[str, Any] = Field(
        "direct",
        description="Scaffold writing the first proofs: a scaffold config or scaffold name, or {scaffold, params}.",
    )


@dataclass(frozen=True)
class Roles:
    """The models (and grader) a scaffold tree is built with; an unset role is played by `model`."""

    model: Model
    summarizer: Model | None = None
    aggregator: Model | None = None
    judge: Model | None = None
    verifier: Model | None = None
    refiner: Model | None = None
    grader: ProofGrader | None = None

    def get(self, role: str) -> Model:
        return getattr(self, role) or self.model

    def needs_grader(self, scaffold: str, why: str) -> ProofGrader:
        if self.grader is None:
            raise ValueError(f"{scaffold}: {why} needs a grader: pass grader=... to build_scaffold")
        return self.grader
