"""The OpenAI-compatible server, driven by the real `openai` SDK over loopback.

A scripted model answers fast tests; the slow tests serve the real embedded model, once
through the SDK and once through our own OpenAIBackend.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import openai
import pytest
import uvicorn

from qednano.llm.model import Model
from qednano.llm.scripted import ScriptedBackend
from qednano.llm.server import create_app
from qednano.llm.types import Completion, Messages, Sampling

API_KEY = "x"  # the server checks no key; the SDK insists on one


def scripted_reply(messages: Messages, sampling: Sampling) -> str | Completion:
    text = messages[-1]["content"]
    if text == "too long":
        return Completion.failure("scripted", "context_length", "the prompt has 9000 tokens; the limit is 8192")
    if text == "boom":
        return Completion.failure("scripted", "embedded_error", "RuntimeError: the engine broke")
    if text == "think":
        return "<think>let me see</think>the answer"
    return f"{text} #seed={sampling.seed}"


@contextmanager
def running_server(model: Model) -> Iterator[str]:
    """Serve `model` with uvicorn in a background thread on a free loopback port; yield /v1 URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(model), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start within 10 s"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="module")
def scripted() -> ScriptedBackend:
    return ScriptedBackend(scripted_reply, model="scripted-model")


@pytest.fixture(scope="module")
def url(scripted: ScriptedBackend) -> Iterator[str]:
    model = Model("served", scripted, defaults=Sampling(max_tokens=100))
    with running_server(model) as base_url:
        yield base_url


@pytest.fixture
async def client(url: str):
    async with openai.AsyncOpenAI(base_url=url, api_key=API_KEY, max_retries=0) as sdk:
        yield sdk


async def test_a_chat_completion_comes_back_in_openai_shape(client, scripted):
    reply = await client.chat.completions.create(
        model="served", messages=[{"role": "user", "content": "hello there"}],
        temperature=0.5, top_p=0.9, seed=7, stop="END", extra_body={"top_k": 20},
    )
    assert reply.choices[0].message.content == "hello there #seed=7"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.model == "served"
    assert reply.usage.prompt_tokens == 2 and reply.usage.completion_tokens == 3
    assert reply.usage.total_tokens == 5
    _, sampling = scripted.calls[-1]
    # what the client sent reaches the backend; what it left out comes from the model's defaults
    assert sampling == Sampling(temperature=0.5, top_p=0.9, top_k=20, seed=7, stop=("END",), max_tokens=100)


async def test_max_completion_tokens_and_a_stop_list_are_understood(client, scripted):
    await client.chat.completions.create(
        model="scripted-model", messages=[{"role": "user", "content": "hi"}],
        max_completion_tokens=12, stop=["a", "b"],
    )
    _, sampling = scripted.calls[-1]
    assert sampling.max_tokens == 12 and sampling.stop == ("a", "b")


async def test_n_samples_are_n_choices_with_their_own_seeds(client):
    reply = await client.chat.completions.create(
        model="served", messages=[{"role": "user", "content": "x y"}], n=3, seed=10,
    )
    assert [c.index for c in reply.choices] == [0, 1, 2]
    assert [c.message.content for c in reply.choices] == ["x y #seed=10", "x y #seed=11", "x y #seed=12"]
    assert reply.usage.prompt_tokens == 2  # the prompt counts once
    assert reply.usage.completion_tokens == 9


async def test_reasoning_is_returned_apart_from_the_answer(client):
    reply = await client.chat.completions.create(model="served", messages=[{"role": "user", "content": "think"}])
    message = reply.choices[0].message
    assert message.content == "the answer"
    assert message.model_extra["reasoning_content"] == "let me see"


async def test_a_prompt_over_the_context_length_is_a_400_naming_it(client):
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(model="served", messages=[{"role": "user", "content": "too long"}])
    assert "maximum context length" in caught.value.message
    assert caught.value.code == "context_length_exceeded"


async def test_any_other_failure_is_a_500_not_an_empty_answer(client):
    with pytest.raises(openai.InternalServerError) as caught:
        await client.chat.completions.create(model="served", messages=[{"role": "user", "content": "boom"}])
    assert "the engine broke" in caught.value.message


@pytest.mark.parametrize(
    "extra, field",
    [
        ({"temperature": -1}, "temperature"),
        ({"n": 0}, "n"),
        ({"frobnicate": True}, "frobnicate"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages.0.role"),
    ],
)
async def test_bad_requests_are_400_naming_the_field(client, extra, field):
    body = {"messages": [{"role": "user", "content": "hi"}], **extra}
    with pytest.raises(openai.BadRequestError) as caught:
        await client.post("/chat/completions", body={"model": "served", **body}, cast_to=dict)
    assert field in caught.value.message


async def test_an_unknown_model_is_a_404(client):
    with pytest.raises(openai.NotFoundError) as caught:
        await client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "hi"}])
    assert "'served'" in caught.value.message


async def test_models_lists_the_served_model(client):
    listed = [m.id async for m in client.models.list()]
    assert listed == ["served"]


async def test_concurrent_requests_are_all_answered(client):
    replies = await asyncio.gather(*[
        client.chat.completions.create(model="served", messages=[{"role": "user", "content": f"q{i}"}])
        for i in range(20)
    ])
    assert [r.choices[0].message.content for r in replies] == [f"q{i} #seed=None" for i in range(20)]


# --- the real embedded model -------------------------------------------------------------


@pytest.fixture(scope="module")
def embedded_url() -> Iterator[tuple[str, Model]]:
    from qednano.llm.embedded import EmbeddedBackend, find_gguf

    backend = EmbeddedBackend("SmolLM2-135M-Instruct", find_gguf("SmolLM2-135M-Instruct"))
    backend.load()  # convert (once per machine) and load before the clock of any request starts
    model = Model("smollm2", backend)
    with running_server(model) as base_url:
        yield base_url, model
    asyncio.run(backend.aclose())


QUESTION = [{"role": "user", "content": "Name a prime number."}]


@pytest.mark.slow
async def test_the_embedded_model_answers_through_the_openai_sdk(embedded_url):
    url, model = embedded_url
    async with openai.AsyncOpenAI(base_url=url, api_key=API_KEY, max_retries=0) as sdk:
        reply = await sdk.chat.completions.create(
            model="SmolLM2-135M-Instruct", messages=QUESTION, temperature=0, max_tokens=24,
        )
    direct = await model.complete(QUESTION, Sampling(temperature=0, max_tokens=24))
    assert reply.choices[0].message.content == direct.content != ""
    assert reply.usage.completion_tokens == direct.usage.completion_tokens


@pytest.mark.slow
async def test_the_embedded_model_streams_through_the_openai_sdk(embedded_url):
    url, model = embedded_url
    async with openai.AsyncOpenAI(base_url=url, api_key=API_KEY, max_retries=0) as sdk:
        stream = await sdk.chat.completions.create(
            model="SmolLM2-135M-Instruct", messages=QUESTION, temperature=0, max_tokens=24, stream=True,
            stream_options={"include_usage": True}, tools=[], response_format={"type": "text"},
        )
        chunks = [chunk async for chunk in stream]
    direct = await model.complete(QUESTION, Sampling(temperature=0, max_tokens=24))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == direct.content != ""
    assert chunks[-1].usage.completion_tokens == direct.usage.completion_tokens


@pytest.mark.slow
async def test_our_openai_backend_talks_to_the_embedded_server(embedded_url):
    from qednano.llm.openai_backend import OpenAIBackend
    from qednano.llm.spec import ModelSpec

    url, model = embedded_url
    spec = ModelSpec(name="served-smollm2", backend="openai", model="SmolLM2-135M-Instruct", base_urls=[url])
    remote = OpenAIBackend.from_spec(spec)
    try:
        over_http = await remote.complete(QUESTION, Sampling(temperature=0, max_tokens=24))
        too_long = await remote.complete([{"role": "user", "content": "hi " * 9000}], Sampling(max_tokens=4))
    finally:
        await remote.aclose()
    direct = await model.complete(QUESTION, Sampling(temperature=0, max_tokens=24))
    assert over_http.ok and over_http.content == direct.content != ""
    assert over_http.usage == direct.usage
    assert too_long.error_kind == "context_length"
