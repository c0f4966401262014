"""Generate, verify, refine (in the style of DeepSeek-Math-V2's test-time search).

A pool of P proofs comes from the generator (any scaffold). Each proof is verified k times; a
verification lists the proof's issues and ends with a verdict of 0, 0.5 or 1, and the proof's
score is the mean of its verdicts. A verification without a readable verdict is kept in the
trace and, by default, not counted (`unreadable_verdict: zero` counts it as 0, as the reference
implementation does). The search stops as soon as some proof passes all k verifications (k
verdicts of 1). Otherwise each refinement round rewrites the m best proofs of everything seen so
far, each from its r lowest-scored verifications (the reports that found the most wrong with
it), and verifies the rewrites; after `rounds` refinement rounds the best proof seen is returned.

The verify and refine prompts and the verdict parser are shared with `SelfCheck`. The proof is
shown as untrusted data and the verdict is read from the verifier's own text only (see
`qednano.grading.untrusted`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import Field, model_validator

from qednano.grading.untrusted import defuse, last_labelled, proof_block, untrusted_note
from qednano.llm.types import Completion
from qednano.problems.record import Problem
from qednano.prompts import SHIPPED, Prompts
from qednano.scaffolds.base import Attempt, Scaffold
from qednano.scaffolds.budget import Call, Trace, best_first, max_tokens
from qednano.scaffolds.config import GeneratorConfig, Roles

# Any other value (0.7, "pass", "1 (almost)") is unreadable.
VERDICT_VALUES = {"0": 0.0, "0.0": 0.0, ".5": 0.5, "0.5": 0.5, "1/2": 0.5, "1": 1.0, "1.0": 1.0}


def read_verification(content: str) -> float | None:
    """0, 0.5 or 1 from the verifier's own last `VERDICT:` line (pass `Completion.content`);
    None if there is none or it is malformed."""
    value = last_labelled(content, "verdict")
    return None if value is None else VERDICT_VALUES.get(value)


def verify_messages(problem: Problem, proof: str, prompts: Prompts = SHIPPED) -> list[dict[str, str]]:
    # The verdict line's form is filled in from its own file, so a replacement prompt must keep
    # the {verdict} placeholder and cannot silently ask for a verdict in a form nobody reads.
    text = prompts.fill(
        "verify",
        problem=problem.statement,
        untrusted=untrusted_note(),
        proof=proof_block(proof),
        verdict=prompts.text("verdict_line").strip(),
    )
    return [{"role": "user", "content": text}]


def refine_messages(problem: Problem, proof: str, reports: list[str], prompts: Prompts = SHIPPED) -> list[dict[str, str]]:
    # Reports may echo the proof block; their markers are defused so the proof's block stays the only one.
    if len(reports) == 1:
        text = defuse(reports[0].strip())
    else:
        text = "\n\n".join(f"Report {i}:\n{defuse(r.strip())}" for i, r in enumerate(reports, 1))
    filled = prompts.fill(
        "refine", problem=problem.statement, untrusted=untrusted_note(), proof=proof_block(proof), report=text
    )
    return [{"role": "user", "content": filled}]


@dataclass
class Verified:
    """A candidate proof and what its verifications said; `unreadable` is the value of a
    verdict that cannot be read (None: not counted)."""

    proof: Attempt
    reports: list[Completion] = field(default_factory=list)
    unreadable: float | None = None

    @property
    def verdicts(self) -> list[float | None]:
        read = [read_verification(r.content) for r in self.reports]
        return [self.unreadable if v is None else v for v in read]

    @property
    def score(self) -> float | None:
        """Mean counted verdict; 0 for a candidate with no proof; None if nothing was counted."""
        if self.proof.status != "ok":
            return 0.0
        read = [v for v in self.verdicts if v is not None]
        return sum(read) / len(read) if read else None

    def passes(self, needed: int) -> bool:
        return len(self.reports) >= needed and all(v == 1.0 for v in self.verdicts)

    def worst_reports(self, count: int) -> list[str]:
        """The `count` reports with the lowest verdicts, uncounted ones last, ties in order."""
        order = sorted(range(len(self.reports)), key=lambda i: (self.verdicts[i] is None, self.verdicts[i] or 0.0, i))
        return [self.reports[i].content for i in order[:count]]


def rank(pool: list[Verified]) -> list[Verified]:
    """Best first: highest score, unreadable scores last, ties in pool order."""
    return [pool[i] for i in best_first([v.score for v in pool])]


class VerifyRefineConfig(GeneratorConfig):
    pool: int = Field(4, ge=1, description="P: proofs in the first pool.")
    verifications: int = Field(4, ge=1, description="k: verifications of each proof.")
    rounds: int = Field(2, ge=0, description="R: refinement rounds.")
    refine_top: int = Field(2, ge=1, description="m: best proofs refined each round (at most P).")
    verify_tokens: int | None = Field(None, gt=0, description="Most tokens of each verification.")
    refine_tokens: int | None = Field(None, gt=0, description="Most tokens of each refinement.")
    reports_per_refine: int = Field(1, ge=1, description="r: lowest-scored verifications each refinement reads.")
    unreadable_verdict: Literal["skip", "zero"] = Field(
        "skip", description="A verification without a readable verdict: skip it, or count it as 0 (the reference)."
    )

    @model_validator(mode="after")
    def _refine_top_fits(self) -> VerifyRefineConfig:
        if self.refine_top > self.pool:
            raise ValueError(f"refine_top must be between 1 and pool ({self.pool}), got {self.refine_top}")
        if self.reports_per_refine > self.verifications:
            raise ValueError(
                f"reports_per_refine must be between 1 and verifications ({self.verifications}), got {self.reports_per_refine}"
            )
        return self


class VerifyRefine:
    name = "verify_refine"

    def __init__(self, config: VerifyRefineConfig, roles: Roles, generator: Scaffold):
        self.config = config
        self.generator = generator
        self.verifier = roles.get("verifier")
        self.refiner = roles.get("refiner")  # DeepSeek-Math-V2 uses one model for all roles
        self.pool = config.pool
        self.verifications = config.verifications
        self.rounds = config.rounds
        self.refine_top = config.refine_top
        self.verify_sampling = max_tokens(config.verify_tokens)
        self.refine_sampling = max_tokens(config.refine_tokens)
        self.unreadable = 0.0 if config.unreadable_verdict == "zero" else None
        self.prompts = config.wording()
        self.budget = config.budget()

    async def solve(self, problem: Problem, sample_index: int = 0) -> Attempt:
        trace = Trace(problem, sample_index, self.name, self.budget)
        proofs = await trace.solve(self.generator, self.pool)
        if failed := trace.fail_on_attempt(proofs, "generation"):
            return failed
        pool: list[Verified] = []
        fresh = [Verified(p, unreadable=self.unreadable) for p in proofs]
        for r in range(self.rounds + 1):
            todo = [v for v in fresh if v.proof.status == "ok"]
            if todo and not trace.allows(len(todo) * self.verifications):
                pool.extend(fresh)  # unverified: they score None and rank last
                break
            if (failed := await self._verify(trace, todo, r)) is not None:
                return failed
            pool.extend(fresh)
            if any(v.passes(self.verifications) for v in todo) or r == self.rounds:
                break
            targets = [v for v in rank(pool) if v.proof.status == "ok"][: self.refine_top]
            if not targets or not trace.allows(len(targets)):
                break
            prompts = [self._refine_prompt(problem, v) for v in targets]
            calls = [Call(self.refiner, "refine", p, self.refine_sampling, r + 1, i) for i, p in enumerate(prompts)]
            done = await trace.call(calls)
            if failed := trace.fail_on_call(done, f"round {r + 1} refinement"):
                return failed
            fresh = [Verified(trace.candidate(c), unreadable=self.unreadable) for c in done]
        passing = [v for v in pool if v.proof.status == "ok" and v.passes(self.verifications)]
        best = passing[0] if passing else rank(pool)[0]
        return trace.finish(best.proof)

    def _refine_prompt(self, problem: Problem, target: Verified) -> list[dict[str, str]]:
        reports = target.worst_reports(self.config.reports_per_refine)
        return refine_messages(problem, target.proof.proof, reports, self.prompts)

    async def _verify(self, trace: Trace, todo: list[Verified], round_: int) -> Attempt | None:
        """Verify each proof k times (turn = round); a failed Attempt if a call failed."""
        k = self.verifications
        prompts = [verify_messages(trace.problem, v.proof.proof, self.prompts) for v in todo]
        calls = [
            Call(self.verifier, "verify", p, self.verify_sampling, round_, member=i * k + j)
            for i, p in enumerate(prompts)
            for j in range(k)
        ]
        done = await trace.call(calls)
        if failed := trace.fail_on_call(done, f"round {round_} verification"):
            return failed
        for i, v in enumerate(todo):
            v.reports = done[i * k : (i + 1) * k]
        return None
