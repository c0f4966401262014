"""Reasoning-cache RL states: the right summary in each state, no earlier reasoning, a real step."""

from __future__ import annotations

import random
import re

import pytest

from qednano.llm.model import Model
from qednano.llm.scripted import ScriptedBackend
from qednano.llm.types import Completion
from qednano.problems.record import Problem
from qednano.scaffolds.reasoning_cache import turn_messages
from qednano.train.rc import (
    ProblemStates,
    ReasoningCacheConfig,
    StatePool,
    draw_states,
    log_reward_by_state,
    model_policy,
    roll_out,
)

PROBLEMS = [Problem(id=f"p{i}", statement=f"Prove statement number {i}.") for i in range(3)]
ROWS = [{"problem_id": p.id, "prompt": [], "answer": str(i)} for i, p in enumerate(PROBLEMS)]


def policy_reply(messages, sampling) -> str:
    """Reasons with a marker naming the problem and the turn; the turn is one past the summary's."""
    text = messages[-1]["content"]
    problem = re.search(r"statement number (\d+)", text).group(1)
    seen = re.search(r"SUMMARY\[p(\d+) t(\d+)\]", text)
    turn = int(seen.group(2)) + 1 if seen else 1
    return f"<think>REASONING[p{problem} t{turn}] a long line of work</think>PROOF[p{problem} t{turn}]"


def summarizer_reply(messages, sampling) -> str:
    """Summarizes the one reasoning it was shown (so a wrong input shows up in the summary)."""
    shown = re.findall(r"REASONING\[(p\d+ t\d+)\]", messages[-1]["content"])
    assert len(shown) == 1, shown
    return f"SUMMARY[{shown[0]}]"


def scripted(reply, name: str) -> Model:
    return Model(name, ScriptedBackend(reply, model=name))


async def test_states_carry_exactly_the_latest_summary_and_no_reasoning():
    config = ReasoningCacheConfig(turns=3, states_per_problem=4, summarizer="x")
    summarizer = scripted(summarizer_reply, "summarizer")
    states = await roll_out(PROBLEMS, model_policy(scripted(policy_reply, "policy")), summarizer, config)
    for i, got in enumerate(states):
        assert got.failure is None
        assert got.summaries == [None, f"SUMMARY[p{i} t1]", f"SUMMARY[p{i} t2]", f"SUMMARY[p{i} t3]"]
    pool = StatePool(PROBLEMS, ROWS, config)
    pool.install(states, [[0, 1, 2, 3] for _ in PROBLEMS])
    data = pool.dataset()
    assert len(data) == 12
    for slot in range(len(data)):
        row = data[slot]
        i, t = divmod(slot, 4)
        assert (row["problem_id"], row["state"], row["answer"]) == (f"p{i}", t, str(i))
        assert row["prompt"] == turn_messages(PROBLEMS[i], states[i].summaries[t])
        text = row["prompt"][-1]["content"]
        assert "REASONING" not in text and "PROOF" not in text
        assert re.findall(r"SUMMARY\[[^]]*\]", text) == ([f"SUMMARY[p{i} t{t}]"] if t else [])
    # The summarizer saw each turn's own reasoning once, and the previous summary, never older reasoning.
    assert len(summarizer.backend.calls) == 9


async def test_a_failed_turn_keeps_the_states_reached_and_draws_repeat():
    def flaky(messages, sampling):
        if "statement number 1" in messages[-1]["content"] and "SUMMARY[p1 t1]" in messages[-1]["content"]:
            return Completion.failure("policy", "timeout", "no answer")
        return policy_reply(messages, sampling)

    config = ReasoningCacheConfig(turns=3, states_per_problem=3, summarizer="x", seed=5)
    pool = StatePool(PROBLEMS, ROWS, config)
    pool.install(*await pool.rebuild(model_policy(scripted(flaky, "policy")), scripted(summarizer_reply, "s")))
    assert pool.states[1].summaries == [None, "SUMMARY[p1 t1]"]
    assert "turn 2 reasoning failed" in pool.states[1].failure
    assert pool.chosen[1] in ([0, 0, 1], [0, 1, 1])
    assert sorted(pool.chosen[0]) == pool.chosen[0] and len(set(pool.chosen[0])) == 3
    stats = pool.stats()
    assert stats["rc/failed_rollouts"] == pytest.approx(1 / 3)
    assert stats["rc/short_problems"] == 1


THINKING_ONLY = Completion(model="s", reasoning="thinking...", reasoning_closed=False, finish_reason="length")

# Summarizer outputs turn by turn, and the summary each following turn must start from (None: the
# problem alone, the first turn's prompt again). Shared by the scaffold and the RC-RL rollouts.
EMPTY_SUMMARY_CASES = [
    pytest.param(["A", "", "C"], [None, "A", "A", "C"], [2], "solve", id="middle-empty-keeps-previous"),
    pytest.param(["", "B"], [None, None, "B"], [1], "solve", id="first-empty-is-the-problem-alone"),
    pytest.param(["", "B"], [None, None, "B"], [1], "continue", id="first-empty-continue-prompt"),
    pytest.param([THINKING_ONLY, "  "], [None, None, None], [1, 2], "solve", id="thought-away-and-blank"),
    pytest.param(["A", "B"], [None, "A", "B"], [], "solve", id="no-empty"),
]


def summarizer_script(outputs):
    """Returns the scripted outputs in call order (one problem, so one summary per turn)."""
    queue = iter(outputs)
    return scripted(lambda messages, sampling: next(queue), "summarizer")


@pytest.mark.parametrize(("outputs", "expected", "empty_turns", "first_turn"), EMPTY_SUMMARY_CASES)
async def test_an_empty_summary_keeps_the_previous_one_in_the_scaffold_and_in_training(
        outputs, expected, empty_turns, first_turn):
    from qednano.scaffolds.config import Roles
    from qednano.scaffolds.reasoning_cache import RCConfig, ReasoningCache

    problem = PROBLEMS[0]
    wanted = [turn_messages(problem, summary, first_turn=first_turn) for summary in expected]

    # Training: T = len(outputs) turns, states s_0 ... s_T.
    config = ReasoningCacheConfig(turns=len(outputs), states_per_problem=1, summarizer="x", first_turn=first_turn)
    policy = scripted(policy_reply, "policy")
    [states] = await roll_out([problem], model_policy(policy), summarizer_script(outputs), config)
    assert states.failure is None
    assert states.summaries == expected
    assert [turn_messages(problem, s, first_turn=first_turn) for s in states.summaries] == wanted
    assert [messages for messages, _ in policy.backend.calls] == wanted[:-1]
    assert [int(re.search(r"turn (\d+) starts", n).group(1)) - 1 for n in states.empty_summaries] == empty_turns
    pool = StatePool([problem], ROWS[:1], config)
    pool.install([states], [[0]])
    assert pool.stats()["rc/empty_summaries"] == len(empty_turns)

    # Test time: one more turn reads the last summary, so the scaffold's turn prompts are every state's.
    prover = scripted(policy_reply, "prover")
    scaffold = ReasoningCache(RCConfig(turns=len(outputs) + 1, first_turn=first_turn),
                              Roles(prover, summarizer=summarizer_script(outputs)))
    attempt = await scaffold.solve(problem)
    assert attempt.status == "ok"
    assert [messages for messages, _ in prover.backend.calls] == wanted
    notes = [step.note for step in attempt.steps if step.role == "summarize"]
    assert [t for t, note in enumerate(notes, 1) if note] == empty_turns
    assert [note for note in notes if note] == states.empty_summaries  # the same words in both records


async def test_a_failed_summarizer_call_still_ends_the_rollout():
    config = ReasoningCacheConfig(turns=2, states_per_problem=1, summarizer="x")
    failed = Completion.failure("s", "http_500", "server exploded")
    [states] = await roll_out(PROBLEMS[:1], model_policy(scripted(policy_reply, "policy")),
                              summarizer_script(["A", failed]), config)
    assert states.summaries == [None, "A"] and states.empty_summaries == []
    assert states.failure == "turn 2 summary failed: server exploded"


def test_a_failed_call_is_never_carried_as_an_empty_summary():
    from qednano.scaffolds.reasoning_cache import carry_summary

    with pytest.raises(ValueError, match="a failed call"):
        carry_summary("A", Completion.failure("s", "timeout", "no answer"), 1)


def test_draws_are_without_replacement_and_cover_every_state():
    rng = random.Random(0)
    seen = set()
    for _ in range(200):
        draw = draw_states(4, 2, rng)
        assert len(set(draw)) == 2 and all(0 <= d < 4 for d in draw)
        seen.update(draw)
    assert seen == {0, 1, 2, 3}
    assert draw_states(4, 4, rng) == [0, 1, 2, 3]


def test_before_any_refresh_every_slot_is_the_problem_alone():
    pool = StatePool(PROBLEMS, ROWS, ReasoningCacheConfig(turns=1, states_per_problem=2, summarizer="x"))
    rows = [pool.dataset()[i] for i in range(6)]
    assert [r["state"] for r in rows] == [0] * 6
    assert rows[2]["prompt"] == turn_messages(PROBLEMS[1], None)


@pytest.mark.parametrize(("settings", "message"), [
    ({"turns": 0}, "rc.turns must be at least 1"),
    ({"turns": 3, "states_per_problem": 5}, "between 1 and turns + 1 = 4"),
    ({"summary_tokens": 0}, "rc.summary_tokens must be at least 1"),
    ({"refresh_steps": 0}, "rc.refresh_steps must be at least 1"),
])
def test_bad_settings_name_the_field(settings, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ReasoningCacheConfig(**settings)


async def test_reward_is_logged_per_state():
    logged: list[tuple[str, float]] = []

    def reward(completions, **_):
        return [float(len(c)) if c != "x" else None for c in completions]

    wrapped = log_reward_by_state(reward, "length")
    values = await wrapped(completions=["ab", "abcd", "x", "a"], state=[0, 0, 2, 2],
                           log_metric=lambda k, v: logged.append((k, v)))
    assert values == [2.0, 4.0, None, 1.0]
    assert logged == [("rc/reward_s0/length", 3.0), ("rc/reward_s2/length", 1.0)]


def test_pool_needs_one_row_per_problem():
    with pytest.raises(ValueError, match="3 problems but 2 dataset rows"):
        StatePool(PROBLEMS, ROWS[:2], ReasoningCacheConfig())


def test_problem_states_start_at_s0():
    assert ProblemStates().summaries == [None]


def test_an_rc_rl_step_trains_on_states_from_the_live_policy(tmp_path):
    """Raw TRL GRPOTrainer on a tiny llama: the pool is rolled out by the model being trained."""
    import torch
    from tiny_models import smollm2_tokenizer, tiny_llama
    from trl import GRPOConfig, GRPOTrainer

    from qednano.train.rc import StatePoolCallback

    model, tokenizer = tiny_llama(), smollm2_tokenizer()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    config = ReasoningCacheConfig(turns=2, states_per_problem=2, summarizer="x", reasoning_tokens=8,
                                  summary_tokens=8, refresh_steps=1)
    summaries = iter(range(1000))
    summarizer = scripted(lambda m, s: f"NOTE{next(summaries)}", "summarizer")
    pool = StatePool(PROBLEMS[:2], ROWS[:2], config)
    seen: list[tuple[int, str]] = []

    def reward(prompts, completions, state, **_):
        seen.extend((s, p[-1]["content"]) for s, p in zip(state, prompts, strict=True))
        return [float(len(c[-1]["content"])) for c in completions]

    args = GRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, max_steps=2, per_device_train_batch_size=4,
                      num_generations=2, max_completion_length=8, learning_rate=1e-2, logging_steps=1,
                      report_to=[], save_strategy="no", seed=0)
    refresher = StatePoolCallback(pool, summarizer=summarizer)
    trainer = GRPOTrainer(model=model, processing_class=tokenizer, args=args, train_dataset=pool.dataset(),
                          reward_funcs=[log_reward_by_state(reward, "length")], callbacks=[refresher])
    refresher.trainer = trainer  # the refresh generates with trainer.model_wrapped, unwrapped by TRL
    trainer.train()

    assert pool.refreshes == 2  # at the start and after step 1 (not after the last step)
    # The summarizer read reasoning that the tiny policy generated, and states > 0 were trained on.
    assert len(summarizer.backend.calls) == 2 * 2 * 2
    assert any(state > 0 for state, _ in seen)
    for state, prompt in seen:
        assert ("Where I stand" in prompt) == (state > 0)
        assert len(re.findall(r"NOTE\d+", prompt)) == (1 if state else 0)
    logs = {key for entry in trainer.state.log_history for key in entry}
    assert {"rc/turns_reached", "rc/refresh_s"} <= logs
    assert any(key.startswith("rc/reward_s") for key in logs)
    assert all(not torch.equal(before[name], p) for name, p in model.named_parameters())


def test_every_refresh_runs_on_one_event_loop_and_the_end_closes_the_summarizer():
    """An HTTP summarizer's connections belong to one loop: a second asyncio.run would find it closed."""
    import asyncio

    from transformers import TrainerState

    from qednano.train.rc import StatePoolCallback

    loops = []

    def summarize(messages, sampling):
        loops.append(asyncio.get_running_loop())
        return "NOTE"

    summarizer = scripted(summarize, "summarizer")
    closed = []
    summarizer.aclose = lambda: asyncio.sleep(0, result=closed.append(True))
    config = ReasoningCacheConfig(turns=1, states_per_problem=1, summarizer="x")
    callback = StatePoolCallback(StatePool(PROBLEMS, ROWS, config), summarizer=summarizer,
                                 policy=model_policy(scripted(policy_reply, "policy")))
    state = TrainerState(max_steps=10)
    callback.refresh(state, None)
    callback.refresh(state, None)
    assert len(loops) == 6 and len(set(map(id, loops))) == 1
    callback.on_train_end(None, state, None)
    assert closed == [True] and loops[0].is_closed()


async def test_states_follow_the_scaffolds_first_turn_and_summary_settings():
    """With first_turn: continue (rc-qed-nano), s_0 is the continue prompt with the no-summary note."""
    config = ReasoningCacheConfig(turns=1, states_per_problem=2, summarizer="x", first_turn="continue",
                                  summary_thinking=False)
    policy, summarizer = scripted(policy_reply, "policy"), scripted(summarizer_reply, "s")
    pool = StatePool(PROBLEMS[:1], ROWS[:1], config)
    pool.install(*await pool.rebuild(model_policy(policy), summarizer))
    s0 = turn_messages(PROBLEMS[0], None, first_turn="continue")
    assert s0 != turn_messages(PROBLEMS[0], None)
    assert policy.backend.calls[0][0] == s0 and pool.dataset()[0]["prompt"] == s0
    assert all(sampling.thinking is False for _, sampling in summarizer.backend.calls)
    with pytest.raises(ValueError, match="rc.first_turn must be solve or continue"):
        ReasoningCacheConfig(first_turn="restart")


async def test_shares_rolled_out_by_separate_processes_make_the_pool_of_one_process():
    """Each rank rolls out problems[rank::world]; the gathered shares give the one-process states and draws."""
    problems = [Problem(id=f"p{i}", statement=f"Prove statement number {i}.") for i in range(5)]
    rows = [{"problem_id": p.id, "prompt": []} for p in problems]
    config = ReasoningCacheConfig(turns=2, states_per_problem=2, summarizer="x", seed=3)
    alone = StatePool(problems, rows, config)
    expected = await alone.rebuild(model_policy(scripted(policy_reply, "policy")), scripted(summarizer_reply, "s"))
    for world in (2, 3, 7):  # 7 > 5 problems: two ranks have an empty share
        pools = [StatePool(problems, rows, config) for _ in range(world)]
        policies = [scripted(policy_reply, "policy") for _ in range(world)]
        summarizers = [scripted(summarizer_reply, "s") for _ in range(world)]
        shares = [await pool.roll_out_share(model_policy(policy), summarizer, rank=rank, world=world)
                  for rank, (pool, policy, summarizer) in enumerate(zip(pools, policies, summarizers, strict=True))]
        for rank, (policy, summarizer) in enumerate(zip(policies, summarizers, strict=True)):
            mine = {f"statement number {i}." for i in range(rank, len(problems), world)}
            for backend in (policy.backend, summarizer.backend):  # each rank called for its own share only
                seen = {re.search(r"statement number \d+\.", m[-1]["content"]).group(0) for m, _ in backend.calls}
                assert seen == mine
        for pool in pools:  # every rank installs the same states and the same seeded draws
            pool.install(*pool.draw(shares))
            assert (pool.states, pool.chosen) == expected
        assert sum(len(s.backend.calls) for s in summarizers) == len(problems) * config.turns


async def test_the_policy_is_called_every_turn_even_when_no_problem_is_left():
    """A sharded model's ranks must generate equally often: a rank whose rollouts all failed still takes its turn."""
    batches: list[int] = []
    failed = Completion.failure("s", "http_500", "down")

    async def policy(batch, sampling):
        batches.append(len(batch))
        return await model_policy(scripted(policy_reply, "policy"))(batch, sampling)

    config = ReasoningCacheConfig(turns=3, states_per_problem=1, summarizer="x")
    states = await roll_out(PROBLEMS, policy, summarizer_script([failed] * 3), config)
    assert batches == [3, 0, 0] and all(s.failure for s in states)


def test_lockstep_generation_runs_the_same_number_of_batches_on_every_share():
    """Under ZeRO-3/FSDP every rank must call generate equally often: missing batches run a filler prompt."""
    from tiny_models import smollm2_tokenizer, tiny_llama

    from qednano.llm.types import Sampling
    from qednano.train.generation import Lockstep, generate_with_transformers

    model, tokenizer = tiny_llama(), smollm2_tokenizer()
    calls: list[int] = []
    real_generate = model.generate

    def counted(**kwargs):
        calls.append(kwargs["input_ids"].shape[0])
        return real_generate(**kwargs)

    model.generate = counted
    prompts = [turn_messages(p, None) for p in PROBLEMS]
    lockstep = Lockstep.for_share(problems=5, world=2, batch_size=2, filler=prompts[0])
    assert lockstep.batches == 2  # the largest share, problems[0::2], is 3 prompts: 2 batches of 2
    sampling = Sampling(max_tokens=3)
    shares = {"three": prompts, "one": prompts[:1], "none": []}
    got = {name: generate_with_transformers(model, tokenizer, share, sampling, batch_size=2, lockstep=lockstep)
           for name, share in shares.items()}
    assert [len(got[name]) for name in shares] == [3, 1, 0]  # filler outputs are dropped
    assert all(c.ok and c.usage.completion_tokens >= 1 for c in got["three"])
    assert calls == [2, 1, 1, 1, 1, 1]  # 2 generate calls for every share; one-row fillers
    calls.clear()
    assert generate_with_transformers(model, tokenizer, [], sampling, batch_size=2) == [] and calls == []
    with pytest.raises(ValueError, match="more than the 1 every process runs"):
        generate_with_transformers(model, tokenizer, prompts, sampling, batch_size=2,
                                   lockstep=Lockstep(batches=1, filler=prompts[0]))


def test_the_default_policy_needs_the_trainer():
    from transformers import TrainerState

    from qednano.train.rc import StatePoolCallback

    callback = StatePoolCallback(StatePool(PROBLEMS, ROWS, ReasoningCacheConfig(turns=1, states_per_problem=1)),
                                 summarizer=scripted(summarizer_reply, "s"))
    with pytest.raises(ValueError, match="set callback.trainer"):
        callback.refresh(TrainerState(max_steps=1), None)
