"""Self-check: one model writes a proof, checks it, and corrects it from its own bug report.

Each round the model verifies the current proof (the verify prompt of `verify_refine`). A
verdict of 1 is a pass; `passes_needed` consecutive passes end the loop. A lower verdict resets
the streak and the model rewrites the proof from that report. A verification with no readable
verdict uses up its round but neither passes nor resets the streak: there is nothing to fix
from it. At most `max_rounds` verifications are made; the current proof is returned, which
after a correction in the last round is the corrected, unverified one.
"""

from __future__ import annotations

from pydantic import Field

from qednano.problems.record import Problem
from qednano.scaffolds.base import Attempt
from qednano.scaffolds.budget import Call, Trace, max_tokens
from qednano.scaffolds.config import Roles, ScaffoldConfig
from qednano.scaffolds.direct import solve_messages
from qednano.scaffolds.verify_refine import read_verification, refine_messages, verify_messages


class SelfCheckConfig(ScaffoldConfig):
    max_rounds: int = Field(4, ge=1, description="Most verifications.")
    passes_needed: int = Field(2, ge=1, description="Consecutive passing verifications that end the loop.")
    solve_tokens: int | None = Field(None, gt=0, description="Most tokens of the first proof.")
    verify_tokens: int | None = Field(None, gt=0, description="Most tokens of each verification.")
    refine_tokens: int | None = Field(None, gt=0, description="Most tokens of each correction (default: solve_tokens).")


class SelfCheck:
    name = "self_check"

    def __init__(self, config: SelfCheckConfig, roles: Roles):
        self.config = config
        self.model = roles.model
        self.max_rounds = config.max_rounds
        self.passes_needed = config.passes_needed
        self.solve_sampling = max_tokens(config.solve_tokens)
        self.verify_sampling = max_tokens(config.verify_tokens)
        self.refine_sampling = max_tokens(config.refine_tokens or config.solve_tokens)
        self.prompts = config.wording()
        self.budget = config.budget()

    async def solve(self, problem: Problem, sample_index: int = 0) -> Attempt:
        trace = Trace(problem, sample_index, self.name, self.budget)
        [first] = await trace.call([Call(self.model, "generate", solve_messages(problem, self.prompts), self.solve_sampling)])
        if failed := trace.fail_on_call([first], "generation"):
            return failed
        proof = trace.candidate(first)
        streak = 0
        for r in range(1, self.max_rounds + 1):
            if proof.status != "ok" or not trace.allows(1):
                break  # nothing to check, or no budget left to check it
            messages = verify_messages(problem, proof.proof, self.prompts)
            [check] = await trace.call([Call(self.model, "verify", messages, self.verify_sampling, turn=r)])
            if failed := trace.fail_on_call([check], f"round {r} verification"):
                return failed
            verdict = read_verification(check.content)
            if verdict == 1.0:
                streak += 1
                if streak >= self.passes_needed:
                    break
                continue
            if verdict is None:
                continue
            streak = 0
            if not trace.allows(1):
                break
            messages = refine_messages(problem, proof.proof, [check.content], self.prompts)
            [fix] = await trace.call([Call(self.model, "refine", messages, self.refine_sampling, turn=r)])
            if failed := trace.fail_on_call([fix], f"round {r} correction"):
                return failed
            proof = trace.candidate(fix)
        return trace.finish(proof)
