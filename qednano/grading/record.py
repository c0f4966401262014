"""The Grade record: what a grader said about one proof or answer."""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import BaseModel, Field

from qednano.llm.types import Completion
from qednano.problems.record import Problem

# graded: a valid verdict was read. ungraded: the grader failed or never gave a parseable
# verdict (excluded from means, counted in reports). no_proof: there was nothing to grade
# (empty text, or reasoning that never closed); it scores 0 because the prover wrote nothing.
GradeStatus = Literal["graded", "ungraded", "no_proof"]


class Grade(BaseModel):
    status: GradeStatus
    score: float | None = None
    max_score: float = 7.0
    criteria: dict[str, float] = Field(default_factory=dict)  # per-checkpoint points, when given
    assessment: str = ""  # the grader's written judgement (its final answer, not its reasoning)
    grader: str = ""  # grader model name + prompt variant
    error: str | None = None  # why a grade is ungraded
    calls: list[Completion] = Field(default_factory=list)  # the grader's own calls, for cost
    members: list[Grade] = Field(default_factory=list)  # a panel's member grades, in grader order
    spread: float | None = None  # a panel's highest minus lowest graded member score
    std: float | None = None  # a panel's population standard deviation of graded member scores
    unanswered: bool = False  # a short answer with no readable final answer, scored 0 (no judge)
    self_evaluation: str = ""  # the proof's self-evaluation section, stripped before grading

    @property
    def fraction(self) -> float | None:
        """Score scaled to [0, 1] (the RL reward); None when ungraded."""
        if self.status == "no_proof":
            return 0.0
        return None if self.score is None else self.score / self.max_score

    @property
    def cost_usd(self) -> float:
        return sum(c.cost_usd for c in self.calls)  # a panel's calls include its members'


class ProofGrader(Protocol):
    """Grades one proof of one problem. Never raises for a failed grader call: returns ungraded."""

    name: str

    async def grade(self, problem: Problem, proof: str, sample_index: int = 0) -> Grade: ...


# ---------------------------------------------------------------------------- short answers

Method = Literal["math-verify", "llm-judge", "none"]
# checked: a verdict was reached. unparsed: no answer could be read (or it has words math-verify
# would drop). timeout: the check overran its deadline. failed: the checker or judge call broke.
CheckStatus = Literal["checked", "unparsed", "timeout", "failed"]


class AnswerVerdict(BaseModel):
    """What one check of a short answer found (math-verify or the LLM judge)."""

    correct: bool | None = None  # None whenever status is not "checked"
    extracted: str | None = None  # the candidate answer that was compared
    method: Method = "none"
    status: CheckStatus
    detail: str = ""  # why it was not checked
    reference_unreadable: bool = False  # unparsed because of the reference answer, not the response
    judge_call: Completion | None = None  # the LLM judge's call, for cost and audit
