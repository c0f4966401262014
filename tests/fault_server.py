"""A scriptable OpenAI-compatible server on loopback, for fault-injection tests.

Each request to `/v1/chat/completions` takes the next `Fault` from the server's script; when the
script is empty, `respond(body)` decides (by default a deterministic echo). A reply to a request
with `stream: true` is sent as server-sent events, chunk by chunk as vLLM sends them (with a final
usage chunk when `stream_options.include_usage` asks for one); the stream faults below (stalls,
cuts, error events, garbage) act on such streams. Every request is
recorded with its JSON body, headers and arrival time, and the server counts how many requests
it held at once, so tests can assert what the client sent, how often, how fast and how many at a
time. It is a real aiohttp server on a free port, so the client under test runs its real
transport, timeouts and connection handling.

    async with FaultServer([status(503), reply("fine")]) as server:
        backend = OpenAIBackend("m", [server.url])
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from aiohttp import web

MODEL_ID = "fault-model"


@dataclass(frozen=True)
class Fault:
    """What the server does with one request. Build these with the helpers below."""

    kind: str
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    body: str = ""
    chunk_delay_s: float = 0.0  # streams: pause before each chunk
    stall_after: int | None = None  # streams: after this many chunks, fall silent for `stall_s`
    stall_s: float = 0.0
    stream_end: str = "done"  # streams: "done" ([DONE]), "cut" (close mid-answer), "error", "garbage"


def completion_body(
    content: str | None,
    *,
    reasoning: str | None = None,
    reasoning_field: str = "reasoning_content",
    finish_reason: str | None = "stop",
    usage: dict | None = None,
) -> dict:
    message: dict = {"role": "assistant", "content": content}
    if reasoning is not None:
        message[reasoning_field] = reasoning
    body: dict = {
        "id": "chatcmpl-fault",
        "object": "chat.completion",
        "created": 0,
        "model": MODEL_ID,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
    }
    if usage is not None:
        body["usage"] = usage
    return body


def reply(content: str | None = "ok", *, delay_s: float = 0.0, **fields) -> Fault:
    """A well-formed completion (fields as in `completion_body`), after `delay_s` seconds."""
    return Fault("reply", delay_s=delay_s, body=json.dumps(completion_body(content, **fields)))


def stall(after_chunks: int = 2, seconds: float = 30.0, content: str = "a long proof that stops") -> Fault:
    """A stream that sends `after_chunks` chunks and then nothing for `seconds`: a hung server."""
    return Fault("reply", body=json.dumps(completion_body(content)), stall_after=after_chunks, stall_s=seconds)


def slow_stream(content: str, chunk_delay_s: float) -> Fault:
    """A stream whose tokens keep coming, `chunk_delay_s` apart: never idle, possibly over time."""
    return Fault("reply", body=json.dumps(completion_body(content)), chunk_delay_s=chunk_delay_s)


def cut_stream(content: str = "a proof cut off in the middle") -> Fault:
    """A stream that closes cleanly after some chunks, with no finish reason and no [DONE]."""
    return Fault("reply", body=json.dumps(completion_body(content)), stream_end="cut")


def error_event(message: str = "the engine died") -> Fault:
    """A stream that reports an error in an event after some chunks, as vLLM does."""
    return Fault("reply", body=json.dumps(completion_body(message)), stream_end="error")


def garbage_event() -> Fault:
    """A stream whose last event's data is not JSON."""
    return Fault("reply", body=json.dumps(completion_body("fine until now")), stream_end="garbage")


def status(code: int, message: str = "injected failure", *, retry_after: str | None = None,
           retry_after_ms: str | None = None) -> Fault:
    headers = {}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    if retry_after_ms is not None:
        headers["retry-after-ms"] = retry_after_ms
    body = {"error": {"message": message, "type": "injected", "code": code}}
    return Fault("status", status=code, headers=headers, body=json.dumps(body))


def hang(seconds: float = 30.0) -> Fault:
    """Say nothing for `seconds` (or until the server stops): the client's timeout must fire."""
    return Fault("hang", delay_s=seconds)


def reset() -> Fault:
    """Drop the connection before any response byte: the client sees a reset."""
    return Fault("reset")


def abort_mid_body() -> Fault:
    """Send headers and half of a promised body, then drop the connection."""
    return Fault("abort_mid_body", body=json.dumps(completion_body("never finished")))


def invalid_json() -> Fault:
    return Fault("invalid_json", body="<html>502 Bad Gateway from some proxy</html>")


def truncated_json() -> Fault:
    """A complete HTTP response whose JSON stops half-way (a proxy that cut the body)."""
    whole = json.dumps(completion_body("cut short"))
    return Fault("truncated_json", body=whole[: len(whole) // 2])


def missing_choices() -> Fault:
    return Fault("missing_choices", body=json.dumps({"id": "x", "object": "chat.completion", "model": MODEL_ID}))


CONTEXT_LENGTH_WORDING = {
    # vLLM's OpenAI server (400, type BadRequestError)
    "vllm": "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens "
            "(4000 in the messages, 1000 in the completion). Please reduce the length of the messages or completion.",
    # OpenAI's API (400, code context_length_exceeded)
    "openai": "Your input exceeds the context window of this model. Please adjust your input and try again.",
}


def context_length(wording: str = "vllm") -> Fault:
    code = "context_length_exceeded" if wording == "openai" else 400
    body = {"error": {"message": CONTEXT_LENGTH_WORDING[wording], "type": "invalid_request_error", "code": code}}
    return Fault("status", status=400, body=json.dumps(body))


def auth_echo(code: int = 401) -> Fault:
    """An error whose body repeats the Authorization header it got, as some careless proxies do."""
    return Fault("auth_echo", status=code)


def last_user_text(body: dict) -> str:
    return body["messages"][-1]["content"]


def echo(body: dict, delay_s: float = 0.0) -> Fault:
    """The default: a deterministic reply naming the prompt, with word-count usage."""
    text = f"echo: {last_user_text(body)}"
    usage = {"prompt_tokens": len(last_user_text(body).split()), "completion_tokens": len(text.split()),
             "total_tokens": 0}
    return reply(text, usage=usage, delay_s=delay_s)


@dataclass
class Received:
    body: dict
    headers: dict[str, str]
    arrived: float  # time.monotonic() when the request came in


class FaultServer:
    def __init__(self, script: Iterable[Fault] = (), respond: Callable[[dict], Fault] = echo):
        self.script: deque[Fault] = deque(script)
        self.respond = respond
        self.requests: list[Received] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.port = 0
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def push(self, *faults: Fault) -> None:
        self.script.extend(faults)

    def arrivals(self) -> list[float]:
        return [r.arrived for r in self.requests]

    async def __aenter__(self) -> FaultServer:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        # Handlers of hung requests return when the server stops, so a short shutdown suffices.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        fault = self.script.popleft() if self.script else self.respond(body)
        self.requests.append(Received(body, dict(request.headers), time.monotonic()))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._act(request, fault, bool(body.get("stream")),
                                   bool((body.get("stream_options") or {}).get("include_usage")))
        finally:
            self.in_flight -= 1

    async def _act(self, request: web.Request, fault: Fault, stream: bool = False,
                   include_usage: bool = False) -> web.StreamResponse:
        if fault.delay_s:
            try:
                await asyncio.wait_for(self._stopping.wait(), fault.delay_s)
            except TimeoutError:
                pass  # the normal case: the delay ran out before the server stopped
        if fault.kind in ("reset", "abort_mid_body"):
            return await self._drop(request, fault)
        if fault.kind == "auth_echo":
            seen = request.headers.get("Authorization", "")
            body = json.dumps({"error": {"message": f"rejected request with {seen}", "code": fault.status}})
            return web.Response(status=fault.status, text=body, content_type="application/json")
        if fault.kind == "hang":
            return web.Response(status=504, text="the client should have given up by now")
        if fault.kind == "reply" and stream:
            return await self._stream(request, fault, include_usage)
        return web.Response(status=fault.status, text=fault.body, headers=fault.headers,
                            content_type="application/json")

    async def _drop(self, request: web.Request, fault: Fault) -> web.StreamResponse:
        transport = request.transport
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        if fault.kind == "abort_mid_body":
            data = fault.body.encode()
            response.content_length = len(data)
            await response.prepare(request)
            await response.write(data[: len(data) // 2])
        if transport is not None:
            transport.abort()
        return response

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            pass  # the normal case: the pause ran out before the server stopped

    async def _stream(self, request: web.Request, fault: Fault, include_usage: bool) -> web.StreamResponse:
        """The reply in `fault.body` as server-sent events: role, reasoning, content, finish, usage."""
        response = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for index, data in enumerate(stream_chunks(json.loads(fault.body), include_usage)):
            if fault.stall_after is not None and index == fault.stall_after:
                await self._pause(fault.stall_s)
            if fault.chunk_delay_s:
                await self._pause(fault.chunk_delay_s)
            if fault.stream_end != "done" and data["choices"] and data["choices"][0]["finish_reason"]:
                break  # the stream faults replace the end of the answer
            await response.write(f"data: {json.dumps(data)}\n\n".encode())
        if fault.stream_end == "error":
            error = {"error": {"message": "injected stream error", "type": "internal_error", "code": 500}}
            await response.write(f"data: {json.dumps(error)}\n\n".encode())
        elif fault.stream_end == "garbage":
            await response.write(b"data: {not json at all\n\n")
        elif fault.stream_end == "done":
            await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def stream_chunks(body: dict, include_usage: bool) -> list[dict]:
    """A completion body cut into chat.completion.chunk events, a few words per chunk."""
    choice = body["choices"][0]
    message = choice["message"]

    def chunk(delta: dict, finish: str | None = None) -> dict:
        return {"id": body["id"], "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    chunks = [chunk({"role": "assistant", "content": ""})]
    for name in ("reasoning_content", "reasoning", "content"):
        words = (message.get(name) or "").split(" ")
        pieces = [" ".join(words[i:i + 3]) + (" " if i + 3 < len(words) else "") for i in range(0, len(words), 3)]
        chunks += [chunk({name: piece}) for piece in pieces if piece]
    chunks.append(chunk({}, choice["finish_reason"]))
    if include_usage and body.get("usage"):
        chunks.append({**chunk({}), "choices": [], "usage": body["usage"]})
    return chunks
