"""The one place that builds a grader from settings: a rubric grader, a panel, or the answer checker.

Evaluation, grading of written files, the data pipeline and the RL rewards all build their
graders here, so a grader means the same thing wherever it is used.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from qednano.grading.answer import grade_answer
from qednano.grading.panel import Panel
from qednano.grading.proof_grader import CHOICES, RubricGrader, check_variant
from qednano.grading.record import Grade, ProofGrader
from qednano.grading.self_evaluation import StripSelfEvaluation
from qednano.llm.model import Model
from qednano.problems.record import Problem

Task = Literal["proof", "answer"]


def is_answer_problem(problem: Problem) -> bool:
    """A short answer and no proof material (marking scheme or guidelines) to grade against."""
    return bool(problem.short_answer.strip()) and not problem.marking_scheme_text().strip()


def infer_task(problems: Sequence[Problem]) -> tuple[Task, str]:
    """(task, why) decided from the problems themselves, the same way for `eval` and `grade`:
    answers when every problem has a short answer and none has a marking scheme."""
    answers = sum(is_answer_problem(p) for p in problems)
    if problems and answers == len(problems):
        return "answer", f"all {len(problems)} problems have a short answer and no marking scheme"
    if answers:
        return "proof", f"{len(problems) - answers} of {len(problems)} problems have proof material or no short answer"
    return "proof", "the problems have no short answers, or have marking schemes"


def check_grading(task: Task, config: GradingConfig, problems: Iterable[Problem]) -> None:
    """Refuse before any work starts what would fail on some problem: a proof-grading variant
    whose fields a problem lacks, or answer grading of a problem without a short answer."""
    if task == "proof":
        check_variant(problems, config.variant)
        return
    for problem in problems:
        if not problem.short_answer.strip():
            raise ValueError(f"problem {problem.id!r} has no short answer, so it cannot be graded as an answer; use --task proof")


class GradingConfig(BaseModel):
    """Who grades: grader models (several, or several samples of one, form a panel) and how."""

    graders: list[str] = Field(default_factory=list, description="Grader models; several form a panel.")
    variant: str = Field("auto", description="Proof-grading prompt variant; auto chooses from each problem.")
    aggregate: Literal["mean", "median", "min"] = Field("mean", description="How a panel combines scores.")
    grader_samples: int = Field(1, ge=1, description="Gradings per grader model, aggregated as a panel.")
    @field_validator("variant")
    @classmethod
    def _known_variant(cls, variant: str) -> str:
        if variant not in CHOICES:
            raise ValueError(f"unknown grader variant {variant!r}; choose one of {', '.join(CHOICES)}")
        return variant

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
