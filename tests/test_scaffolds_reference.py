"""Scaffolds as the reference runs them, and every scaffold on answer benchmarks."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter

import pytest

from qednano.grading.answer import grade_answer
from qednano.llm.cache import call_key
from qednano.llm.model import Model
from qednano.llm.scripted import ScriptedBackend
from qednano.llm.types import Completion, Messages, Sampling
from qednano.problems.record import Problem
from qednano.prompts import shipped_text
from qednano.scaffolds.registry import build_scaffold, load_scaffold, load_scaffold_config
from qednano.scaffolds.rsa import draw_subsets

PROBLEM = Problem(id="p", statement="Prove STATEMENT-Q.")
SEED = 500


def marker(name: str) -> str:
    """The first line of a scaffold prompt without placeholders: tells which prompt a call got."""
    return next(line for line in shipped_text(name).splitlines() if line.strip() and "{" not in line)


PROOF_PROMPTS = ["solve", "rc_continue", "aggregate", "compare", "verify", "refine"]
ANSWER_PROMPTS = [f"{name}_answer" for name in PROOF_PROMPTS]
KINDS = PROOF_PROMPTS + ANSWER_PROMPTS + ["rc_summarize"]


def kind(messages: Messages) -> str:
    [found] = [k for k in KINDS if marker(k) in messages[-1]["content"]]
    return found


def model(reply) -> tuple[Model, ScriptedBackend]:
    backend = ScriptedBackend(reply)
    return Model("scripted", backend, defaults=Sampling(seed=SEED)), backend


# ---------------------------------------------------------------- the summarizer's own sampling


async def test_rc_summaries_get_their_own_budget_and_thinking_switch():
    m, backend = model(lambda msgs, s: "SUMMARY" if kind(msgs) == "rc_summarize" else "<think>r</think>PROOF")
    rc = build_scaffold("rc", {"turns": 2, "reasoning_tokens": 90, "summary_tokens": 20, "summary_thinking": False}, m)
    await rc.solve(PROBLEM)
    sent = {kind(msgs): s for msgs, s in backend.calls}
    assert (sent["rc_summarize"].max_tokens, sent["rc_summarize"].thinking) == (20, False)
    assert (sent["rc_continue"].max_tokens, sent["rc_continue"].thinking) == (90, None)


def test_an_unset_thinking_switch_keeps_the_cache_keys_of_earlier_runs():
    sampling = Sampling(temperature=0.5, max_tokens=10)
    before = {"identity": "i", "messages": [], "sample": 3, "sampling": sampling.model_dump(exclude={"n", "thinking"})}
    expected = hashlib.sha256(json.dumps(before, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    assert call_key("i", [], sampling, 3) == expected
    assert call_key("i", [], sampling.model_copy(update={"thinking": False}), 3) != expected


async def test_rc_reference_settings_start_from_the_continue_prompt():
    m, backend = model(lambda msgs, s: "SUMMARY" if kind(msgs) == "rc_summarize" else "<think>r</think>PROOF")
    rc = load_scaffold("rc-qed-nano", m)
    attempt = await rc.solve(PROBLEM)
    assert [kind(msgs) for msgs, _ in backend.calls] == ["rc_continue", "rc_summarize"] * 2 + ["rc_continue"]
    assert shipped_text("rc_no_summary").strip() in backend.calls[0][0][-1]["content"]
    assert attempt.status == "ok"
    sent = backend.calls[1][1]
    assert (sent.max_tokens, sent.thinking, backend.calls[0][1].max_tokens) == (2048, False, 49152)


# ---------------------------------------------------------------- RSA


@pytest.mark.parametrize(("population", "subset"), [(8, 3), (4, 2), (5, 5), (6, 1)])
def test_rsa_subsets_are_balanced_every_member_used_k_times(population, subset):
    for sample in range(6):
        for round_ in (1, 2, 3):
            subsets = draw_subsets(sample, round_, population, subset)
            assert len(subsets) == population and all(len(set(s)) == subset for s in subsets)
            uses = Counter(i for s in subsets for i in s)
            assert uses == {i: subset for i in range(population)}


@pytest.mark.parametrize(("setting", "winner"), [(None, "PROOF-B"), ("second", "PROOF-B"), ("first", "PROOF-A")])
async def test_rsa_unreadable_verdicts_go_to_the_second_proof_as_in_the_reference(setting, winner):
    proofs = iter(["PROOF-A", "PROOF-B"])

    def reply(msgs, s):
        return "I cannot decide." if kind(msgs) == "compare" else next(proofs)

    m, _ = model(reply)
    params = {"population": 2, "subset": 1, "rounds": 0} | ({"unreadable_winner": setting} if setting else {})
    rsa = build_scaffold("rsa", params, m)
    attempt = await rsa.solve(PROBLEM)
    assert attempt.proof == winner


# ---------------------------------------------------------------- DeepSeek-Math verify-refine


def test_the_deepseek_math_config_matches_the_reference_settings():
    name, params = load_scaffold_config("deepseek-math")
    assert name == "verify_refine"
    assert params == {
        "generator": "direct", "pool": 4, "verifications": 4, "rounds": 2, "refine_top": 4,
        "reports_per_refine": 2, "unreadable_verdict": "zero",
    }


def verdict_script(verdicts: dict[str, list[str]]):
    """Generation writes PROOF-<n>; verifications of PROOF-<n> answer from verdicts[PROOF-<n>] in turn."""
    count = Counter()
    made = iter(range(100))

    def reply(msgs: Messages, s: Sampling) -> str:
        k = kind(msgs)
        if k in ("solve", "refine"):
            return f"{'FIX' if k == 'refine' else 'PROOF'}-{next(made)}"
        proof = next(p for p in verdicts if p in msgs[-1]["content"])
        count[proof] += 1
        return f"report {count[proof]} on {proof}\n{verdicts[proof][count[proof] - 1]}"

    return reply


@pytest.mark.parametrize(("mode", "chosen"), [("zero", "PROOF-1"), ("skip", "PROOF-0")])
async def test_unreadable_verdicts_count_as_zero_in_the_reference_setting(mode, chosen):
    # PROOF-0: one pass and one unreadable verdict (0.5 when it counts as 0, 1.0 when skipped);
    # PROOF-1: 0.5 and 1 (0.75).
    reply = verdict_script({"PROOF-0": ["VERDICT: 1", "no verdict here"], "PROOF-1": ["VERDICT: 0.5", "VERDICT: 1"]})
    m, _ = model(reply)
    params = {"generator": "direct", "pool": 2, "verifications": 2, "rounds": 0, "refine_top": 1}
    vr = build_scaffold("verify_refine", params | {"unreadable_verdict": mode}, m)
    attempt = await vr.solve(PROBLEM)
    assert attempt.proof == chosen


async def test_the_reference_refines_the_best_proofs_each_from_its_two_lowest_verifications():
    reply = verdict_script({
        "PROOF-0": ["VERDICT: 1", "VERDICT: 0", "garbled", "VERDICT: 0.5"],
        "PROOF-1": ["VERDICT: 0"] * 4,
        "FIX-2": ["VERDICT: 1"] * 4,
        "FIX-3": ["VERDICT: 0"] * 4,
    })
    m, backend = model(reply)
    vr = build_scaffold("verify_refine", {"generator": "direct", "pool": 2, "verifications": 4, "rounds": 1,
                                          "refine_top": 2, "reports_per_refine": 2, "unreadable_verdict": "zero"}, m)
    attempt = await vr.solve(PROBLEM)
    refines = [msgs[-1]["content"] for msgs, _ in backend.calls if kind(msgs) == "refine"]
    assert len(refines) == 2
    best = next(r for r in refines if "PROOF-0" in r)
    # the two lowest of (1, 0, unreadable = 0, 0.5): reports 2 and 3, in order
    assert "report 2 on PROOF-0" in best and "report 3 on PROOF-0" in best
    assert "report 1 on PROOF-0" not in best and "report 4 on PROOF-0" not in best
    assert attempt.proof == "FIX-2"


# ---------------------------------------------------------------- answer mode


def answering(msgs: Messages, s: Sampling) -> str:
    """A model that answers 42 in every answer-mode prompt and refuses proof prompts."""
    k = kind(msgs)
    if k not in ANSWER_PROMPTS + ["rc_summarize"]:
        raise AssertionError(f"answer mode sent the proof prompt {k!r}")
    return {
        "verify_answer": "The answer checks out.\nVERDICT: 1" if s.seed % 2 else "Wrong.\nVERDICT: 0",
        "compare_answer": "WINNER: B",
        "rc_summarize": "I found 42.",
    }.get(k, f"<think>work</think>So the answer is \\boxed{{42}} (call {s.seed}).")


ANSWER_SETUPS = {
    "direct": {},
    "rc": {"turns": 2},
    "rsa": {"population": 3, "subset": 2, "rounds": 1},
    "verify_refine": {"generator": "rc", "pool": 2, "verifications": 2, "rounds": 1, "refine_top": 1},
    "self_check": {"max_rounds": 3},
    "best_of_n": {"n": 3, "finalists": 2},
}


@pytest.mark.parametrize("name", list(ANSWER_SETUPS))
async def test_every_scaffold_has_an_answer_mode_that_the_answer_checker_reads(name):
    m, backend = model(answering)
    scaffold = build_scaffold(name, {**ANSWER_SETUPS[name], "task": "answer"}, m)
    attempt = await scaffold.solve(Problem(id="a", statement="Find x.", short_answer="42"))
    assert attempt.status == "ok" and "\\boxed{42}" in attempt.proof
    assert {kind(msgs) for msgs, _ in backend.calls} & set(ANSWER_PROMPTS)
    grade = await grade_answer(Problem(id="a", statement="Find x.", short_answer="42"), attempt.proof, None)
    assert grade.status == "graded" and grade.score == 1


async def test_proof_mode_still_sends_the_proof_prompts():
    m, backend = model(lambda msgs, s: "WINNER: A" if kind(msgs) == "compare" else "<think>r</think>PROOF")
    await build_scaffold("rsa", {"population": 2, "subset": 2, "rounds": 1}, m).solve(PROBLEM)
    assert {kind(msgs) for msgs, _ in backend.calls} == {"solve", "aggregate", "compare"}


def test_answer_prompts_ask_for_a_box_and_speak_of_answers():
    for name in ANSWER_PROMPTS:
        text = re.sub(r"\{[a-z_]+\}", "", shipped_text(name))  # placeholder names aside
        assert "answer" in text.lower()
        assert "proof" not in text.lower(), name
    for name in ("solve_answer", "rc_continue_answer", "aggregate_answer", "refine_answer"):
        assert "\\boxed{{answer}}" in shipped_text(name)


async def test_a_failed_answer_verification_in_best_of_n_fails_the_attempt():
    def reply(msgs, s):
        if kind(msgs) == "verify_answer":
            return Completion.failure("scripted", "http_500", "down")
        return answering(msgs, s)

    m, _ = model(reply)
    attempt = await build_scaffold("best_of_n", {"n": 2, "task": "answer"}, m).solve(PROBLEM)
    assert attempt.status == "failed" and "answer verification" in attempt.error
