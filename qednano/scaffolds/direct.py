"""The plain scaffold: one call, the model's answer is the proof (or, on answer benchmarks, the answer)."""

from __future__ import annotations

from pydantic import Field

from qednano.problems.record import Problem
from qednano.prompts import SHIPPED, Prompts
from qednano.scaffolds.base import Attempt, Step, attempt_from
from qednano.scaffolds.budget import max_tokens
from qednano.scaffolds.config import ConfigBase, Roles


def solve_messages(problem: Problem, prompts: Prompts = SHIPPED) -> list[dict[str, str]]:
    """The user turn that asks for a proof (`solve`), or a boxed final answer in answer mode."""
    return [{"role": "user", "content": prompts.fill("solve", problem=problem.statement)}]


class DirectConfig(ConfigBase):
    max_tokens: int | None = Field(None, gt=0, description="Cap on the answer's tokens, reasoning included.")


class Direct:
    name = "direct"

    def __init__(self, config: DirectConfig, roles: Roles):
        self.config = config
        self.model = roles.model
        self.sampling = max_tokens(config.max_tokens)
        self.prompts = config.wording()

    async def solve(self, problem: Problem, sample_index: int = 0) -> Attempt:
        messages = solve_messages(problem, self.prompts)
        done = await self.model.complete(messages, self.sampling, sample_index=sample_index)
        step = Step(role="generate", messages=messages, completion=done)
        return attempt_from(problem, sample_index, self.name, done, [step])
