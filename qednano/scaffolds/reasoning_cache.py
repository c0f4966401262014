"""Reasoning cache (RC): long reasoning split into turns, carried between them by a summary.

Turn 1 is the plain solve prompt (or, with `first_turn: continue`, the continue prompt with
the no-summary note, as the reference implementation starts). After each turn but the last, a
summarizer reads the problem, the current summary and that turn's reasoning, and writes a new
summary that replaces the old one. Turn t > 1 sees only the problem and the summary of turns
1..t-1, never their reasoning: that is what keeps each turn's context short (at most H_R
reasoning tokens plus a summary of at most H_S tokens). The answer is the last turn's final text.

A turn's "reasoning" is the model's thinking when it has any, else its content: a model that
does not think in a separate block reasons in its answer. A truncated turn (thinking never
closed) still has its partial reasoning summarized; continuing unfinished reasoning is the
point of the scaffold.

The summarizer has its own sampling: H_S tokens, and `summary_thinking: false` asks a server
whose chat template can switch thinking off (vLLM or SGLang serving Qwen3) to do so, since a
thinking summarizer can spend all of H_S thinking and write nothing. A summary that still comes
back empty does not end the chain: the next turn starts from the last summary (as the reference
does), and the summary step carries a note saying so. `carry_summary` is that rule, shared with
the RC-RL state builder (`train/rc.py`) so training states are the ones this scaffold reaches.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from qednano.llm.types import Completion, Sampling
from qednano.problems.record import Problem
from qednano.prompts import SHIPPED, Prompts
from qednano.scaffolds.base import Attempt
from qednano.scaffolds.budget import Call, Trace, max_tokens
from qednano.scaffolds.config import Roles, ScaffoldConfig
from qednano.scaffolds.direct import solve_messages


def turn_messages(problem: Problem, summary: str | None, prompts: Prompts = SHIPPED, first_turn: str = "solve") -> list[dict[str, str]]:
    """The prompt of a reasoning turn: the plain solve prompt first, then problem + summary."""
    if summary is None and first_turn == "solve":
        return solve_messages(problem, prompts)
    notes = prompts.text("rc_no_summary").strip() if summary is None else summary
    return [{"role": "user", "content": prompts.fill("rc_continue", problem=problem.statement, summary=notes)}]


def summary_messages(problem: Problem, summary: str | None, reasoning: str, prompts: Prompts = SHIPPED) -> list[dict[str, str]]:
    notes = prompts.text("rc_no_summary").strip() if summary is None else summary
    text = prompts.fill("rc_summarize", problem=problem.statement, summary=notes, reasoning=reasoning)
    return [{"role": "user", "content": text}]


def carry_summary(previous: str | None, note: Completion, turn: int) -> tuple[str | None, str | None]:
    """The summary turn `turn + 1` starts from, and a note when the summarizer wrote nothing.

    An empty summary keeps the previous one (after turn 1: still none, so the next turn gets the
    first turn's prompt again), as the reference does. Only a call that succeeded is a summary: a
    failed call is the caller's to record as a failure, never an empty summary.
    """
    if not note.ok:
        raise ValueError(f"turn {turn} summary: a failed call ({note.error}) is a failure, not an empty summary")
    if written := note.content.strip():
        return written, None
    kept = "no summary yet" if previous is None else "the previous summary"
    return previous, f"empty summary (finish_reason {note.finish_reason}): turn {turn + 1} starts from {kept}"


def reasoning_of(turn: Completion) -> str:
    return turn.reasoning if turn.reasoning.strip() else turn.content


class RCConfig(ScaffoldConfig):
    turns: int = Field(4, ge=1, description="T: reasoning turns.")
    reasoning_tokens: int | None = Field(None, gt=0, description="H_R: most tokens of each reasoning turn.")
    summary_tokens: int | None = Field(None, gt=0, description="H_S: most tokens of each summary.")
    summary_thinking: bool | None = Field(
        None,
        description="false: ask the server to skip thinking in summaries (vLLM/SGLang chat_template_kwargs, e.g. "
        "Qwen3); an API without that switch rejects the call. None: the server's default.",
    )
    first_turn: Literal["solve", "continue"] = Field(
        "solve", description="Turn 1's prompt: solve, or continue from the no-summary note (the reference's RC)."
    )


class ReasoningCache:
    name = "rc"

    def __init__(self, config: RCConfig, roles: Roles):
        self.config = config
        self.model = roles.model
        self.summarizer = roles.get("summarizer")
        self.turns = config.turns
        self.reasoning_sampling = max_tokens(config.reasoning_tokens)  # H_R
        self.summary_sampling = summary_sampling(config)  # H_S, thinking switch
        self.prompts = config.wording()
        self.budget = config.budget()

    async def solve(self, problem: Problem, sample_index: int = 0) -> Attempt:
        trace = Trace(problem, sample_index, self.name, self.budget)
        summary: str | None = None
        for t in range(1, self.turns + 1):
            messages = turn_messages(problem, summary, self.prompts, self.config.first_turn)
            [turn] = await trace.call([Call(self.model, "generate", messages, self.reasoning_sampling, turn=t)])
            if failed := trace.fail_on_call([turn], f"turn {t} reasoning"):
                return failed
            # A summary is only worth making if another turn will read it: 2 more calls.
            if t == self.turns or not trace.allows(2):
                return trace.finish(trace.candidate(turn))
            messages = summary_messages(problem, summary, reasoning_of(turn), self.prompts)
            [note] = await trace.call([Call(self.summarizer, "summarize", messages, self.summary_sampling, turn=t)])
            if failed := trace.fail_on_call([note], f"turn {t} summary"):
                return failed
            summary, trace.steps[-1].note = carry_summary(summary, note, t)
        raise AssertionError("unreachable: the last turn returns")


def summary_sampling(config: RCConfig) -> Sampling | None:
    settings = {"max_tokens": config.summary_tokens, "thinking": config.summary_thinking}
    settings = {k: v for k, v in settings.items() if v is not None}
    return Sampling(**settings) if settings else None
