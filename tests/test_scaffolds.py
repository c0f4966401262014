"""The multi-call scaffolds, offline: what each call sees, when they stop, how they fail and resume."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from conftest import direct

from qednano.grading import proof_grader
from qednano.grading.record import Grade
from qednano.grading.untrusted import markers
from qednano.llm.cache import CallCache
from qednano.llm.model import Model
from qednano.llm.scripted import ScriptedBackend
from qednano.llm.types import Completion, Messages, Sampling, Usage
from qednano.problems.record import Problem
from qednano.prompts import load_prompt, shipped_text
from qednano.records.sample import SampleRecord
from qednano.reports.scaling import scaling_points, scaling_report, scaling_table
from qednano.scaffolds import direct as direct_module
from qednano.scaffolds.base import Attempt, Step
from qednano.scaffolds.budget import Budget, Trace, call_index
from qednano.scaffolds.config import Roles
from qednano.scaffolds.direct import Direct
from qednano.scaffolds.reasoning_cache import RCConfig, ReasoningCache
from qednano.scaffolds.registry import (
    SCAFFOLDS,
    ScaffoldConfigError,
    build_scaffold,
    load_scaffold,
    load_scaffold_config,
    scaffold_classes,
)
from qednano.scaffolds.rsa import RSA, RSAConfig, draw_subsets
from qednano.scaffolds.self_check import SelfCheck, SelfCheckConfig
from qednano.scaffolds.tournament import BestOfN, BestOfNConfig, knockout, parse_winner
from qednano.scaffolds.verify_refine import VerifyRefine, VerifyRefineConfig, read_verification
from qednano.viewer.traces import stages

PROBLEM = Problem(id="toy-1", statement="Prove that STATEMENT-XYZ holds for every n.")
NO_SUMMARY = shipped_text("rc_no_summary").strip()
SEED = 1000  # every test model samples with seed SEED + sample index, so replies can tell calls apart


# ---------------------------------------------------------------- scripted helpers


def marker(name: str) -> str:
    """A line of a prompt template without placeholders: tells which prompt a call got."""
    module = proof_grader if name == "grade_no_reference" else direct_module  # best-of-n self-scoring grades
    template = load_prompt(module.__file__, name)
    return next(line for line in template.splitlines() if line.strip() and "{" not in line)


KINDS = ["rc_continue", "rc_summarize", "aggregate", "compare", "verify", "refine", "grade_no_reference", "solve"]


def kind(messages: Messages) -> str:
    text = messages[-1]["content"]
    return next(k for k in KINDS if marker(k) in text)


def model(reply, name: str = "scripted") -> tuple[Model, ScriptedBackend]:
    backend = ScriptedBackend(reply, model=name)
    return Model(name, backend, defaults=Sampling(seed=SEED)), backend


def brain(messages: Messages, sampling: Sampling) -> str:
    """A deterministic stand-in for every role; replies carry the call's seed."""
    seed = sampling.seed
    return {
        "solve": f"<think>R-{seed}</think>PROOF-{seed}",
        "rc_continue": f"<think>R-{seed}</think>PROOF-{seed}",
        "rc_summarize": f"SUM-{seed}",
        "aggregate": f"AGG-{seed}",
        "compare": "The first is better.\nWINNER: A",
        "verify": f"issue list {seed}\nVERDICT: {[0, 0.5, 1][seed % 3]}",
        "refine": f"FIX-{seed}",
        "grade_no_reference": f"FINAL SCORE: {seed % 8}",
    }[kind(messages)]


def shown(messages: Messages, label: str = "") -> str:
    """The proof a prompt shows between its untrusted-proof markers (proof `label`)."""
    begin, end = markers(label)
    return messages[-1]["content"].split(begin + "\n")[1].split("\n" + end)[0]


def prompts_of(backend: ScriptedBackend, which: str) -> list[str]:
    return [m[-1]["content"] for m, _ in backend.calls if kind(m) == which]


class ScriptedGrader:
    """Grades a proof by a table of scores; each grade carries one call for cost accounting."""

    name = "scripted-grader"

    def __init__(self, score_of):
        self.score_of = score_of
        self.seen: list[tuple[str, int]] = []

    async def grade(self, problem: Problem, proof: str, sample_index: int = 0) -> Grade:
        self.seen.append((proof, sample_index))
        call = Completion(model="grader", content="ok", usage=Usage(prompt_tokens=5, completion_tokens=2))
        return Grade(status="graded", score=self.score_of(proof), calls=[call])


def number(text: str) -> int:
    return int(re.search(r"\d+", text).group())


# ---------------------------------------------------------------- call indices and budgets


def test_call_index_is_deterministic_distinct_and_fits_a_seed():
    keys = [(s, role, t, m) for s in range(3) for role in ("generate", "verify") for t in range(3) for m in range(5)]
    indices = [call_index(*k) for k in keys]
    assert indices == [call_index(*k) for k in keys]
    assert len(set(indices)) == len(keys)
    assert all(0 <= i < 2**31 for i in indices)


def test_budget_rejects_nonpositive_caps():
    with pytest.raises(ValueError, match="max_calls"):
        Budget(max_calls=0)


def test_trace_allows_counts_calls_and_tokens_and_remembers_the_stop():
    trace = Trace(PROBLEM, 0, "x", Budget(max_calls=3, max_total_tokens=100))
    done = Completion(model="m", content="p", usage=Usage(prompt_tokens=40, completion_tokens=20))
    trace.steps.append(Step(role="generate", messages=[], completion=done))
    assert trace.stopped is None and trace.allows(2) and not trace.allows(3)
    assert "max_calls=3" in trace.stopped
    assert trace.allows(1) and "max_calls=3" in trace.stopped  # a smaller stage still fits; the reason stays
    trace = Trace(PROBLEM, 0, "x", Budget(max_total_tokens=100))
    trace.steps += [Step(role="generate", messages=[], completion=done)] * 2
    assert not trace.allows(1) and "max_total_tokens=100" in trace.stopped


# ---------------------------------------------------------------- reasoning cache


async def test_rc_turns_see_only_problem_and_latest_summary():
    m, backend = model(brain)
    rc = ReasoningCache(RCConfig(turns=3, reasoning_tokens=77, summary_tokens=11), Roles(m))
    attempt = await rc.solve(PROBLEM, sample_index=5)

    assert attempt.status == "ok"
    assert [(s.role, s.turn) for s in attempt.steps] == [
        ("generate", 1), ("summarize", 1), ("generate", 2), ("summarize", 2), ("generate", 3),
    ]
    gen = [s for s in attempt.steps if s.role == "generate"]
    summ = [s for s in attempt.steps if s.role == "summarize"]
    reasoning = [s.completion.reasoning for s in gen]
    proofs = [s.completion.content for s in gen]
    summaries = [s.completion.content for s in summ]
    assert attempt.proof == proofs[2]

    turn_prompts = [s.messages[-1]["content"] for s in gen]
    assert kind(gen[0].messages) == "solve" and PROBLEM.statement in turn_prompts[0]
    for t in (1, 2):  # turn t+1 (0-based t) sees summary t and nothing earlier
        prompt = turn_prompts[t]
        assert kind(gen[t].messages) == "rc_continue"
        assert PROBLEM.statement in prompt and summaries[t - 1] in prompt
        for earlier in reasoning[:t] + proofs[:t] + summaries[: t - 1]:
            assert earlier not in prompt

    first, second = (s.messages[-1]["content"] for s in summ)
    assert PROBLEM.statement in first and NO_SUMMARY in first and reasoning[0] in first
    assert PROBLEM.statement in second and summaries[0] in second and reasoning[1] in second
    assert reasoning[0] not in second and proofs[1] not in second  # reasoning, not the turn's answer

    caps = [(kind(msgs), s.max_tokens) for msgs, s in backend.calls]
    assert {c for k, c in caps if k != "rc_summarize"} == {77} and {c for k, c in caps if k == "rc_summarize"} == {11}
    assert len({s.completion.sample_index for s in attempt.steps}) == 5


async def test_rc_summarizes_the_content_of_a_model_that_does_not_think():
    def plain(messages, sampling):
        return f"SUM-{sampling.seed}" if kind(messages) == "rc_summarize" else f"WORK-{sampling.seed} so the claim holds"

    m, _ = model(plain)
    attempt = await ReasoningCache(RCConfig(turns=2), Roles(m)).solve(PROBLEM)
    turn1 = attempt.steps[0].completion.content
    assert turn1 in attempt.steps[1].messages[-1]["content"]


async def test_rc_uses_its_own_summarizer_model():
    m, backend = model(brain, "prover")
    s, summ_backend = model(brain, "summarizer")
    await ReasoningCache(RCConfig(turns=2), Roles(m, summarizer=s)).solve(PROBLEM)
    assert [kind(c[0]) for c in backend.calls] == ["solve", "rc_continue"]
    assert [kind(c[0]) for c in summ_backend.calls] == ["rc_summarize"]


async def test_rc_failed_summary_fails_the_attempt_and_keeps_the_steps():
    def broken(messages, sampling):
        if kind(messages) == "rc_summarize":
            return Completion.failure("scripted", "http_500", "server exploded")
        return brain(messages, sampling)

    m, _ = model(broken)
    attempt = await ReasoningCache(RCConfig(turns=3), Roles(m)).solve(PROBLEM)
    assert attempt.status == "failed" and attempt.proof == ""
    assert "turn 1 summary" in attempt.error and "server exploded" in attempt.error
    assert [s.role for s in attempt.steps] == ["generate", "summarize"]


async def test_rc_empty_summary_keeps_the_last_summary_and_says_so_on_the_trace():
    # Summaries: turn 1 writes one, turn 2's summarizer thinks away its budget and writes nothing.
    def reply(messages, sampling):
        if kind(messages) != "rc_summarize":
            return brain(messages, sampling)
        if NO_SUMMARY in messages[-1]["content"]:
            return "SUM-first"
        return Completion(model="scripted", reasoning="thinking...", reasoning_closed=False, finish_reason="length")

    m, _ = model(reply)
    attempt = await ReasoningCache(RCConfig(turns=3), Roles(m)).solve(PROBLEM)
    assert attempt.status == "ok" and [s.role for s in attempt.steps].count("generate") == 3
    turn3 = attempt.steps[4].messages[-1]["content"]
    assert "SUM-first" in turn3  # the chain carried on from the last summary
    empty = attempt.steps[3]
    assert empty.role == "summarize" and "empty summary" in empty.note and "finish_reason length" in empty.note
    assert attempt.steps[1].note is None
    # the viewer shows the note in place of "handed on"
    notes = [call.note for stage in stages(attempt) for call in stage.calls if call.step.role == "summarize"]
    assert notes == ["summary handed on to turn 2", empty.note]


async def test_rc_unclosed_last_turn_is_no_proof():
    m, _ = model(lambda msgs, s: f"SUM-{s.seed}" if kind(msgs) == "rc_summarize" else "<think>still going")
    attempt = await ReasoningCache(RCConfig(turns=2), Roles(m)).solve(PROBLEM)
    assert attempt.status == "no_proof" and len(attempt.steps) == 3
    assert "still going" in attempt.steps[1].messages[-1]["content"]  # partial reasoning was summarized


async def test_rc_call_budget_stops_early_with_the_last_turn_answer():
    m, _ = model(brain)
    attempt = await ReasoningCache(RCConfig(turns=4, max_calls=4), Roles(m)).solve(PROBLEM)
    # turn 1, summary, turn 2 = 3 calls; another summary + turn would make 5 > 4
    assert [s.role for s in attempt.steps] == ["generate", "summarize", "generate"]
    assert attempt.status == "ok" and attempt.stopped_by is not None
    assert attempt.proof == attempt.steps[2].completion.content


async def test_rc_token_budget_stops_early():
    m, _ = model(brain)
    attempt = await ReasoningCache(RCConfig(turns=4, max_total_tokens=1), Roles(m)).solve(PROBLEM)
    assert len(attempt.steps) == 1 and attempt.status == "ok" and attempt.stopped_by is not None


async def test_rc_within_budget_is_not_marked():
    m, _ = model(brain)
    attempt = await ReasoningCache(RCConfig(turns=2, max_calls=3), Roles(m)).solve(PROBLEM)
    assert len(attempt.steps) == 3 and attempt.finish_reason == "stop"


# ---------------------------------------------------------------- tournament


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("A is better.\nWINNER: B", "B"),
        ("**Winner:** a", "A"),
        ("WINNER: A\nOn reflection...\nWINNER: B", "B"),  # the last verdict counts
        ("Winner: proof B.", "B"),
        ("WINNER: C", None),
        ("I think A wins", None),
        ("WINNER: A or B", None),
        ("", None),
    ],
)
def test_parse_winner(content, expected):
    assert parse_winner(content) == expected


def prefers_larger(messages, sampling):
    a, b = number(shown(messages, "A")), number(shown(messages, "B"))
    return f"comparing\nWINNER: {'A' if a > b else 'B'}"


def candidates(*proofs: str) -> list[Attempt]:
    return [
        Attempt(problem_id=PROBLEM.id, sample_index=0, scaffold="x", proof=p, status="ok" if p else "no_proof")
        for p in proofs
    ]


async def test_knockout_picks_the_judges_favourite_with_n_minus_1_matches():
    judge, backend = model(prefers_larger)
    trace = Trace(PROBLEM, 0, "t")
    pool = candidates("P-3", "P-9", "P-1", "P-7", "P-4")
    winner = await knockout(trace, judge, pool)
    assert winner.proof == "P-9"
    assert len(backend.calls) == 4 and {s.role for s in trace.steps} == {"compare"}
    assert [s.turn for s in trace.steps] == [1, 1, 2, 3]


async def test_knockout_unparseable_verdict_and_missing_proofs_go_to_the_better_seed():
    judge, backend = model(lambda m, s: "no idea")
    trace = Trace(PROBLEM, 0, "t")
    winner = await knockout(trace, judge, candidates("P-1", "P-2", "", "P-3"))
    assert winner.proof == "P-1"
    assert len(backend.calls) == 2  # (P-1, P-2) and the final; P-3 beat the empty one unplayed


async def test_knockout_out_of_budget_returns_the_best_seed_with_a_proof():
    judge, backend = model(prefers_larger)
    trace = Trace(PROBLEM, 0, "t", Budget(max_calls=1))
    trace.steps.append(Step(role="generate", messages=[], completion=Completion(model="m", content="x")))
    winner = await knockout(trace, judge, candidates("", "P-2", "P-3", "P-4"))
    assert winner.proof == "P-2" and backend.calls == [] and "max_calls=1" in trace.stopped


async def test_knockout_failed_judge_call_fails():
    judge, _ = model(lambda m, s: Completion.failure("j", "timeout", "judge timed out"))
    result = await knockout(Trace(PROBLEM, 0, "t"), judge, candidates("P-1", "P-2"))
    assert result.status == "failed" and "judge timed out" in result.error


async def test_best_of_n_self_scores_then_tournament_among_the_top():
    def judge_reply(messages, sampling):
        if kind(messages) == "grade_no_reference":
            return f"Checked.\nFINAL SCORE: {number(shown(messages)) % 8}"
        a, b = number(shown(messages, "A")), number(shown(messages, "B"))
        return f"WINNER: {'A' if a < b else 'B'}"  # this judge likes the smaller number

    gen_model, _ = model(lambda m, s: f"PROOF-{s.seed}", "prover")
    judge, _ = model(judge_reply, "judge")
    attempt = await BestOfN(BestOfNConfig(n=5, finalists=2), Roles(gen_model, judge=judge), direct(gen_model)).solve(PROBLEM, sample_index=3)

    proofs = [s.completion.content for s in attempt.steps if s.role == "generate"]
    top_two = sorted(proofs, key=lambda p: (-(number(p) % 8), proofs.index(p)))[:2]
    [match] = [s for s in attempt.steps if s.role == "compare"]
    assert all(p in match.messages[-1]["content"] for p in top_two)
    assert attempt.proof == min(top_two, key=number)  # the judge's pick, not the best score
    assert [s.role for s in attempt.steps].count("grade") == 5


async def test_best_of_n_grader_scoring_records_grader_calls():
    gen_model, _ = model(lambda m, s: f"PROOF-{s.seed}")
    judge, _ = model(prefers_larger)
    grader = ScriptedGrader(lambda proof: 7.0 if number(proof) % 2 else 1.0)
    attempt = await BestOfN(BestOfNConfig(n=4, scoring="grader", finalists=1), Roles(gen_model, judge=judge, grader=grader), direct(gen_model)).solve(PROBLEM)
    assert len(grader.seen) == 4 and len({i for _, i in grader.seen}) == 4
    assert [s.role for s in attempt.steps].count("grade") == 4
    proofs = [s.completion.content for s in attempt.steps if s.role == "generate"]
    assert attempt.proof == next((p for p in proofs if number(p) % 2), proofs[0])  # best grade, first on ties
    assert "compare" not in {s.role for s in attempt.steps}  # one finalist: nothing to play


# ---------------------------------------------------------------- RSA


async def test_rsa_aggregations_each_see_k_distinct_members_of_the_last_population():
    m, backend = model(brain)
    judge, _ = model(prefers_larger, "judge")
    rsa = RSA(RSAConfig(population=4, subset=3, rounds=2), Roles(m, judge=judge), direct(m))
    attempt = await rsa.solve(PROBLEM, sample_index=2)
    assert attempt.status == "ok"

    population = {s.completion.content for s in attempt.steps if s.role == "generate"}
    assert len(population) == 4
    for r in (1, 2):
        steps = [s for s in attempt.steps if s.role == "aggregate" and s.turn == r]
        assert len(steps) == 4
        for step in steps:
            shown = re.findall(r"(?:PROOF|AGG)-\d+", step.messages[-1]["content"])
            assert len(shown) == 3 and len(set(shown)) == 3 and set(shown) <= population
        population = {s.completion.content for s in steps}
    assert attempt.proof == max(population, key=number)  # the judge's favourite of the last round
    assert len({s.completion.sample_index for s in attempt.steps}) == len(attempt.steps)


def test_rsa_subsets_are_distinct_seeded_and_vary():
    subsets = draw_subsets(7, 1, population=6, subset=3)
    assert subsets == draw_subsets(7, 1, population=6, subset=3)
    assert all(len(set(s)) == 3 for s in subsets)
    assert len({tuple(s) for s in subsets}) > 1
    assert subsets != draw_subsets(8, 1, population=6, subset=3)


async def test_rsa_grader_selection_picks_the_highest_grade():
    m, _ = model(brain)
    grader = ScriptedGrader(lambda proof: float(number(proof) % 5))
    attempt = await RSA(RSAConfig(population=3, subset=2, rounds=1, select="grader"), Roles(m, grader=grader), direct(m)).solve(PROBLEM)
    last = [s.completion.content for s in attempt.steps if s.role == "aggregate"]
    assert attempt.proof == max(last, key=lambda p: (number(p) % 5, -last.index(p)))
    assert sorted(p for p, _ in grader.seen) == sorted(last)


async def test_rsa_grader_selection_without_budget_to_grade_returns_the_first_member():
    m, _ = model(brain)
    grader = ScriptedGrader(lambda proof: float(number(proof) % 5))
    rsa = RSA(RSAConfig(population=2, subset=2, rounds=1, select="grader", max_calls=4), Roles(m, grader=grader), direct(m))
    attempt = await rsa.solve(PROBLEM)
    assert [s.role for s in attempt.steps] == ["generate"] * 2 + ["aggregate"] * 2
    assert grader.seen == [] and "max_calls=4" in attempt.stopped_by
    assert attempt.proof == attempt.steps[2].completion.content


async def test_rsa_generation_failure_fails_the_attempt():
    def reply(messages, sampling):
        if kind(messages) == "solve" and sampling.seed % 2:
            return Completion.failure("scripted", "http_400", "bad request")
        return f"PROOF-{sampling.seed}"

    seeds = [member_seed(0, i) for i in range(3)]
    assert any(s % 2 for s in seeds)  # the script does hit a failure
    m, _ = model(reply)
    attempt = await RSA(RSAConfig(population=3, subset=2, rounds=1), Roles(m), direct(m)).solve(PROBLEM)
    assert attempt.status == "failed" and "generation" in attempt.error and "bad request" in attempt.error
    assert "aggregate" not in {s.role for s in attempt.steps}


async def test_rsa_budget_skips_rounds_and_cuts_the_tournament_short():
    m, _ = model(brain)
    judge, _ = model(prefers_larger, "judge")
    rsa = RSA(RSAConfig(population=4, subset=2, rounds=3, max_calls=6), Roles(m, judge=judge), direct(m))
    attempt = await rsa.solve(PROBLEM)
    # 4 proofs; a round (4 more) does not fit; the first bracket (2 matches) does, the final not
    assert [s.role for s in attempt.steps] == ["generate"] * 4 + ["compare"] * 2
    proofs = [s.completion.content for s in attempt.steps if s.role == "generate"]
    assert attempt.proof == max(proofs[:2], key=number)  # the better seed of the two finalists
    assert attempt.status == "ok" and attempt.stopped_by is not None


# ---------------------------------------------------------------- verify-refine


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("no issues\nVERDICT: 1", 1.0),
        ("minor slip\nVERDICT: 0.5", 0.5),
        ("**Verdict:** 0", 0.0),
        ("VERDICT: 1\nwait, step 3 is wrong\nVERDICT: 0", 0.0),  # the last verdict counts
        ("VERDICT: 1/2", 0.5),
        ("VERDICT: 0.7", None),
        ("VERDICT: -1", None),
        ("VERDICT: 1 (almost)", None),
        ("The verdict is 1", None),
        ("", None),
    ],
)
def test_read_verification(content, expected):
    assert read_verification(content) == expected


def verify_refine_script(strong_seed: int, refined_passes: bool):
    """Proof PROOF-<strong_seed> gets verdicts 1 then 0.5, other first-pool proofs 0.5 then 0;
    refined proofs get all 1 (or all 0.5). Each report carries its verdict as a tag."""
    seen: Counter[str] = Counter()

    def reply(messages, sampling):
        k = kind(messages)
        if k == "solve":
            return f"PROOF-{sampling.seed}"
        if k == "refine":
            return f"FIXED-{sampling.seed}"
        proof = shown(messages)
        nth = seen[proof]
        seen[proof] += 1
        if proof.startswith("FIXED"):
            verdict = "1" if refined_passes else "0.5"
        elif proof == f"PROOF-{strong_seed}":
            verdict = ["1", "0.5"][nth]
        else:
            verdict = ["0.5", "0"][nth]
        return f"REPORT-verdict-{verdict}-of-{proof}\nVERDICT: {verdict}"

    return reply


def member_seed(outer_index: int, member: int) -> int:
    """The seed Direct's call gets as member `member` of a nested generation stage."""
    return SEED + call_index(outer_index, "generate", 0, member)


async def test_verify_refine_refines_the_best_from_its_lowest_verification_and_stops_on_all_pass():
    strong = member_seed(0, 1)
    m, _ = model(verify_refine_script(strong, refined_passes=True))
    vr = VerifyRefine(VerifyRefineConfig(pool=3, verifications=2, rounds=3, refine_top=1), Roles(m), direct(m))
    attempt = await vr.solve(PROBLEM)

    roles = [(s.role, s.turn) for s in attempt.steps]
    assert roles == [("generate", 0)] * 3 + [("verify", 0)] * 6 + [("refine", 1)] + [("verify", 1)] * 2
    [refine] = [s for s in attempt.steps if s.role == "refine"]
    prompt = refine.messages[-1]["content"]
    assert f"PROOF-{strong}" in prompt
    assert f"REPORT-verdict-0.5-of-PROOF-{strong}" in prompt  # the lowest of (1, 0.5)
    assert f"REPORT-verdict-1-of-PROOF-{strong}" not in prompt
    assert attempt.proof == refine.completion.content and attempt.status == "ok"


async def test_verify_refine_returns_the_best_seen_when_no_proof_passes():
    strong = member_seed(0, 2)
    m, _ = model(verify_refine_script(strong, refined_passes=False))
    attempt = await VerifyRefine(VerifyRefineConfig(pool=3, verifications=2, rounds=1, refine_top=2), Roles(m), direct(m)).solve(PROBLEM)
    assert [s.role for s in attempt.steps].count("refine") == 2
    assert attempt.proof == f"PROOF-{strong}"  # mean 0.75 beats the refinements' 0.5


async def test_verify_refine_all_pass_in_first_pool_makes_no_refinement():
    m, _ = model(lambda msgs, s: f"PROOF-{s.seed}" if kind(msgs) == "solve" else "fine\nVERDICT: 1")
    attempt = await VerifyRefine(VerifyRefineConfig(pool=2, verifications=3, rounds=2, refine_top=1), Roles(m), direct(m)).solve(PROBLEM)
    assert [s.role for s in attempt.steps] == ["generate"] * 2 + ["verify"] * 6
    assert attempt.proof == attempt.steps[0].completion.content


async def test_verify_refine_unparseable_verdicts_are_recorded_not_counted():
    def reply(messages, sampling):
        k = kind(messages)
        if k == "solve":
            return f"PROOF-{sampling.seed}"
        if k == "refine":
            return f"FIXED-{sampling.seed}"
        return "I am not sure." if "PROOF" in shown(messages) else "VERDICT: 0"

    m, _ = model(reply)
    attempt = await VerifyRefine(VerifyRefineConfig(pool=1, verifications=2, rounds=1, refine_top=1), Roles(m), direct(m)).solve(PROBLEM)
    assert [s.role for s in attempt.steps] == ["generate", "verify", "verify", "refine", "verify", "verify"]
    # the original has no readable verdict (ranks last); the refinement scored 0 but was read
    assert attempt.proof.startswith("FIXED")


async def test_verify_refine_over_reasoning_cache():
    m, backend = model(brain)
    vr = VerifyRefine(VerifyRefineConfig(pool=2, verifications=2, rounds=1, refine_top=1), Roles(m), ReasoningCache(RCConfig(turns=2), Roles(m)))
    attempt = await vr.solve(PROBLEM, sample_index=1)
    roles = [s.role for s in attempt.steps]
    assert roles[:6] == ["generate", "summarize", "generate"] * 2 and "verify" in roles
    last_turns = [s.completion.content for s in attempt.steps if s.role == "generate" and s.turn == 2]
    verified = {shown(s.messages) for s in attempt.steps if s.role == "verify" and s.turn == 0}
    assert verified == set(last_turns)  # the verifier sees each RC attempt's final proof
    assert len({s.completion.sample_index for s in attempt.steps}) == len(attempt.steps) == len(backend.calls)


async def test_verify_refine_verifier_failure_fails_with_steps_kept():
    m, _ = model(lambda msgs, s: f"PROOF-{s.seed}" if kind(msgs) == "solve" else Completion.failure("v", "timeout", "slow"))
    attempt = await VerifyRefine(VerifyRefineConfig(pool=2, verifications=1, rounds=1, refine_top=1), Roles(m), direct(m)).solve(PROBLEM)
    assert attempt.status == "failed" and "verification" in attempt.error
    assert [s.role for s in attempt.steps] == ["generate", "generate", "verify", "verify"]


# ---------------------------------------------------------------- self-check


def self_check_script(messages, sampling):
    k = kind(messages)
    if k == "solve":
        return "DRAFT proof"
    if k == "refine":
        return "CLEAN proof"
    proof = shown(messages)
    return "all good\nVERDICT: 1" if "CLEAN" in proof else "ISSUE-STEP-3 is unjustified\nVERDICT: 0"


async def test_self_check_corrects_from_the_report_and_stops_after_consecutive_passes():
    m, _ = model(self_check_script)
    attempt = await SelfCheck(SelfCheckConfig(max_rounds=6, passes_needed=2), Roles(m)).solve(PROBLEM)
    assert [s.role for s in attempt.steps] == ["generate", "verify", "refine", "verify", "verify"]
    refine = attempt.steps[2].messages[-1]["content"]
    assert "ISSUE-STEP-3" in refine and "DRAFT proof" in refine
    assert attempt.proof == "CLEAN proof"


async def test_self_check_stops_at_the_round_limit():
    m, _ = model(lambda msgs, s: "DRAFT" if kind(msgs) in ("solve", "refine") else "broken\nVERDICT: 0.5")
    attempt = await SelfCheck(SelfCheckConfig(max_rounds=2), Roles(m)).solve(PROBLEM)
    assert [s.role for s in attempt.steps] == ["generate", "verify", "refine", "verify", "refine"]


async def test_self_check_unreadable_verdict_neither_passes_nor_resets():
    verdicts = iter(["VERDICT: 1", "hmm", "VERDICT: 1", "VERDICT: 1"])
    m, _ = model(lambda msgs, s: "DRAFT" if kind(msgs) == "solve" else next(verdicts))
    attempt = await SelfCheck(SelfCheckConfig(max_rounds=4, passes_needed=2), Roles(m)).solve(PROBLEM)
    assert [s.role for s in attempt.steps] == ["generate", "verify", "verify", "verify"]


async def test_self_check_budget():
    m, _ = model(self_check_script)
    attempt = await SelfCheck(SelfCheckConfig(max_rounds=6, max_calls=2), Roles(m)).solve(PROBLEM)
    assert [s.role for s in attempt.steps] == ["generate", "verify"]
    assert attempt.proof == "DRAFT proof" and attempt.stopped_by is not None


# ---------------------------------------------------------------- every scaffold: indices and resume

TINY = {
    "direct": {},
    "rc": {"turns": 3},
    "rsa": {"population": 3, "subset": 2, "rounds": 2, "generator": {"scaffold": "rc", "params": {"turns": 2}}},
    "verify_refine": {"pool": 2, "verifications": 2, "rounds": 2, "refine_top": 1, "generator": "direct"},
    "self_check": {"max_rounds": 3},
    "best_of_n": {"n": 3, "finalists": 2},
}


@pytest.mark.parametrize("name", sorted(TINY))
async def test_every_call_has_its_own_sample_index(name):
    m, backend = model(brain)
    attempt = await build_scaffold(name, TINY[name], m).solve(PROBLEM, sample_index=4)
    indices = [s.completion.sample_index for s in attempt.steps]
    assert len(indices) == len(backend.calls) and len(set(indices)) == len(indices)
    assert attempt.status == "ok" and attempt.scaffold == name


@pytest.mark.parametrize("name", sorted(TINY))
async def test_rerun_with_the_cache_makes_no_new_calls(name, tmp_path: Path):
    first_model, first_backend = model(brain)
    first_model.cache = CallCache(tmp_path / "calls.sqlite")
    first = await build_scaffold(name, TINY[name], first_model).solve(PROBLEM, sample_index=2)
    assert first_backend.calls

    again_model, again_backend = model(brain)
    again_model.cache = CallCache(tmp_path / "calls.sqlite")
    again = await build_scaffold(name, TINY[name], again_model).solve(PROBLEM, sample_index=2)
    assert again_backend.calls == []
    assert again.proof == first.proof
    assert [s.messages for s in again.steps] == [s.messages for s in first.steps]
    assert all(s.completion.cached for s in again.steps)


# ---------------------------------------------------------------- registry


def test_registry_builds_nested_scaffolds_from_the_shipped_configs():
    m, _ = model(brain)
    vr = load_scaffold("verify_refine", m)
    assert isinstance(vr, VerifyRefine) and isinstance(vr.generator, ReasoningCache)
    assert vr.generator.turns == 4
    tiny = load_scaffold("rc-tiny", m)
    assert isinstance(tiny, ReasoningCache) and tiny.budget == Budget(max_calls=4)
    for name in ("rc", "rsa", "self_check", "best_of_n", "direct"):
        assert type(load_scaffold(name, m)).name == load_scaffold_config(name)[0]


def test_registry_direct_takes_the_answer_task_and_a_token_cap():
    m, _ = model(brain)
    d = build_scaffold("direct", {"task": "answer", "max_tokens": 9}, m)
    assert isinstance(d, Direct) and d.prompts.name("solve") == "solve_answer" and d.sampling.max_tokens == 9


def test_registry_passes_role_models_down_to_nested_generators():
    m, _ = model(brain, "prover")
    s, _ = model(brain, "summarizer")
    v, _ = model(brain, "verifier")
    vr = build_scaffold("verify_refine", {"generator": "rc"}, m, summarizer=s, verifier=v)
    assert vr.verifier is v and vr.refiner is m and vr.generator.summarizer is s and vr.generator.model is m


@pytest.mark.parametrize(
    ("name", "params", "models", "message"),
    [
        ("rc", {"turn": 3}, {}, "scaffold 'rc': unknown parameter 'turn'"),
        ("rc", {"turns": 0}, {}, "scaffold 'rc': parameter 'turns'"),
        ("rsa", {"subset": 9}, {}, "subset must be between"),
        ("rsa", {"select": "grader"}, {}, "pass grader="),
        ("rsa", {"generator": {"scaffold": "rc", "params": {"tunrs": 2}}}, {}, "generator of scaffold 'rsa': scaffold 'rc': unknown parameter 'tunrs'"),
        ("rsa", {"generator": "no-such-thing"}, {}, "unknown scaffold or config 'no-such-thing'"),
        ("magic", {}, {}, "unknown scaffold 'magic'"),
        ("rc", {}, {"verfier": None}, "unknown model role 'verfier'"),
    ],
)
def test_registry_errors_name_the_scaffold_and_key(name, params, models, message):
    m, _ = model(brain)
    with pytest.raises(ScaffoldConfigError, match=re.escape(message)):
        build_scaffold(name, params, m, **models)


def test_each_scaffold_is_built_from_its_config_with_help_on_every_field():
    for name in SCAFFOLDS:
        config_class, scaffold_class = scaffold_classes(name)
        assert scaffold_class.name == name
        missing = [field for field, info in config_class.model_fields.items() if not info.description]
        assert not missing, f"{config_class.__name__} fields without help text: {missing}"
    m, _ = model(brain)
    rc = build_scaffold("rc", {"turns": 3, "max_calls": 9}, m)
    assert rc.config == RCConfig(turns=3, max_calls=9) and rc.budget == Budget(max_calls=9)


def test_overrides_are_checked_with_the_file_they_override():
    assert load_scaffold_config("rc-tiny", {"turns": 3}) == (
        "rc", {"turns": 3, "reasoning_tokens": 64, "summary_tokens": 32, "max_calls": 4}
    )
    with pytest.raises(ScaffoldConfigError, match=r"rc-tiny\.yaml with overrides turns=0: scaffold 'rc': parameter 'turns'"):
        load_scaffold_config("rc-tiny", {"turns": 0})
    # A rule between fields, checked once in the config: rsa.yaml has population 8.
    with pytest.raises(ScaffoldConfigError, match=r"rsa\.yaml with overrides subset=9: scaffold 'rsa': parameters: subset must"):
        load_scaffold_config("rsa", {"subset": 9})


def test_config_file_errors_name_the_file(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("scaffold: rc\nparams: {turns: 2, reasoning: 5}\n")
    with pytest.raises(ScaffoldConfigError, match=r"bad\.yaml: scaffold 'rc': unknown parameter 'reasoning'"):
        load_scaffold_config(str(bad))
    bad.write_text("scafold: rc\n")
    with pytest.raises(ScaffoldConfigError, match=r"bad\.yaml: unknown field 'scafold'"):
        load_scaffold_config(str(bad))
    assert load_scaffold_config("self_check")[0] == "self_check"
    assert load_scaffold_config("direct") == ("direct", {})


# ---------------------------------------------------------------- scaling report


def record(problem: str, index: int, tokens: int, score: float | None, status: str = "ok") -> SampleRecord:
    done = Completion(model="m", content="p", usage=Usage(prompt_tokens=tokens // 2, completion_tokens=tokens - tokens // 2), cost_usd=tokens / 1000)
    attempt = Attempt(
        problem_id=problem, sample_index=index, scaffold="rc", proof="p" if status == "ok" else "", status=status,
        steps=[Step(role="generate", messages=[], completion=done)],
    )
    grade = None if status == "failed" else Grade(status="graded" if score is not None else "ungraded", score=score)
    return SampleRecord(problem_id=problem, sample_index=index, attempt=attempt, grade=grade)


def test_scaling_table_averages_per_problem_then_over_problems(tmp_path: Path):
    one_turn = [record("p1", 0, 100, 7.0), record("p1", 1, 300, 3.0), record("p2", 0, 50, 0.0), record("p2", 1, 10, None, "failed")]
    two_turns = [record("p1", 0, 1000, 7.0), record("p2", 0, 2000, 7.0), record("p2", 1, 4000, None)]
    points = scaling_points([("rc T=1", one_turn), ("rc T=2", two_turns)])
    assert points[0].mean_score == pytest.approx((5.0 + 0.0) / 2)
    assert points[0].mean_tokens == pytest.approx((200 + 30) / 2)
    assert points[0].mean_cost_usd == pytest.approx((0.2 + 0.03) / 2)
    assert (points[0].samples, points[0].uncounted, points[0].problems) == (4, 1, 2)
    assert points[1].mean_score == pytest.approx(7.0) and points[1].mean_tokens == pytest.approx((1000 + 3000) / 2)

    table = scaling_table(points)
    assert "| rc T=1 | 2 | 4 | 1 | 2.50 | 115 | 0.1150 |" in table
    assert "| rc T=2 | 2 | 3 | 1 | 7.00 | 2,000 | 2.0000 |" in table

    md, png = scaling_report([("rc T=1", one_turn), ("rc T=2", two_turns)], tmp_path / "report")
    assert md.read_text() == table
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000


def test_scaling_rejects_duplicate_labels():
    with pytest.raises(ValueError, match="distinct labels"):
        scaling_points([("rc", []), ("rc", [])])


def test_scaling_setting_without_scores_shows_na():
    [point] = scaling_points([("direct", [record("p1", 0, 10, None, "failed")])])
    assert point.mean_score is None and "| n/a |" in scaling_table([point])
