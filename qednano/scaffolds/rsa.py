"""Recursive self-aggregation (RSA): a population of proofs, improved by aggregating subsets.

The generator (any scaffold) writes a population of N proofs. Each round builds N new proofs;
new proof i is written by the aggregator from K distinct members of the previous population,
drawn at random. The draw uses an RNG seeded from the attempt's sample index and the round, so
a resumed run draws the same subsets and its aggregation prompts hit the cache. After R rounds
one proof of the last population is chosen, by a knockout tournament judged by a model or by
the highest grade of a `ProofGrader`.
"""

from __future__ import annotations

import random
from typing import Literal

from qednano.grading.record import ProofGrader
from qednano.grading.untrusted import proof_block, untrusted_note
from qednano.llm.model import Model
from qednano.problems.record import Problem
from qednano.prompts import fill, load_prompt
from qednano.scaffolds.base import Attempt, Scaffold
from qednano.scaffolds.budget import Budget, Call, Trace, best_first, call_index, max_tokens
from qednano.scaffolds.tournament import knockout

NO_PROOF = "(this attempt did not produce a proof)"


def aggregate_messages(problem: Problem, members: list[Attempt]) -> list[dict[str, str]]:
    blocks = [
        f"Candidate solution {i}:\n{proof_block(m.proof, str(i)) if m.status == 'ok' else NO_PROOF}"
        for i, m in enumerate(members, 1)
    ]
    text = fill(
        load_prompt(__file__, "aggregate"),
        problem=problem.statement,
        count=len(members),
        untrusted=untrusted_note(),
        candidates="\n\n".join(blocks),
    )
    return [{"role": "user", "content": text}]


def draw_subsets(sample_index: int, round_: int, population: int, subset: int) -> list[list[int]]:
    """For each of `population` new proofs, `subset` distinct member indices; deterministic."""
    rng = random.Random(call_index(sample_index, "rsa-subsets", round_))
    return [rng.sample(range(population), subset) for _ in range(population)]


class RSA:
    name = "rsa"

    def __init__(
        self,
        generator: Scaffold,
        aggregator_model: Model,
        population: int = 4,
        subset: int = 2,
        rounds: int = 2,
        select: Literal["tournament", "grader"] = "tournament",
        grader: ProofGrader | None = None,
        judge_model: Model | None = None,
        aggregate_tokens: int | None = None,
        compare_tokens: int | None = None,
        budget: Budget | None = None,
    ):
        if population < 1 or rounds < 0:
            raise ValueError(f"RSA: need population >= 1 and rounds >= 0, got {population} and {rounds}")
        if not 1 <= subset <= population:
            raise ValueError(f"RSA: subset must be between 1 and population ({population}), got {subset}")
        if select not in ("tournament", "grader"):
            raise ValueError(f"RSA: select must be 'tournament' or 'grader', got {select!r}")
        if select == "grader" and grader is None:
            raise ValueError("RSA: select='grader' needs a grader")
        self.generator = generator
        self.aggregator = aggregator_model
        self.judge = judge_model or aggregator_model
        self.population = population
        self.subset = subset
        self.rounds = rounds
        self.select = select
        self.grader = grader
        self.aggregate_sampling = max_tokens(aggregate_tokens)
        self.compare_tokens = compare_tokens
        self.budget = budget

    async def solve(self, problem: Problem, sample_index: int = 0) -> Attempt:
        trace = Trace(problem, sample_index, self.name, self.budget)
        members = await trace.solve(self.generator, self.population)
        if failed := trace.fail_on_attempt(members, "generation"):
            return failed
        for r in range(1, self.rounds + 1):
            if not trace.allows(self.population):
                break
            subsets = draw_subsets(sample_index, r, self.population, self.subset)
            prompts = [aggregate_messages(problem, [members[j] for j in picks]) for picks in subsets]
            sampling = self.aggregate_sampling
            calls = [Call(self.aggregator, "aggregate", p, sampling, r, i) for i, p in enumerate(prompts)]
            done = await trace.run(calls)
            if failed := trace.fail_on_call(done, f"round {r} aggregation"):
                return failed
            members = [trace.candidate(c) for c in done]
        return trace.finish(await self._choose(trace, members))

    async def _choose(self, trace: Trace, members: list[Attempt]) -> Attempt:
        if self.select == "tournament":
            return await knockout(trace, self.judge, members, self.compare_tokens)
        assert self.grader is not None
        # Highest grade wins; ungraded and proof-less members rank last; ties (and no budget
        # left to grade) go to the first.
        scores = await trace.grade(self.grader, members, turn=self.rounds + 1)
        return members[best_first(scores)[0]]
