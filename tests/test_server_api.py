"""`qednano serve` speaks the whole OpenAI schema: streaming, plain completions, the fields real
clients send, and no generation left running for a client that left. Scripted models on a real
uvicorn server over loopback, driven by the openai SDK and by raw HTTP."""

from __future__ import annotations

import asyncio

import aiohttp
import openai
import pytest
from test_server import API_KEY, running_server, scripted_reply

from qednano.llm.model import Model
from qednano.llm.scripted import ScriptedBackend
from qednano.llm.types import Completion, Messages, Sampling

HI = [{"role": "user", "content": "hello there"}]


class Sleepy:
    """A backend that answers "short" at once and sleeps on anything else, counting cancellations."""

    identity = model = "sleepy"

    def __init__(self):
        self.started = self.cancelled = 0

    async def complete(self, messages: Messages, sampling: Sampling) -> Completion:
        if messages[-1]["content"] == "short":
            return Completion(model=self.model, content="quick")
        self.started += 1
        try:
            await asyncio.sleep(120)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return Completion(model=self.model, content="slow")

    async def aclose(self) -> None:
        return None


@pytest.fixture(scope="module")
def url():
    with running_server(Model("served", ScriptedBackend(scripted_reply, model="scripted-model"))) as base_url:
        yield base_url


@pytest.fixture
async def client(url):
    async with openai.AsyncOpenAI(base_url=url, api_key=API_KEY, max_retries=0) as sdk:
        yield sdk


async def test_a_streamed_chat_completion_arrives_in_chunks_with_usage_last(client):
    stream = await client.chat.completions.create(model="served", messages=HI, seed=3, stream=True,
                                                  stream_options={"include_usage": True})
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "hello there #seed=3"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 3
    assert all(c.usage is None for c in chunks[:-1])


async def test_a_stream_without_include_usage_has_no_usage_chunk(client):
    stream = await client.chat.completions.create(model="served", messages=HI, stream=True)
    chunks = [chunk async for chunk in stream]
    assert all(c.choices and c.usage is None for c in chunks)


async def test_streamed_reasoning_arrives_apart_from_the_answer(client):
    stream = await client.chat.completions.create(model="served", messages=[{"role": "user", "content": "think"}],
                                                  stream=True)
    deltas = [c.choices[0].delta for c in [chunk async for chunk in stream]]
    assert "".join((d.model_extra or {}).get("reasoning_content") or "" for d in deltas) == "let me see"
    assert "".join(d.content or "" for d in deltas) == "the answer"


async def test_a_failure_inside_a_stream_is_an_error_event(client):
    stream = await client.chat.completions.create(model="served", messages=[{"role": "user", "content": "too long"}],
                                                  stream=True)
    with pytest.raises(openai.APIError, match="maximum context length"):
        _ = [chunk async for chunk in stream]


async def test_a_request_shaped_like_the_reference_harness_is_answered(client):
    reply = await client.chat.completions.create(
        model="served",
        messages=[{"role": "system", "content": "You are a prover."}, {"role": "user", "content": "prove it"}],
        tools=[], tool_choice="none", response_format={"type": "text"}, logprobs=False, frequency_penalty=0,
        presence_penalty=0.0, parallel_tool_calls=False, user="harness", metadata={"run": "1"}, store=False,
        temperature=0.6, top_p=0.95, max_tokens=64, n=1,
        extra_body={"top_k": -1, "min_p": 0, "repetition_penalty": 1.0, "skip_special_tokens": True,
                    "chat_template_kwargs": {"enable_thinking": True}},
    )
    assert reply.choices[0].message.content == "prove it #seed=None"


async def test_earlier_assistant_messages_are_accepted_as_clients_echo_them(client):
    messages = [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "a"},
                {"role": "assistant", "content": "b", "refusal": None, "tool_calls": []},
                {"role": "user", "content": "c"}]
    reply = await client.chat.completions.create(model="served", messages=messages)
    assert reply.choices[0].message.content == "c #seed=None"


REFUSED = [
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"logprobs": True, "top_logprobs": 3}, "logprobs"),
    ({"frequency_penalty": 0.5}, "frequency_penalty"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"frobnicate": True}, "frobnicate"),
]


@pytest.mark.parametrize(("extra", "field"), REFUSED, ids=[f for _, f in REFUSED])
async def test_what_the_server_cannot_do_is_a_400_naming_the_field(client, extra, field):
    with pytest.raises(openai.BadRequestError) as caught:
        await client.post("/chat/completions", body={"model": "served", "messages": HI, **extra}, cast_to=dict)
    assert caught.value.param == field and field in caught.value.message


async def test_plain_completions_continue_the_prompt(client):
    reply = await client.completions.create(model="served", prompt="Once upon a time", max_tokens=5, seed=1)
    assert reply.object == "text_completion" and reply.choices[0].text == "Once upon a time #seed=1"
    assert reply.usage.prompt_tokens == 4 and reply.usage.completion_tokens == 5
    several = await client.completions.create(model="served", prompt=["a", "b"], n=2, seed=0)
    assert [c.text for c in several.choices] == ["a #seed=0", "a #seed=1", "b #seed=0", "b #seed=1"]
    assert several.usage.prompt_tokens == 2


async def test_plain_completions_stream_too(client):
    stream = await client.completions.create(model="served", prompt="x", stream=True,
                                             stream_options={"include_usage": True})
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].text == "x #seed=None" and chunks[-1].usage.completion_tokens == 2


async def test_a_model_without_raw_text_refuses_plain_completions():
    with running_server(Model("sleepy", Sleepy())) as base_url:
        async with openai.AsyncOpenAI(base_url=base_url, api_key=API_KEY, max_retries=0) as sdk:
            with pytest.raises(openai.BadRequestError, match="chat/completions"):
                await sdk.completions.create(model="sleepy", prompt="x")


async def eventually(condition, within_s: float = 10.0) -> bool:
    for _ in range(int(within_s / 0.05)):
        if condition():
            return True
        await asyncio.sleep(0.05)
    return condition()


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_a_client_that_leaves_cancels_its_generation_and_blocks_nobody(stream):
    backend = Sleepy()
    with running_server(Model("sleepy", backend)) as base_url:
        body = {"model": "sleepy", "messages": [{"role": "user", "content": "long"}], "stream": stream}
        async with aiohttp.ClientSession() as session:
            with pytest.raises(TimeoutError):
                async with session.post(f"{base_url}/chat/completions", json=body,
                                        timeout=aiohttp.ClientTimeout(total=0.5)) as response:
                    await response.read()
        assert backend.started == 1
        assert await eventually(lambda: backend.cancelled == 1), "the abandoned generation kept running"
        async with openai.AsyncOpenAI(base_url=base_url, api_key=API_KEY, max_retries=0, timeout=10) as sdk:
            reply = await sdk.chat.completions.create(model="sleepy", messages=[{"role": "user", "content": "short"}])
        assert reply.choices[0].message.content == "quick"


async def test_a_long_request_does_not_hold_up_short_ones():
    backend = Sleepy()
    with running_server(Model("sleepy", backend)) as base_url:
        async with openai.AsyncOpenAI(base_url=base_url, api_key=API_KEY, max_retries=0, timeout=30) as sdk:
            long = asyncio.create_task(sdk.chat.completions.create(model="sleepy", messages=[{"role": "user", "content": "long"}]))
            assert await eventually(lambda: backend.started == 1)
            shorts = await asyncio.gather(*(sdk.chat.completions.create(
                model="sleepy", messages=[{"role": "user", "content": "short"}]) for _ in range(5)))
            assert not long.done() and [s.choices[0].message.content for s in shorts] == ["quick"] * 5
            long.cancel()


async def test_our_streaming_backend_reads_the_servers_streams(url):
    from qednano.llm.openai_backend import OpenAIBackend

    backend = OpenAIBackend("served", [url], max_retries=0)
    thought = await backend.complete([{"role": "user", "content": "think"}], Sampling())
    plain = await backend.complete(HI, Sampling(seed=5))
    too_long = await backend.complete([{"role": "user", "content": "too long"}], Sampling())
    await backend.aclose()
    assert (thought.reasoning, thought.content, thought.finish_reason) == ("let me see", "the answer", "stop")
    assert plain.content == "hello there #seed=5" and plain.usage.completion_tokens == 3 and plain.usage.prompt_tokens == 2
    assert too_long.error_kind == "context_length"  # from the error event, not retried
