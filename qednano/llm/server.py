"""An OpenAI-compatible HTTP server for any `Model`: `qednano serve`.

Any OpenAI client (the `openai` SDK, vLLM's benchmark tools, lm-eval-harness, the QED-Nano
reference harness, our own `OpenAIBackend`) can then use the embedded model, or any other
registered model, at `http://127.0.0.1:8000/v1`.

- `POST /v1/chat/completions`: the whole chat-completions schema (see server_api.py for what is
  honoured, ignored or refused). `top_k` is not an OpenAI parameter: the SDK sends it with
  `extra_body={"top_k": k}`, which lands at the top level of the body.
- `POST /v1/completions`: plain text continuation, for backends that can continue raw text
  (`complete_text`); others answer 400 and point to chat.
- `stream: true` answers as server-sent events in vLLM's shape, with a final usage chunk when
  `stream_options.include_usage` is set. The backend returns whole completions, so the events
  carry the answer once it is done; until then a comment line every second keeps the
  connection alive and shows whether the client is still there.
- `GET /v1/models`: the one model served.

A failed completion is an HTTP error, never a 200 with empty content: a prompt over the context
length is a 400 whose message says "maximum context length" (as vLLM's does, so clients classify
it as permanent); any other failure is a 500 (inside a stream: an error event). Settings the
request leaves out come from the model's registry defaults, as for every other caller of `Model`.

Nobody waits for an answer nobody reads: every generation runs as a task that is cancelled when
its client disconnects, and on shutdown (SIGTERM, Ctrl-C) requests still running get
`GRACE_S` seconds before they are cancelled. Requests are never serialised here; how concurrent
generations share the processor is the backend's business.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError

from qednano.llm.model import Model
from qednano.llm.server_api import (
    APIError,
    ChatRequest,
    CompletionRequest,
    Sampled,
    chat_body,
    chat_chunks,
    check_extras,
    failure_error,
    invalid,
    invalid_fields,
    sse,
    text_body,
    text_chunks,
)
from qednano.llm.types import Completion, Sampling

log = logging.getLogger("uvicorn.error")  # uvicorn prints this logger: cancellations show in `qednano serve`
GRACE_S = 3  # seconds running requests get on shutdown before they are cancelled
CLOSE_S = 5.0  # seconds the backend gets to close after that
KEEPALIVE_S = 1.0  # seconds between keep-alive comments while a streamed answer is generated
Generation = Callable[[], Awaitable[list[Completion]]]


async def until_disconnected(request: Request) -> None:
    """Return when the client goes away. The body has been read, so the next ASGI message is the
    disconnect (uvicorn sends it when the connection drops)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(request: Request, generate: Generation) -> list[Completion] | None:
    """Run the generation; cancel it (and return None) if the client leaves first."""
    work = asyncio.ensure_future(generate())
    watch = asyncio.ensure_future(until_disconnected(request))
    try:
        await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
        if work.done():
            return work.result()
        log.info("client %s left: generation cancelled", request.client)
        return None
    finally:
        for task in (work, watch):  # also when this handler is cancelled (shutdown)
            task.cancel()
        await asyncio.gather(work, watch, return_exceptions=True)


async def streamed(generate: Generation, events: Callable[[list[Completion]], list[dict]]) -> AsyncIterator[str]:
    """Keep-alive comments while generating, then the answer's events and [DONE]. When the client
    leaves, the next write fails, the stream is closed, and `finally` cancels the generation."""
    work = asyncio.ensure_future(generate())
    try:
        while not work.done():
            await asyncio.wait({work}, timeout=KEEPALIVE_S)
            if not work.done():
                yield ": generating\n\n"
        completions = work.result()
        if failed := next((c for c in completions if not c.ok), None):
            yield sse(failure_error(failed).body())
        else:
            for chunk in events(completions):
                yield sse(chunk)
        yield sse("[DONE]")
    finally:
        if not work.done():
            log.info("client left during a streamed answer: generation cancelled")
            work.cancel()
        with suppress(asyncio.CancelledError):
            await work


async def continue_text(model: Model, prompt: str, sampling: Sampling) -> list[Completion]:
    """`sampling.n` plain continuations of `prompt`, counted in the model's meter like chat calls."""
    settings = sampling.merged_over(model.defaults)
    runs = [model.backend.complete_text(prompt, settings.for_sample(i)) for i in range(settings.n)]
    completions = list(await asyncio.gather(*runs))
    for done in completions:
        model.meter.record(done)
    return completions


def create_app(model: Model, close_model: bool = False) -> FastAPI:
    """The app; with `close_model` the server closes the model when it shuts down (in its own loop)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if close_model:
            try:  # a backend still finishing a cancelled generation must not hold the exit
                await asyncio.wait_for(model.aclose(), CLOSE_S)
            except TimeoutError:
                log.warning("the model did not close within %g s; exiting anyway", CLOSE_S)

    app = FastAPI(title=f"qednano · {model.name}", docs_url=None, redoc_url=None, lifespan=lifespan)
    served = {model.name, model.backend.model}  # clients may ask by registry name or model id

    @app.exception_handler(APIError)
    async def api_error(request: Request, err: APIError) -> JSONResponse:
        return err.response()

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, err: RequestValidationError) -> JSONResponse:
        return invalid_fields(err.errors()).response()

    def checked(body: Sampled) -> Sampling:
        check_extras(body.model_extra or {})
        if body.model not in served:
            raise APIError(404, f"model {body.model!r} is not served here; use {model.name!r}",
                           "invalid_request_error", code="model_not_found", param="model")
        try:
            return body.sampling()
        except ValidationError as err:
            raise invalid_fields(err.errors()) from None

    async def answer(request: Request, body: Sampled, generate: Generation,
                     events: Callable[[list[Completion]], list[dict]], whole: Callable[[list[Completion]], dict]):
        if body.stream:
            return StreamingResponse(streamed(generate, events), media_type="text/event-stream")
        completions = await unless_disconnected(request, generate)
        if completions is None:
            return Response(status_code=499)  # nobody is listening; nginx's code for it
        if failed := next((c for c in completions if not c.ok), None):
            raise failure_error(failed)
        return whole(completions)

    @app.get("/v1/models")
    async def models() -> dict:
        entry = {"id": model.name, "object": "model", "created": 0, "owned_by": "qednano"}
        return {"object": "list", "data": [entry]}

    @app.post("/v1/chat/completions")
    async def chat(body: ChatRequest, request: Request):
        sampling = checked(body)
        messages = [m.as_message() for m in body.messages]
        return await answer(request, body, lambda: model.generate(messages, sampling),
                            lambda done: chat_chunks(model.name, done, body.include_usage()),
                            lambda done: chat_body(model.name, done))

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, request: Request):
        sampling = checked(body)
        if not hasattr(model.backend, "complete_text"):
            raise invalid(f"{model.name} takes chat messages only; use /v1/chat/completions", param="prompt")

        async def generate() -> list[Completion]:
            runs = [continue_text(model, prompt, sampling) for prompt in body.prompts()]
            return [done for batch in await asyncio.gather(*runs) for done in batch]

        def prompt_tokens(done: list[Completion]) -> int:
            per_prompt = len(done) // len(body.prompts())
            return sum(d.usage.prompt_tokens for d in done[::per_prompt])

        return await answer(request, body, generate,
                            lambda done: text_chunks(model.name, done, prompt_tokens(done), body.include_usage()),
                            lambda done: text_body(model.name, done, prompt_tokens(done)))

    return app


def serve(model: Model, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve `model` until interrupted (Ctrl-C or SIGTERM), then close it. Loopback only unless
    `host` says otherwise."""
    uvicorn.run(create_app(model, close_model=True), host=host, port=port, log_level="info",
                timeout_graceful_shutdown=GRACE_S)
