"""The one place that builds a grader from settings: a rubric grader, a panel, or the answer checker.

Evaluation, grading of written files, the data pipeline and the RL rewards all build their
graders here, so a grader means the same thing wherever it is used.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from qednano.grading.answer import grade_answer
from qednano.grading.panel import Panel
from qednano.grading.proof_grader import RubricGrader
from qednano.grading.record import Grade, ProofGrader
from qednano.grading.self_evaluation import StripSelfEvaluation
from qednano.llm.model import Model
from qednano.problems.record import Problem

Task = Literal["proof", "answer"]


class GradingConfig(BaseModel):
    """Who grades: grader models (several, or several samples of one, form a panel) and how."""

    graders: list[str] = Field(default_factory=list, description="Grader models; several form a panel.")
    variant: str = Field("reference", description="Proof-grading prompt variant.")
    aggregate: Literal["mean", "median", "min"] = Field("mean", description="How a panel combines scores.")
    grader_samples: int = Field(1, ge=1, description="Gradings per grader model, aggregated as a panel.")
    strip_self_evaluation: bool = Field(
        True, description="Cut a proof's self-evaluation section (from its heading on) before grading."
    )


class AnswerGrader:
    """Short answers checked with math-verify, with an optional LLM judge as the fallback."""

    def __init__(self, judge: Model | None):
        self.judge = judge
        self.name = f"math-verify+{judge.name}" if judge else "math-verify"

    async def grade(self, problem: Problem, proof: str, sample_index: int = 0) -> Grade:
        return await grade_answer(problem, proof, self.judge, sample_index=sample_index)


def build_grader(task: Task, config: GradingConfig, graders: list[Model]) -> ProofGrader | None:
    """The answer checker, one rubric grader, or a panel of them; None when proofs go ungraded.
    Self-evaluation sections are cut first unless the config keeps them."""
    grader = _grader(task, config, graders)
    if grader is None or not config.strip_self_evaluation:
        return grader
    return StripSelfEvaluation(grader)


def _grader(task: Task, config: GradingConfig, graders: list[Model]) -> ProofGrader | None:
    if task == "answer":
        return AnswerGrader(graders[0] if graders else None)
    if not graders:
        return None
    members = [RubricGrader(model, variant=config.variant) for model in graders]
    if len(members) == 1 and config.grader_samples == 1:
        return members[0]
    return Panel(members, samples_per_grader=config.grader_samples, aggregate=config.aggregate)
