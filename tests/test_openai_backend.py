"""OpenAIBackend against a real loopback server that injects faults (tests/fault_server.py).

Every fault must end in either a completion (a retry succeeded) or a recorded failure of the
right kind after the right number of attempts; never an exception, never an empty success.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import socket

import pytest
from fault_server import (
    Fault,
    FaultServer,
    abort_mid_body,
    auth_echo,
    completion_body,
    context_length,
    cut_stream,
    error_event,
    garbage_event,
    hang,
    invalid_json,
    missing_choices,
    reply,
    reset,
    slow_stream,
    stall,
    status,
    truncated_json,
)

from qednano.llm.model import Model
from qednano.llm.openai_backend import OpenAIBackend
from qednano.llm.spec import ModelConfigError, ModelSpec
from qednano.llm.types import Prices, Sampling

HELLO = [{"role": "user", "content": "hello there"}]


def make_backend(*urls: str, **settings) -> OpenAIBackend:
    """Fast settings for tests: tiny backoff, short timeout, few retries."""
    settings = {"backoff_base_s": 0.001, "timeout_s": 5.0, "max_retries": 2, **settings}
    return OpenAIBackend("fault-model", list(urls), **settings)


class CeilingRandom(random.Random):
    """Jitter that always draws the top of its range, so backoff delays are predictable."""

    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.fixture
async def server():
    async with FaultServer() as running:
        yield running


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_a_plain_reply_is_parsed(server):
    server.push(reply("the answer", usage={"prompt_tokens": 7, "completion_tokens": 3}))
    backend = make_backend(server.url)
    done = await backend.complete(HELLO, Sampling())
    await backend.aclose()
    assert done.ok and done.content == "the answer" and done.reasoning == ""
    assert done.finish_reason == "stop" and done.reasoning_closed
    assert (done.usage.prompt_tokens, done.usage.completion_tokens, done.usage.reasoning_tokens) == (7, 3, 0)
    assert done.latency_s > 0
    assert server.requests[0].body["messages"] == HELLO


TRANSIENT = [
    (status(429), "http_429"),
    (status(500), "http_500"),
    (status(502), "http_502"),
    (status(503), "http_503"),
    (hang(30), "timeout"),
    (reset(), "connection"),
    (abort_mid_body(), "connection"),
    (invalid_json(), "malformed"),
    (truncated_json(), "malformed"),
    (missing_choices(), "malformed"),
    (stall(after_chunks=2), "timeout"),
    (cut_stream(), "connection"),
    (error_event(), "stream_error"),
    (garbage_event(), "malformed"),
]


@pytest.mark.parametrize(("fault", "kind"), TRANSIENT, ids=[f"{k}-{f.kind}-{f.stream_end}" for f, k in TRANSIENT])
async def test_a_transient_fault_is_retried_until_a_reply(server, fault, kind):
    server.push(fault, fault, reply("recovered"))
    backend = make_backend(server.url, timeout_s=0.3)
    done = await backend.complete(HELLO, Sampling())
    await backend.aclose()
    assert done.ok and done.content == "recovered"
    assert len(server.requests) == 3


@pytest.mark.parametrize(("fault", "kind"), TRANSIENT, ids=[f"{k}-{f.kind}-{f.stream_end}" for f, k in TRANSIENT])
async def test_a_lasting_transient_fault_is_recorded_after_all_retries(fault, kind):
    async with FaultServer(respond=lambda body: fault) as server:
        backend = make_backend(server.url, timeout_s=0.3, max_retries=2)
        done = await backend.complete(HELLO, Sampling())
        await backend.aclose()
    assert not done.ok and done.content == "" and done.finish_reason == "error"
    assert done.error_kind == kind
    assert server.url in done.error and "3 attempts" in done.error
    assert len(server.requests) == 3


PERMANENT = [
    (context_length("vllm"), "context_length"),
    (context_length("openai"), "context_length"),
    (status(400, "'max_tokens' or 'max_completion_tokens' is too large: 8000. This model's maximum "
                 "context length is 4096 tokens and your request has 2778 input tokens"), "context_length"),
    (status(400, "The decoder prompt (length 5000) is longer than the maximum model length of 4096."),
     "context_length"),
    (status(400, "temperature must be non-negative"), "http_400"),
    (auth_echo(401), "auth"),
    (status(403), "auth"),
    (status(404, "model not found"), "http_404"),
]


@pytest.mark.parametrize(("fault", "kind"), PERMANENT, ids=[k for _, k in PERMANENT])
async def test_a_permanent_error_is_recorded_without_retry(server, fault, kind):
    server.push(fault, reply("should never be asked for"))
    backend = make_backend(server.url)
    done = await backend.complete(HELLO, Sampling())
    await backend.aclose()
    assert not done.ok and done.error_kind == kind and done.content == ""
    assert len(server.requests) == 1


async def test_an_empty_reply_is_a_failure_not_a_success(server):
    server.push(reply(""))
    backend = make_backend(server.url)
    done = await backend.complete(HELLO, Sampling())
    await backend.aclose()
    assert not done.ok and done.error_kind == "empty"


async def test_the_api_key_never_reaches_errors_or_logs(server, monkeypatch, caplog):
    secret = "sk-test-0123456789abcdef"
    monkeypatch.setenv("QEDNANO_TEST_KEY", secret)
    spec = ModelSpec(name="t", backend="openai", model="fault-model", base_urls=[server.url],
                     api_key_env="QEDNANO_TEST_KEY", max_retries=1)
    backend = OpenAIBackend.from_spec(spec)
    backend.backoff_base_s = 0.001
    server.push(auth_echo(401), auth_echo(503), auth_echo(503))
    with caplog.at_level(logging.DEBUG, logger="qednano"):
        rejected = await backend.complete(HELLO, Sampling())
        retried = await backend.complete(HELLO, Sampling())
    await backend.aclose()
    # The key was sent and echoed back: redaction is what keeps it out.
    assert server.requests[0].headers["Authorization"] == f"Bearer {secret}"
    assert rejected.error_kind == "auth" and retried.error_kind == "http_503"
    for text in (rejected.error, retried.error, caplog.text, rejected.model_dump_json()):
        assert secret not in text
    assert "[redacted]" in rejected.error and "[redacted]" in caplog.text


async def test_an_unreachable_url_names_the_url_and_the_fix():
    url = f"http://127.0.0.1:{free_port()}/v1"
    backend = make_backend(url, max_retries=1)
    done = await backend.complete(HELLO, Sampling())
    await backend.aclose()
    assert done.error_kind == "connection"
    assert url in done.error and "server is running" in done.error


async def test_backoff_waits_longer_after_each_failure():
    async with FaultServer(respond=lambda body: status(503)) as server:
        backend = make_backend(server.url, backoff_base_s=0.04, max_retries=4, rng=CeilingRandom())
        done = await backend.complete(HELLO, Sampling())
        await backend.aclose()
    assert done.error_kind == "http_503" and len(server.requests) == 5
    arrivals = server.arrivals()
    gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[1:], strict=False)]
    planned = [0.04, 0.08, 0.16, 0.32]
    # Load only lengthens gaps, so lower bounds and the first-vs-last order are safe to assert.
    assert all(gap >= 0.9 * want for gap, want in zip(gaps, planned, strict=False)), gaps
    assert gaps[-1] > gaps[0]


def test_backoff_delays_are_jittered_below_a_growing_cap():
    backend = make_backend("http://127.0.0.1:9/v1", backoff_base_s=1.0, backoff_max_s=10.0, rng=random.Random(0))
    for attempts, cap in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (9, 10.0)]:
        draws = [backend.backoff_delay(attempts, None) for _ in range(200)]
        assert all(0 <= d <= cap for d in draws)
        assert max(draws) > 0.8 * cap and min(draws) < 0.2 * cap  # spread over the range
    assert backend.backoff_delay(1, retry_after_s=5.0) == 5.0
    assert backend.backoff_delay(1, retry_after_s=1e6) == backend.retry_after_cap_s


@pytest.mark.parametrize("fault", [status(429, retry_after="0.3"), status(503, retry_after_ms="300")],
                         ids=["retry-after", "retry-after-ms"])
async def test_retry_after_is_honoured(server, fault):
    server.push(fault, reply())
    backend = make_backend(server.url)
    done = await backend.complete(HELLO, Sampling())
    await backend.aclose()
    first, second = server.arrivals()
    assert done.ok and second - first >= 0.27


async def test_a_huge_retry_after_is_capped(server):
    server.push(status(429, retry_after="3600"), reply())
    backend = make_backend(server.url, retry_after_cap_s=0.1)
    async with asyncio.timeout(30):
        done = await backend.complete(HELLO, Sampling())
    await backend.aclose()
    first, second = server.arrivals()
    assert done.ok and second - first >= 0.09


async def test_calls_are_spread_over_servers():
    async with FaultServer() as a, FaultServer() as b:
        backend = make_backend(a.url, b.url)
        for i in range(10):
            assert (await backend.complete([{"role": "user", "content": f"q{i}"}], Sampling())).ok
        await asyncio.gather(*(backend.complete(HELLO, Sampling()) for _ in range(10)))
        await backend.aclose()
    assert len(a.requests) == len(b.requests) == 10


async def test_a_dead_server_is_routed_around():
    dead = f"http://127.0.0.1:{free_port()}/v1"
    async with FaultServer() as alive:
        backend = make_backend(dead, alive.url)
        done = [await backend.complete(HELLO, Sampling()) for _ in range(10)]
        await backend.aclose()
    assert all(d.ok for d in done)
    # The dead one was tried once, then benched: every call landed on the live server once.
    assert backend.endpoints[0].failures == 1 and len(alive.requests) == 10


async def test_a_failing_server_is_tried_after_the_others():
    async with FaultServer(respond=lambda body: status(503)) as failing, FaultServer() as healthy:
        backend = make_backend(failing.url, healthy.url)
        done = [await backend.complete(HELLO, Sampling()) for _ in range(10)]
        await backend.aclose()
    assert all(d.ok for d in done)
    assert len(failing.requests) == 1 and len(healthy.requests) == 10


async def test_concurrency_is_bounded_over_all_calls():
    async with FaultServer(respond=lambda body: reply("slow", delay_s=0.05)) as server:
        backend = make_backend(server.url, max_concurrency=4)
        done = await asyncio.gather(*(backend.complete(HELLO, Sampling()) for _ in range(24)))
        await backend.aclose()
    assert all(d.ok for d in done)
    assert server.max_in_flight == 4


async def test_latency_covers_the_retries(server):
    server.push(status(503, retry_after="0.2"), reply())
    backend = make_backend(server.url)
    done = await backend.complete(HELLO, Sampling())
    await backend.aclose()
    assert done.latency_s >= 0.18


REASONING = [
    ("reasoning_content field", reply("x = 2", reasoning="think hard"), ("think hard", "x = 2", True)),
    ("reasoning field", reply("x = 2", reasoning="think hard", reasoning_field="reasoning"),
     ("think hard", "x = 2", True)),
    ("in-band think", reply("<think>think hard</think>\nx = 2"), ("think hard", "x = 2", True)),
    ("closing tag only", reply("think hard</think>x = 2"), ("think hard", "x = 2", True)),
    ("in-band unclosed", reply("<think>still going", finish_reason="length"), ("still going", "", False)),
    ("field unclosed", reply(None, reasoning="still going", finish_reason="length"), ("still going", "", False)),
]


@pytest.mark.parametrize(("fault", "expected"), [r[1:] for r in REASONING], ids=[r[0] for r in REASONING])
async def test_reasoning_is_split_from_the_answer(server, fault, expected):
    server.push(fault)
    backend = make_backend(server.url)
    done = await backend.complete(HELLO, Sampling())
    await backend.aclose()
    assert done.ok
    assert (done.reasoning, done.content, done.reasoning_closed) == expected


async def test_reasoning_tokens_come_from_usage_only(server):
    usage = {"prompt_tokens": 5, "completion_tokens": 40, "completion_tokens_details": {"reasoning_tokens": 30}}
    server.push(reply("a", reasoning="r", usage=usage), reply("a", reasoning="r", usage={"prompt_tokens": 5}))
    backend = make_backend(server.url)
    counted = await backend.complete(HELLO, Sampling())
    uncounted = await backend.complete(HELLO, Sampling())
    await backend.aclose()
    assert (counted.usage.completion_tokens, counted.usage.reasoning_tokens) == (40, 30)
    assert (uncounted.usage.completion_tokens, uncounted.usage.reasoning_tokens) == (0, 0)


@pytest.mark.parametrize(("reason", "mapped"), [("stop", "stop"), ("length", "length"),
                                                ("content_filter", "other"), (None, "other")])
async def test_finish_reasons_are_mapped(server, reason, mapped):
    server.push(reply("text", finish_reason=reason))
    backend = make_backend(server.url)
    done = await backend.complete(HELLO, Sampling())
    await backend.aclose()
    assert done.ok and done.finish_reason == mapped


async def test_sampling_settings_reach_the_server_in_each_providers_dialect(server):
    settings = Sampling(temperature=0.6, top_k=20, max_tokens=100, seed=7, stop=("END",), reasoning_effort="high")
    plain = make_backend(server.url)
    reasoning = make_backend(server.url, reasoning_model=True)
    await plain.complete(HELLO, settings)
    await reasoning.complete(HELLO, Sampling(max_tokens=100))
    await plain.aclose()
    await reasoning.aclose()
    sent_plain, sent_reasoning = (r.body for r in server.requests)
    assert sent_plain["top_k"] == 20  # extra_body fields land at the top level of the JSON
    assert sent_plain["max_tokens"] == 100 and "max_completion_tokens" not in sent_plain
    assert (sent_plain["temperature"], sent_plain["seed"], sent_plain["stop"]) == (0.6, 7, ["END"])
    assert sent_plain["reasoning_effort"] == "high"
    assert "top_p" not in sent_plain and sent_plain.get("n", 1) == 1
    assert sent_reasoning["max_completion_tokens"] == 100 and "max_tokens" not in sent_reasoning
    assert not {"temperature", "top_p", "top_k", "seed", "stop"} & set(sent_reasoning)


async def test_cost_is_computed_through_model_with_prices(server):
    server.push(reply("proof", usage={"prompt_tokens": 1000, "completion_tokens": 500}))
    model = Model("priced", make_backend(server.url), prices=Prices(input=2.0, output=8.0))
    done = await model.complete(HELLO)
    await model.aclose()
    assert done.cost_usd == pytest.approx((1000 * 2.0 + 500 * 8.0) / 1e6)
    assert model.meter.calls == 1 and model.meter.cost_usd == pytest.approx(done.cost_usd)


async def test_from_spec_uses_the_spec_settings(server):
    spec = ModelSpec(name="t", backend="openai", model="fault-model", base_urls=[server.url],
                     max_concurrency=3, timeout_s=9, max_retries=4, reasoning_model=True)
    backend = OpenAIBackend.from_spec(spec)
    assert backend.identity == spec.cache_identity()
    assert (backend.max_retries, backend.timeout_s, backend.reasoning_model) == (4, 9, True)
    assert (await backend.complete(HELLO, Sampling())).ok
    await backend.aclose()
    assert all(e.client.is_closed() for e in backend.endpoints)


def test_from_spec_rejects_a_spec_without_urls_or_key(monkeypatch):
    with pytest.raises(ModelConfigError, match="base_urls"):
        OpenAIBackend.from_spec(ModelSpec(name="t", backend="openai", model="m"))
    monkeypatch.delenv("QEDNANO_ABSENT_KEY", raising=False)
    with pytest.raises(ModelConfigError, match="QEDNANO_ABSENT_KEY"):
        OpenAIBackend.from_spec(ModelSpec(name="t", backend="openai", model="m", base_urls=["http://x/v1"],
                                          api_key_env="QEDNANO_ABSENT_KEY"))


# ---- streaming --------------------------------------------------------------------------------


async def test_answers_are_streamed_with_usage_reasoning_and_finish_reason(server):
    usage = {"prompt_tokens": 11, "completion_tokens": 29, "completion_tokens_details": {"reasoning_tokens": 20}}
    server.push(reply("so x equals two and that is all", reasoning="first think about it hard for a while",
                      finish_reason="length", usage=usage))
    backend = make_backend(server.url)
    done = await backend.complete(HELLO, Sampling())
    await backend.aclose()
    sent = server.requests[0].body
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert done.ok and done.content == "so x equals two and that is all"
    assert done.reasoning == "first think about it hard for a while"  # joined from several deltas
    assert done.finish_reason == "length"
    assert (done.usage.prompt_tokens, done.usage.completion_tokens, done.usage.reasoning_tokens) == (11, 29, 20)


async def test_a_hung_stream_is_caught_by_the_idle_timeout_well_before_the_total(server):
    server.push(stall(after_chunks=2, seconds=60), reply("recovered"))
    backend = make_backend(server.url, timeout_s=30.0, idle_timeout_s=0.5)
    done = await backend.complete(HELLO, Sampling())
    await backend.aclose()
    first, second = server.arrivals()
    assert done.ok and done.content == "recovered"
    assert second - first < 10.0  # the idle clock (0.5 s) fired, not the total one (30 s)


async def test_a_lasting_hang_is_recorded_as_an_idle_timeout(server):
    server.push(stall(after_chunks=1, seconds=60))
    backend = make_backend(server.url, timeout_s=30.0, idle_timeout_s=0.3, max_retries=0)
    done = await backend.complete(HELLO, Sampling())
    await backend.aclose()
    assert done.error_kind == "timeout" and "idle timeout" in done.error and server.url in done.error
    assert done.latency_s < 10.0


async def test_a_server_silent_before_its_headers_is_caught_by_the_idle_timeout(server):
    # The idle clock runs from the request on, not only once the response has begun.
    server.push(hang(60))
    backend = make_backend(server.url, timeout_s=30.0, idle_timeout_s=0.3, max_retries=0)
    done = await backend.complete(HELLO, Sampling())
    await backend.aclose()
    assert done.error_kind == "timeout" and "idle timeout" in done.error
    assert done.latency_s < 10.0


async def test_a_stream_that_never_idles_still_ends_at_the_total_timeout(server):
    server.push(slow_stream(" ".join(["word"] * 90), chunk_delay_s=0.1))  # 30+ chunks, 3+ s in all
    backend = make_backend(server.url, timeout_s=1.0, idle_timeout_s=0.5, max_retries=0)
    done = await backend.complete(HELLO, Sampling())
    await backend.aclose()
    assert done.error_kind == "timeout" and "total timeout of 1 s" in done.error


async def test_a_server_that_ignores_stream_is_read_as_one_body():
    async with FaultServer(respond=lambda body: reply("whole")) as server:
        server.push(Fault("plain", body=json.dumps(completion_body("whole body", usage={"completion_tokens": 2}))))
        backend = make_backend(server.url)
        done = await backend.complete(HELLO, Sampling())
        await backend.aclose()
    assert done.ok and done.content == "whole body" and done.usage.completion_tokens == 2


async def test_stream_false_asks_for_one_body_and_reads_it(server):
    server.push(reply("the proof", reasoning="first thoughts", usage={"prompt_tokens": 5, "completion_tokens": 9}))
    spec = ModelSpec(name="t", backend="openai", model="fault-model", base_urls=[server.url], stream=False)
    backend = OpenAIBackend.from_spec(spec)
    done = await backend.complete(HELLO, Sampling(max_tokens=50))
    await backend.aclose()
    [request] = server.requests
    assert request.body["stream"] is False and "stream_options" not in request.body
    assert done.ok and (done.content, done.reasoning) == ("the proof", "first thoughts")
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (5, 9)


async def test_stream_false_waits_past_the_idle_timeout_for_a_long_answer(server):
    # A server working on a long answer sends nothing until it is done: that is no hang, so only
    # the total timeout applies. The same silence from a streaming model is one.
    server.push(reply("worth the wait", delay_s=0.8), reply("worth the wait", delay_s=0.8))
    quiet = make_backend(server.url, timeout_s=5.0, idle_timeout_s=0.3, max_retries=0, stream=False)
    streaming = make_backend(server.url, timeout_s=5.0, idle_timeout_s=0.3, max_retries=0)
    done, hung = await quiet.complete(HELLO, Sampling()), await streaming.complete(HELLO, Sampling())
    await quiet.aclose()
    await streaming.aclose()
    assert done.ok and done.content == "worth the wait"
    assert hung.error_kind == "timeout" and "idle timeout" in hung.error
    server.push(hang(60))
    bounded = make_backend(server.url, timeout_s=0.5, idle_timeout_s=0.1, max_retries=0, stream=False)
    done = await bounded.complete(HELLO, Sampling())
    await bounded.aclose()
    assert done.error_kind == "timeout"  # the total timeout still ends a hang


def test_stream_false_is_for_openai_models_only():
    with pytest.raises(ValueError, match="stream: false applies to openai models only"):
        ModelSpec(name="t", backend="embedded", model="smollm2", stream=False)
    assert ModelSpec(name="t", backend="embedded", model="smollm2").stream


def test_timeouts_come_from_the_model_file_and_the_command_line():
    spec = ModelSpec(name="t", backend="openai", model="m", base_urls=["http://x/v1"], timeout_s=900, idle_timeout_s=45)
    backend = OpenAIBackend.from_spec(spec)
    assert (backend.timeout_s, backend.idle_timeout_s) == (900, 45)
    overridden = OpenAIBackend.from_spec(spec.with_limits(timeout_s=60, idle_timeout_s=None))
    assert (overridden.timeout_s, overridden.idle_timeout_s) == (60, 45)


async def test_command_line_timeouts_reach_the_backend_and_catch_a_hang(server):
    from qednano.llm.registry import load_model

    server.push(stall(after_chunks=1, seconds=60))
    model = load_model(f"openai:fault-model@{server.url}", timeout_s=20, idle_timeout_s=0.4)
    model.backend.max_retries = 0
    assert (model.backend.timeout_s, model.backend.idle_timeout_s) == (20, 0.4)
    done = await model.complete(HELLO)
    await model.aclose()
    assert done.error_kind == "timeout" and "0.4 s (the idle timeout)" in done.error

async def test_a_thinking_switch_reaches_vllm_as_a_chat_template_argument(server):
    backend = make_backend(server.url)
    await backend.complete(HELLO, Sampling(thinking=False, top_k=20))
    await backend.complete(HELLO, Sampling())
    await backend.aclose()
    switched, default = (r.body for r in server.requests)
    assert switched["chat_template_kwargs"] == {"enable_thinking": False} and switched["top_k"] == 20
    assert "chat_template_kwargs" not in default


def test_a_stream_reads_the_same_however_its_bytes_are_cut():
    from qednano.llm.openai_stream import StreamReader

    def event(delta: dict, finish: str | None = None) -> str:
        return "data: " + json.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]},
                                     ensure_ascii=False)

    lines = [": ping", event({"reasoning_content": "Let x ≥ 1."}), event({"content": "Proof: ∎ holds."}),
             event({}, "stop"), 'data: {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 5}}',
             "data: [DONE]"]
    for newline in ("\n\n", "\r\n\r\n"):
        stream = newline.join(lines).encode()  # the last line has no newline: the stream just ends
        for cut in range(len(stream) + 1):
            reader = StreamReader("m")
            for part in (stream[:cut], stream[cut:]):
                assert reader.feed_bytes(part) is None
            assert reader.finish() is None and reader.done
            done = reader.result()
            assert (done.reasoning, done.content, done.usage.completion_tokens) == ("Let x ≥ 1.", "Proof: ∎ holds.", 5)


def test_a_byte_that_is_not_utf8_is_read_as_a_replacement_character_not_a_failure():
    from qednano.llm.openai_stream import StreamReader

    reader = StreamReader("m")
    event = b'data: {"choices": [{"index": 0, "delta": {"content": "n \xff 1"}, "finish_reason": "stop"}]}\n\n'
    assert reader.feed_bytes(event) is None
    assert reader.result().content == "n \ufffd 1"
    assert StreamReader("m").feed_bytes(b"data: {not json\n").kind == "malformed"
