"""The model records, the Model wrapper and the SQLite call cache."""

import pytest

from qednano.llm.cache import CallCache, call_key
from qednano.llm.model import Model
from qednano.llm.scripted import ScriptedBackend
from qednano.llm.types import Completion, Prices, Sampling, Usage, split_reasoning
from qednano.prompts import fill

HI = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("plain answer", ("", "plain answer", True)),
        ("<think>try x</think>proof", ("try x", "proof", True)),
        ("try x</think>\nproof", ("try x", "proof", True)),  # template opened the block
        ("<think>a</think>b</think>c", ("a</think>b", "c", True)),  # last close wins
        ("<think>never finished", ("never finished", "", False)),
        ("  <think>\n</think>\n", ("", "", True)),
    ],
)
def test_split_reasoning(text, expected):
    assert split_reasoning(text) == expected


def test_sampling_merge_and_per_sample_seed():
    defaults = Sampling(temperature=0.7, max_tokens=100, top_p=0.9)
    mine = Sampling(max_tokens=10, seed=3, n=4).merged_over(defaults)
    assert (mine.temperature, mine.max_tokens, mine.top_p, mine.n) == (0.7, 10, 0.9, 4)
    assert [mine.for_sample(i).seed for i in range(3)] == [3, 4, 5]
    assert mine.for_sample(2).n == 1
    assert Sampling().for_sample(5).seed is None


def reply_with_seed(messages, sampling):
    return f"<think>thinking about {messages[-1]['content']}</think>answer seed={sampling.seed}"


async def test_generate_fans_out_samples_and_prices_them():
    backend = ScriptedBackend(reply_with_seed)
    model = Model("m", backend, prices=Prices(input=1_000_000, output=2_000_000))
    out = await model.generate(HI, Sampling(n=3, seed=10))
    assert [c.content for c in out] == ["answer seed=10", "answer seed=11", "answer seed=12"]
    assert [c.sample_index for c in out] == [0, 1, 2]
    assert out[0].reasoning == "thinking about hi"
    # scripted usage: 1 prompt word, 5 completion words -> 1 * $1 + 5 * $2
    assert out[0].cost_usd == pytest.approx(1 + 2 * out[0].usage.completion_tokens)
    assert model.meter.calls == 3 and model.meter.cost_usd == pytest.approx(3 * out[0].cost_usd)


async def test_cache_replays_finished_calls_and_retries_failures(tmp_path):
    cache = CallCache(tmp_path / "calls.sqlite")
    flaky = {"fail": True}

    def reply(messages, sampling):
        if sampling.seed == 1 and flaky["fail"]:
            return Completion.failure("m", "http_500", "server error")
        return f"ok {sampling.seed}"

    first = Model("m", ScriptedBackend(reply), cache=cache)
    out = await first.generate(HI, Sampling(n=2, seed=0))
    assert [c.ok for c in out] == [True, False]
    assert first.meter.failed == 1 and len(cache) == 1

    flaky["fail"] = False
    backend = ScriptedBackend(reply)
    again = Model("m", backend, cache=cache)
    out = await again.generate(HI, Sampling(n=2, seed=0))
    assert [c.content for c in out] == ["ok 0", "ok 1"]
    assert [c.cached for c in out] == [True, False]
    assert len(backend.calls) == 1  # only the failed sample was redone
    assert again.meter.cached == 1 and again.meter.calls == 1

    third = Model("m", ScriptedBackend(reply), cache=CallCache(tmp_path / "calls.sqlite"))
    await third.generate(HI, Sampling(n=2, seed=0))
    assert len(third.backend.calls) == 0


def test_cache_key_depends_on_everything_that_changes_the_answer():
    base = call_key("id", HI, Sampling(temperature=1.0), 0)
    assert base == call_key("id", HI, Sampling(temperature=1.0, n=5), 0)  # n is fanned out
    assert base != call_key("id2", HI, Sampling(temperature=1.0), 0)
    assert base != call_key("id", HI, Sampling(temperature=0.5), 0)
    assert base != call_key("id", HI, Sampling(temperature=1.0), 1)
    assert base != call_key("id", [{"role": "user", "content": "hi!"}], Sampling(temperature=1.0), 0)


def test_failures_are_never_cached(tmp_path):
    cache = CallCache(tmp_path / "c.sqlite")
    with pytest.raises(ValueError):
        cache.put("k", "id", Completion.failure("m", "timeout", "slow"))


def test_usage_adds_up():
    total = Usage(prompt_tokens=1, completion_tokens=2, reasoning_tokens=1) + Usage(prompt_tokens=3, completion_tokens=4)
    assert total == Usage(prompt_tokens=4, completion_tokens=6, reasoning_tokens=1)


def test_fill_checks_placeholders():
    assert fill("P: {problem} \\boxed{{}}", problem="x^{2}") == "P: x^{2} \\boxed{}"
    with pytest.raises(KeyError, match="missing"):
        fill("{problem} {summary}", problem="p")
    with pytest.raises(KeyError, match="unused"):
        fill("{problem}", problem="p", summary="s")
