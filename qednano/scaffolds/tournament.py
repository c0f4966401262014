"""Pairwise comparison of proofs, knockout tournaments, and best-of-n with a tournament.

The comparison prompt and its parser live here once; RSA's final selection uses `knockout` too.
Proofs are shown as untrusted data and verdicts are read from the judge's own text only (see
`qednano.grading.untrusted`). Best-of-n scores its proofs with a rubric grader: the one given,
or, for self-scoring, the policy model itself grading with the `no_reference` prompt (it must
not see the reference solution it is being evaluated against).

A knockout takes candidates in seed order (best first). Each bracket round pairs neighbours,
(1, 2), (3, 4), ..., and an odd one out advances unplayed; the matches of a round run
concurrently. A judge whose reply has no parseable verdict, a budget that runs out, or a pair
where one side wrote no proof decides the match without a judgement: the better seed advances
(and a candidate with a proof always beats one without, with no call made). RSA, whose
candidates are unordered, may give unreadable verdicts to the second proof instead.

On answer benchmarks (`task: answer`) the comparison asks which final answer is right, and
best-of-n's self-scoring is a verification of the answer (0, 0.5 or 1, the verify prompt of
`verify_refine`) instead of a 0-7 proof grading.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field

from qednano.grading.proof_grader import RubricGrader
from qednano.grading.untrusted import last_labelled, markers, proof_block, untrusted_note
from qednano.llm.model import Model
from qednano.problems.record import Problem
from qednano.prompts import SHIPPED, Prompts
from qednano.scaffolds.base import Attempt, Scaffold
from qednano.scaffolds.budget import Call, Trace, best_first, max_tokens
from qednano.scaffolds.config import GeneratorConfig, Roles
from qednano.scaffolds.verify_refine import read_verification, verify_messages

# What may follow the label on the verdict line; anything else makes the answer unreadable.
WINNER_VALUE = re.compile(r"(?:proof\s+)?([ab])", re.IGNORECASE)


def compare_messages(problem: Problem, proof_a: str, proof_b: str, prompts: Prompts = SHIPPED) -> list[dict[str, str]]:
    text = prompts.fill(
        "compare",
        problem=problem.statement,
        untrusted=untrusted_note(),
        proof_a=proof_block(proof_a, "A"),
        proof_b=proof_block(proof_b, "B"),
        winner=prompts.text("winner_line").strip(),  # as {verdict} in verify: the form parse_winner reads
    )
    return [{"role": "user", "content": text}]


def parse_winner(content: str) -> Literal["A", "B"] | None:
    """The winner named on the judge's own last `WINNER:` line (pass `Completion.content`); None
    if there is none or it is malformed."""
    value = last_labelled(content, "winner", [markers("A"), markers("B")])
    match = WINNER_VALUE.fullmatch(value or "")
    if match is None:
        return None
    return "A" if match.group(1).upper() == "A" else "B"


async def knockout(
    trace: Trace,
    judge: Model,
    seeded: list[Attempt],
    compare_tokens: int | None = None,
    prompts: Prompts = SHIPPED,
    unreadable_winner: Literal["first", "second"] = "first",
) -> Attempt:
    """The winner of a knockout among `seeded` (best seed first); matches are "compare" steps.

    A failed judge call returns a failed Attempt instead; `trace.finish` passes it through.
    """
    if not seeded:
        raise ValueError("knockout needs at least one candidate")
    sampling = max_tokens(compare_tokens)
    alive = list(range(len(seeded)))  # seed ranks: lower is better
    bracket = 0
    while len(alive) > 1:
        bracket += 1
        pairs = [(alive[i], alive[i + 1]) for i in range(0, len(alive) - 1, 2)]
        bye = [alive[-1]] if len(alive) % 2 else []
        judged = [(a, b) for a, b in pairs if seeded[a].status == "ok" and seeded[b].status == "ok"]
        if judged and not trace.allows(len(judged)):
            # Out of budget: the best seed still in, preferring one that has a proof.
            return next((seeded[i] for i in sorted(alive) if seeded[i].status == "ok"), seeded[min(alive)])
        asks = [compare_messages(trace.problem, seeded[a].proof, seeded[b].proof, prompts) for a, b in judged]
        calls = [Call(judge, "compare", p, sampling, bracket, m) for m, p in enumerate(asks)]
        done = await trace.call(calls)
        if failed := trace.fail_on_call(done, f"bracket {bracket} comparison"):
            return failed
        verdicts = {pair: parse_winner(c.content) for pair, c in zip(judged, done, strict=True)}
        alive = [_winner(seeded, a, b, verdicts.get((a, b)), unreadable_winner) for a, b in pairs] + bye
    return seeded[alive[0]]


def _winner(seeded: list[Attempt], a: int, b: int, verdict: str | None, unreadable: str) -> int:
    if seeded[a].status == "ok" and seeded[b].status != "ok":
        return a
    if seeded[b].status == "ok" and seeded[a].status != "ok":
        return b
    if verdict is None and seeded[a].status == "ok":  # judged, but the verdict cannot be read
        return b if unreadable == "second" else a
    return b if verdict == "B" else a


class BestOfNConfig(GeneratorConfig):
    n: int = Field(4, ge=1, description="Proofs generated.")
    scoring: Literal["self", "grader"] = Field(
        "self",
        description="Who scores the n proofs: the judge model itself (0-7 with no reference shown; in answer mode a "
        "0/0.5/1 verification), or the grader.",
    )
    finalists: int | None = Field(None, ge=1, description="Best-graded proofs that play the knockout (None: all n).")
    score_tokens: int | None = Field(None, gt=0, description="Most tokens of each self-grading.")
    compare_tokens: int | None = Field(None, gt=0, description="Most tokens of each tournament comparison.")


class BestOfN:
    """n proofs, each graded 0-7 (by the judge model itself, or by a grader), then a knockout among the top.

    Seeding is by grade, ties by generation order; a proof that could not be graded ranks last.
    """

    name = "best_of_n"

    def __init__(self, config: BestOfNConfig, roles: Roles, generator: Scaffold):
        self.config = config
        self.generator = generator
        self.judge = roles.get("judge")
        self.prompts = config.wording()
        self.score_sampling = max_tokens(config.score_tokens)
        self.grader = None
        if config.scoring == "grader":
            self.grader = roles.needs_grader("BestOfN", "scoring='grader'")
        elif config.task == "proof":
            # Self-grading: the judge grades each proof in one call (no re-asks, so a stage of n
            # grades is n calls of the budget), without the reference solution it is evaluated on.
            self.grader = RubricGrader(self.judge, "no_reference", max_reasks=0, sampling=self.score_sampling)
        self.n = config.n
        self.finalists = config.finalists
        self.compare_tokens = config.compare_tokens
        self.budget = config.budget()

    async def solve(self, problem: Problem, sample_index: int = 0) -> Attempt:
        trace = Trace(problem, sample_index, self.name, self.budget)
        proofs = await trace.solve(self.generator, self.n)
        if failed := trace.fail_on_attempt(proofs, "generation"):
            return failed
        if self.grader is not None:
            scores = await trace.grade(self.grader, proofs)
        elif isinstance(scores := await self._verify(trace, proofs), Attempt):
            return scores
        seeded = [proofs[i] for i in best_first(scores)[: self.finalists]]
        return trace.finish(await knockout(trace, self.judge, seeded, self.compare_tokens, self.prompts))

    async def _verify(self, trace: Trace, answers: list[Attempt]) -> list[float | None] | Attempt:
        """Answer mode's self-scoring: one verification per answer, its verdict (None if unreadable,
        if there is no answer, or if the budget refuses the stage); a failed Attempt if a call failed."""
        todo = [i for i, a in enumerate(answers) if a.status == "ok"]
        if not trace.allows(len(todo)):
            return [None] * len(answers)
        prompts = [verify_messages(trace.problem, answers[i].proof, self.prompts) for i in todo]
        done = await trace.call([Call(self.judge, "verify", p, self.score_sampling, member=i) for i, p in zip(todo, prompts, strict=True)])
        if failed := trace.fail_on_call(done, "answer verification"):
            return failed
        verdicts = dict(zip(todo, (read_verification(c.content) for c in done), strict=True))
        return [verdicts.get(i) for i in range(len(answers))]
