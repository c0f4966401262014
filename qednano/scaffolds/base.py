"""What a scaffold is: problem in, `Attempt` out, every model call kept in a trace.

A scaffold is built with its settings and models (outside), and `solve` does the work (inside).
Sample `i` of a problem passes `sample_index=i` down to every model call, so that each sample
has its own cache entries and a resumed run replays exactly the calls that were done.
"""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import BaseModel, Field

from qednano.llm.types import Completion, Messages, Usage
from qednano.problems.record import Problem


class Step(BaseModel):
    """One model call inside a scaffold: what it was for, what it saw, what came back."""

    role: str  # e.g. "generate", "summarize", "verify", "refine", "aggregate", "compare"
    turn: int = 0
    messages: Messages
    completion: Completion
    note: str | None = None  # what the scaffold did about an unusable reply it carried on past


AttemptStatus = Literal["ok", "failed", "no_proof"]


class Attempt(BaseModel):
    """A scaffold's final answer for one sample of one problem."""

    problem_id: str
    sample_index: int
    scaffold: str
    proof: str = ""  # the text after the reasoning: all the grader ever sees
    status: AttemptStatus
    error: str | None = None
    finish_reason: str = "stop"  # of the call that wrote the chosen proof ("length" = cut off)
    stopped_by: str | None = None  # why a budget cut the scaffold's schedule short, if it did
    steps: list[Step] = Field(default_factory=list)

    @property
    def usage(self) -> Usage:
        total = Usage()
        for step in self.steps:
            total = total + step.completion.usage
        return total

    @property
    def cost_usd(self) -> float:
        return sum(step.completion.cost_usd for step in self.steps)

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


def attempt_from(problem: Problem, sample_index: int, scaffold: str, final: Completion, steps: list[Step]) -> Attempt:
    """Turn a scaffold's final completion into an Attempt with the right status."""
    if not final.ok:
        status, error = "failed", final.error
    elif not final.reasoning_closed or not final.content.strip():
        status, error = "no_proof", None
    else:
        status, error = "ok", None
    return Attempt(
        problem_id=problem.id,
        sample_index=sample_index,
        scaffold=scaffold,
        proof=final.content if status == "ok" else "",
        status=status,
        error=error,
        finish_reason=final.finish_reason,
        steps=steps,
    )


class Scaffold(Protocol):
    name: str

    async def solve(self, problem: Problem, sample_index: int = 0) -> Attempt: ...
