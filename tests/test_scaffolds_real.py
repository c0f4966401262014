"""Each scaffold once on the real embedded model (SmolLM2-135M), with tiny budgets.

SmolLM2 cannot prove anything; these check that the scaffolds run end to end on a real backend:
the expected steps, real token counts, and statuses that are ok or no_proof, never failed.
"""

from __future__ import annotations

import asyncio

import pytest

from qednano.problems.record import Problem
from qednano.scaffolds.registry import build_scaffold

pytest.importorskip("qednano.llm.embedded")

PROBLEM = Problem(id="even-sum", statement="Prove that the sum of two even integers is even.")
DIRECT = {"scaffold": "direct", "params": {"max_tokens": 48}}

CASES = {
    "rc": ({"turns": 2, "reasoning_tokens": 48, "summary_tokens": 32}, ["generate", "summarize", "generate"]),
    "rsa": (
        {"generator": DIRECT, "population": 2, "subset": 2, "rounds": 1, "aggregate_tokens": 48, "compare_tokens": 32},
        ["generate", "generate", "aggregate", "aggregate"],
    ),
    "verify_refine": (
        {"generator": DIRECT, "pool": 2, "verifications": 1, "rounds": 1, "refine_top": 1, "verify_tokens": 32, "refine_tokens": 48},
        ["generate", "generate", "verify", "verify"],
    ),
    "self_check": ({"max_rounds": 1, "solve_tokens": 48, "verify_tokens": 32, "refine_tokens": 48}, ["generate", "verify"]),
    "best_of_n": ({"generator": DIRECT, "n": 2, "score_tokens": 32, "compare_tokens": 32}, ["generate", "generate", "grade", "grade"]),
}


@pytest.fixture(scope="module")
def smollm2():
    from qednano.llm.registry import load_model

    model = load_model("smollm2")
    yield model
    asyncio.run(model.aclose())


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
async def test_scaffold_runs_on_the_embedded_model(name, smollm2):
    params, first_roles = CASES[name]
    attempt = await build_scaffold(name, params, smollm2).solve(PROBLEM, sample_index=0)

    assert attempt.status in ("ok", "no_proof"), attempt.error
    roles = [s.role for s in attempt.steps]
    assert roles[: len(first_roles)] == first_roles
    for step in attempt.steps:
        assert step.completion.ok, step.completion.error
        assert step.completion.usage.prompt_tokens > 0 and step.completion.usage.completion_tokens > 0
    assert attempt.usage.completion_tokens > 0
    if attempt.status == "ok":
        assert attempt.proof.strip()
