"""The plain scaffold: one call, the model's answer is the proof."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from qednano.problems.record import Problem
from qednano.prompts import fill, load_prompt
from qednano.scaffolds.base import Attempt, Step, attempt_from
from qednano.scaffolds.budget import max_tokens
from qednano.scaffolds.config import ConfigBase, Roles


def solve_messages(problem: Problem, prompt: str = "solve") -> list[dict[str, str]]:
    """The user turn that asks for a proof (`solve`) or a boxed final answer (`answer`)."""
    return [{"role": "user", "content": fill(load_prompt(__file__, prompt), problem=problem.statement)}]


class DirectConfig(ConfigBase):
    max_tokens: int | None = Field(None, gt=0, description="Cap on the answer's tokens, reasoning included.")
    prompt: Literal["solve", "answer"] = Field("solve", description="Ask for a proof, or for a boxed final answer.")


class Direct:
    name = "direct"

    def __init__(self, config: DirectConfig, roles: Roles):
        self.config = config
        self.model = roles.model
        self.sampling = max_tokens(config.max_tokens)
        self.prompt = config.prompt

    async def solve(self, problem: Problem, sample_index: int = 0) -> Attempt:
        messages = solve_messages(problem, self.prompt)
        done = await self.model.complete(messages, self.sampling, sample_index=sample_index)
        step = Step(role="generate", messages=messages, completion=done)
        return attempt_from(problem, sample_index, self.name, done, [step])
