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
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from qednano.grading.record import ProofGrader
from qednano.llm.model import Model
from qednano.prompts import Prompts
from qednano.scaffolds.budget import Budget

# Settings a whole scaffold tree shares: a nested generator inherits them unless it sets its own.
SHARED = ("task", "prompts")


class ConfigBase(BaseModel):
    """Settings read from YAML: a misspelt key is an error, not a silently ignored setting.

    Every scaffold takes `task` and `prompts`. On answer benchmarks (`task: answer`) each prompt
    with an answer-mode twin (`solve_answer.txt`, `compare_answer.txt`, ...) is used instead:
    the final text ends in a boxed answer and the candidates are spoken of as answers.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: Literal["proof", "answer"] = Field(
        "proof", description="proof: write a proof; answer: end in a \\boxed{} final answer (answer benchmarks)."
    )
    prompts: str | None = Field(
        None, description="Folder of replacement prompt files (NAME.txt); prompts it does not hold keep our wording."
    )

    def wording(self) -> Prompts:
        """The prompts this scaffold fills (checked replacements from `prompts`, the task's twins)."""
        return Prompts(self.prompts, variant="answer" if self.task == "answer" else None)


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
