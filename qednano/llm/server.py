"""An OpenAI-compatible HTTP server for any `Model`: `qednano serve`.

Any OpenAI client (the `openai` SDK, vLLM's benchmark tools, our own `OpenAIBackend`) can then
use the embedded model, or any other registered model, at `http://127.0.0.1:8000/v1`.

- `POST /v1/chat/completions`: messages, temperature, top_p, top_k, max_tokens (or
  max_completion_tokens), seed, n, stop, reasoning_effort. `top_k` is not an OpenAI parameter:
  the SDK sends it with `extra_body={"top_k": k}`, which lands at the top level of the body.
  Unknown fields are refused (400) rather than silently ignored. No streaming.
- `GET /v1/models`: the one model served.

A failed completion is an HTTP error, never a 200 with empty content: a prompt over the context
length is a 400 whose message says "maximum context length" (as vLLM's does, so clients classify
it as permanent); any other failure is a 500. Settings the request leaves out come from the
model's registry defaults, as for every other caller of `Model`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from qednano.llm.model import Model
from qednano.llm.types import Completion, Sampling, Usage


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str | list[TextPart]

    def as_message(self) -> dict[str, str]:
        text = self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)
        return {"role": self.role, "content": text}


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    seed: int | None = None
    n: int | None = None
    stop: str | list[str] | None = None
    reasoning_effort: str | None = None
    stream: bool | None = None
    user: str | None = None  # accepted and ignored, as OpenAI clients may send it

    def sampling(self) -> Sampling:
        """Only the settings the client sent, so the model's defaults fill the rest."""
        stop = [self.stop] if isinstance(self.stop, str) else self.stop
        given = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "max_tokens": self.max_completion_tokens or self.max_tokens,
            "seed": self.seed,
            "n": self.n,
            "stop": None if stop is None else tuple(stop),
            "reasoning_effort": self.reasoning_effort,
        }
        return Sampling(**{k: v for k, v in given.items() if v is not None})


class APIError(Exception):
    """An error answered in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, kind: str, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.param = status, message, kind, code, param

    def response(self) -> JSONResponse:
        body = {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}
        return JSONResponse({"error": body}, status_code=self.status)


def invalid(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, "invalid_request_error", code=code, param=param)


def invalid_fields(errors: list) -> APIError:
    """A 400 naming the first field pydantic rejected (in the body or in the sampling settings)."""
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"] if p != "body")
    return invalid(f"invalid request: {where}: {first['msg']}", param=where or None)


def failure_error(failed: Completion) -> APIError:
    if failed.error_kind == "context_length":
        return invalid(f"This request exceeds the model's maximum context length: {failed.error}",
                       param="messages", code="context_length_exceeded")
    return APIError(500, f"the model call failed ({failed.error_kind}): {failed.error}", "server_error",
                    code=failed.error_kind)


def completion_body(model: Model, completions: list[Completion]) -> dict:
    choices = []
    for index, done in enumerate(completions):
        message = {"role": "assistant", "content": done.content, "reasoning_content": done.reasoning or None}
        finish = done.finish_reason if done.finish_reason in ("stop", "length") else "stop"
        choices.append({"index": index, "message": message, "finish_reason": finish, "logprobs": None})
    # The prompt is read once however many samples are drawn, as OpenAI bills it.
    usage = sum((d.usage for d in completions), Usage())
    prompt_tokens = completions[0].usage.prompt_tokens
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model.name,
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": prompt_tokens + usage.completion_tokens,
            "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        },
    }


def create_app(model: Model, close_model: bool = False) -> FastAPI:
    """The app; with `close_model` the server closes the model when it shuts down (in its own loop)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if close_model:
            await model.aclose()

    app = FastAPI(title=f"qednano · {model.name}", docs_url=None, redoc_url=None, lifespan=lifespan)
    served = {model.name, model.backend.model}  # clients may ask by registry name or model id

    @app.exception_handler(APIError)
    async def api_error(request: Request, err: APIError) -> JSONResponse:
        return err.response()

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, err: RequestValidationError) -> JSONResponse:
        return invalid_fields(err.errors()).response()

    @app.get("/v1/models")
    async def models() -> dict:
        entry = {"id": model.name, "object": "model", "created": 0, "owned_by": "qednano"}
        return {"object": "list", "data": [entry]}

    @app.post("/v1/chat/completions")
    async def chat(request: ChatRequest) -> dict:
        if request.stream:
            raise invalid("streaming is not supported by this server; send stream=false", param="stream")
        if request.model not in served:
            raise APIError(404, f"model {request.model!r} is not served here; use {model.name!r}",
                           "invalid_request_error", code="model_not_found", param="model")
        try:
            sampling = request.sampling()
        except ValidationError as err:
            raise invalid_fields(err.errors()) from None
        completions = await model.generate([m.as_message() for m in request.messages], sampling)
        if failed := next((c for c in completions if not c.ok), None):
            raise failure_error(failed)
        return completion_body(model, completions)

    return app


def serve(model: Model, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve `model` until interrupted, then close it. Loopback only unless `host` says otherwise."""
    uvicorn.run(create_app(model, close_model=True), host=host, port=port, log_level="info")
