"""Reasoning cache (RC): long reasoning split into turns, carried between them by a summary.

Turn 1 is the plain solve prompt. After each turn but the last, a summarizer reads the problem,
the current summary and that turn's reasoning, and writes a new summary that replaces the old
one. Turn t > 1 sees only the problem and the summary of turns 1..t-1, never their reasoning:
that is what keeps each turn's context short (at most H_R reasoning tokens plus a summary of at
most H_S tokens). The answer is the last turn's final text.

A turn's "reasoning" is the model's thinking when it has any, else its content: a model that
does not think in a separate block reasons in its answer. A truncated turn (thinking never
closed) still has its partial reasoning summarized; continuing unfinished reasoning is the
point of the scaffold.
"""

from __future__ import annotations

from pydantic import Field

from qednano.llm.types import Completion
from qednano.problems.record import Problem
from qednano.prompts import fill, load_prompt
from qednano.scaffolds.base import Attempt
from qednano.scaffolds.budget import Call, Trace, max_tokens
from qednano.scaffolds.config import Roles, ScaffoldConfig
from qednano.scaffolds.direct import solve_messages

# What the summarizer is shown as "my notes so far" after turn 1.
NO_SUMMARY = "(none yet: the reasoning below was my first attempt)"


def turn_messages(problem: Problem, summary: str | None) -> list[dict[str, str]]:
    """The prompt of a reasoning turn: the plain solve prompt first, then problem + summary."""
    if summary is None:
        return solve_messages(problem)
    text = fill(load_prompt(__file__, "rc_continue"), problem=problem.statement, summary=summary)
    return [{"role": "user", "content": text}]


def summary_messages(problem: Problem, summary: str | None, reasoning: str) -> list[dict[str, str]]:
    text = fill(
        load_prompt(__file__, "rc_summarize"),
        problem=problem.statement,
        summary=NO_SUMMARY if summary is None else summary,
        reasoning=reasoning,
    )
    return [{"role": "user", "content": text}]


def reasoning_of(turn: Completion) -> str:
    return turn.reasoning if turn.reasoning.strip() else turn.content


class RCConfig(ScaffoldConfig):
    turns: int = Field(4, ge=1, description="T: reasoning turns.")
    reasoning_tokens: int | None = Field(None, gt=0, description="H_R: most tokens of each reasoning turn.")
    summary_tokens: int | None = Field(None, gt=0, description="H_S: most tokens of each summary.")


class ReasoningCache:
    name = "rc"

    def __init__(self, config: RCConfig, roles: Roles):
        self.config = config
        self.model = roles.model
        self.summarizer = roles.get("summarizer")
        self.turns = config.turns
        self.reasoning_sampling = max_tokens(config.reasoning_tokens)  # H_R
        self.summary_sampling = max_tokens(config.summary_tokens)  # H_S
        self.budget = config.budget()

    async def solve(self, problem: Problem, sample_index: int = 0) -> Attempt:
        trace = Trace(problem, sample_index, self.name, self.budget)
        summary: str | None = None
        for t in range(1, self.turns + 1):
            messages = turn_messages(problem, summary)
            [turn] = await trace.call([Call(self.model, "generate", messages, self.reasoning_sampling, turn=t)])
            if failed := trace.fail_on_call([turn], f"turn {t} reasoning"):
                return failed
            # A summary is only worth making if another turn will read it: 2 more calls.
            if t == self.turns or not trace.allows(2):
                return trace.finish(trace.candidate(turn))
            messages = summary_messages(problem, summary, reasoning_of(turn))
            [note] = await trace.call([Call(self.summarizer, "summarize", messages, self.summary_sampling, turn=t)])
            if failed := trace.fail_on_call([note], f"turn {t} summary"):
                return failed
            if not note.content.strip():
                # The next turn would start from nothing: that is a failure, not an empty summary.
                return trace.fail(f"turn {t}: the summarizer wrote no summary (finish_reason {note.finish_reason})")
            summary = note.content.strip()
        raise AssertionError("unreachable: the last turn returns")
