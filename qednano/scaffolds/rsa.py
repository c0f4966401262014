"""Recursive self-aggregation (RSA): a population of proofs, improved by aggregating subsets.

The generator (any scaffold) writes a population of N proofs. Each round builds N new proofs;
new proof i is written by the aggregator from K distinct members of the previous population.
The subsets are balanced, as in the reference implementation: every member is shown to exactly
K aggregations per round, so no proof is left out by chance. The draw uses an RNG seeded from
the attempt's sample index and the round, so a resumed run draws the same subsets and its
aggregation prompts hit the cache. After R rounds one proof of the last population is chosen,
by a knockout tournament judged by a model or by the highest grade of a `ProofGrader`. A judge
reply without a readable winner goes to the second proof of the pair, as in the reference
(`unreadable_winner: first` gives it to the first).
"""

from __future__ import annotations

import random
from typing import Literal

from pydantic import Field, model_validator

from qednano.grading.untrusted import proof_block, untrusted_note
from qednano.problems.record import Problem
from qednano.prompts import SHIPPED, Prompts
from qednano.scaffolds.base import Attempt, Scaffold
from qednano.scaffolds.budget import Call, Trace, best_first, call_index, max_tokens
from qednano.scaffolds.config import GeneratorConfig, Roles
from qednano.scaffolds.tournament import knockout

NO_PROOF = "(this attempt did not produce a proof)"


def aggregate_messages(problem: Problem, members: list[Attempt], prompts: Prompts = SHIPPED) -> list[dict[str, str]]:
    blocks = [
        f"Candidate solution {i}:\n{proof_block(m.proof, str(i)) if m.status == 'ok' else NO_PROOF}"
        for i, m in enumerate(members, 1)
    ]
    text = prompts.fill(
        "aggregate",
        problem=problem.statement,
        count=len(members),
        untrusted=untrusted_note(),
        candidates="\n\n".join(blocks),
    )
    return [{"role": "user", "content": text}]


def draw_subsets(sample_index: int, round_: int, population: int, subset: int) -> list[list[int]]:
    """For each of `population` new proofs, `subset` distinct member indices; every member
    appears in exactly `subset` of them. Deterministic in (sample_index, round_).

    Members are put in a random order on a circle and K distinct random shifts are drawn;
    subset i takes the members at positions i + shift. Each shift hits each position once.
    """
    rng = random.Random(call_index(sample_index, "rsa-subsets", round_))
    order = rng.sample(range(population), population)
    shifts = rng.sample(range(population), subset)
    return [[order[(i + shift) % population] for shift in shifts] for i in range(population)]


class RSAConfig(GeneratorConfig):
    population: int = Field(4, ge=1, description="N: proofs per population.")
    subset: int = Field(2, ge=1, description="K: distinct members each aggregation sees (at most N).")
    rounds: int = Field(2, ge=0, description="R: aggregation rounds.")
    select: Literal["tournament", "grader"] = Field(
        "tournament", description="How the final proof is chosen: a knockout judged by a model, or the best grade."
    )
    aggregate_tokens: int | None = Field(None, gt=0, description="Most tokens of each aggregation.")
    compare_tokens: int | None = Field(None, gt=0, description="Most tokens of each tournament comparison.")
    unreadable_winner: Literal["second", "first"] = Field(
        "second", description="Who wins a comparison whose verdict cannot be read (second: as the reference)."
    )

    @model_validator(mode="after")
    def _subset_fits(self) -> RSAConfig:
        if self.subset > self.population:
            raise ValueError(f"subset must be between 1 and population ({self.population}), got {self.subset}")
        return self


class RSA:
    name = "rsa"

    def __init__(self, config: RSAConfig, roles: Roles, generator: Scaffold):
        self.config = config
        self.generator = generator
        self.aggregator = roles.get("aggregator")
        self.judge = roles.judge or self.aggregator  # RSA judges with its aggregator unless told otherwise
        self.grader = roles.needs_grader("RSA", "select='grader'") if config.select == "grader" else None
        self.population = config.population
        self.subset = config.subset
        self.rounds = config.rounds
        self.select = config.select
        self.aggregate_sampling = max_tokens(config.aggregate_tokens)
        self.compare_tokens = config.compare_tokens
        self.prompts = config.wording()
        self.budget = config.budget()

    async def solve(self, problem: Problem, sample_index: int = 0) -> Attempt:
        trace = Trace(problem, sample_index, self.name, self.budget)
        members = await trace.solve(self.generator, self.population)
        if failed := trace.fail_on_attempt(members, "generation"):
            return failed
        for r in range(1, self.rounds + 1):
            if not trace.allows(self.population):
                break
            subsets = draw_subsets(sample_index, r, self.population, self.subset)
            prompts = [aggregate_messages(problem, [members[j] for j in picks], self.prompts) for picks in subsets]
            sampling = self.aggregate_sampling
            calls = [Call(self.aggregator, "aggregate", p, sampling, r, i) for i, p in enumerate(prompts)]
            done = await trace.call(calls)
            if failed := trace.fail_on_call(done, f"round {r} aggregation"):
                return failed
            members = [trace.candidate(c) for c in done]
        return trace.finish(await self._choose(trace, members))

    async def _choose(self, trace: Trace, members: list[Attempt]) -> Attempt:
        if self.select == "tournament":
            return await knockout(
                trace, self.judge, members, self.compare_tokens, self.prompts, self.config.unreadable_winner
            )
        assert self.grader is not None
        # Highest grade wins; ungraded and proof-less members rank last; ties (and no budget
        # left to grade) go to the first.
        scores = await trace.grade(self.grader, members, turn=self.rounds + 1)
        return members[best_first(scores)[0]]
