"""What `qednano serve` reads and writes: OpenAI's request and response shapes, and its errors.

Requests may carry every standard field of the chat-completions and completions schemas (and
vLLM's sampling extras). A field this server cannot honour is refused with a 400 naming it only
when its value would change the answer (tools to call, a JSON schema to follow, log-probabilities
to return); at its neutral value (an empty `tools` list, `tool_choice: "none"`,
`response_format: {"type": "text"}`, `logprobs: false`, `frequency_penalty: 0`, ...) it is
accepted and ignored, as are fields that never change the text (`user`, `metadata`, `store`,
`stream_options` beyond `include_usage`, ...). Unknown fields are refused, so a misspelled
setting is not silently dropped.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from qednano.llm.types import Completion, Sampling, Usage

# Fields accepted only at these values: anything else asks for something this server cannot do.
NEUTRAL: dict[str, tuple[Any, ...]] = {
    "frequency_penalty": (0,), "presence_penalty": (0,), "repetition_penalty": (1,), "logit_bias": ({},),
    "logprobs": (False, 0), "top_logprobs": (0,), "tools": ([],), "functions": ([],),
    "tool_choice": ("none", "auto"), "function_call": ("none", "auto"), "response_format": ({"type": "text"},),
    "modalities": (["text"],), "audio": (), "prediction": (), "web_search_options": (), "min_p": (0,),
    "min_tokens": (0,), "echo": (False,), "ignore_eos": (False,), "include_stop_str_in_output": (False,),
    "skip_special_tokens": (True,), "add_generation_prompt": (True,), "continue_final_message": (False,),
    "suffix": ("",), "best_of": (1,), "length_penalty": (1,), "use_beam_search": (False,),
}
# Fields that never change the text generated. chat_template_kwargs fill template variables
# (e.g. enable_thinking) that a template without them ignores, as vLLM's does.
IGNORED = {"user", "metadata", "store", "service_tier", "parallel_tool_calls", "prompt_cache_key",
           "safety_identifier", "stream_options", "verbosity", "chat_template_kwargs",
           "spaces_between_special_tokens", "request_id", "priority"}


class APIError(Exception):
    """An error answered in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, kind: str, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.param = status, message, kind, code, param

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status)


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


def check_extras(extras: dict[str, Any]) -> None:
    """Refuse (400) an unknown field, or a known one whose value this server cannot honour."""
    for name, value in extras.items():
        if name in IGNORED or value is None:
            continue
        if name not in NEUTRAL:
            raise invalid(f"invalid request: {name}: Extra inputs are not permitted", param=name)
        if value not in NEUTRAL[name]:
            neutral = " or ".join(json.dumps(v) for v in NEUTRAL[name]) or "null"
            raise invalid(f"{name}={json.dumps(value)} is not supported by this server, which generates plain "
                          f"text; leave it out or send {neutral}", param=name)


class Sampled(BaseModel):
    """The sampling fields both endpoints share; others land in `model_extra` for `check_extras`."""

    model_config = ConfigDict(extra="allow")

    model: str
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_tokens: int | None = None
    seed: int | None = None
    n: int | None = None
    stop: str | list[str] | None = None
    stream: bool | None = None

    def given(self) -> dict[str, Any]:
        stop = [self.stop] if isinstance(self.stop, str) else self.stop
        top_k = 0 if self.top_k == -1 else self.top_k  # vLLM's "off" is -1, ours is 0
        return {"temperature": self.temperature, "top_p": self.top_p, "top_k": top_k,
                "max_tokens": self.max_tokens, "seed": self.seed, "n": self.n,
                "stop": None if stop is None else tuple(stop)}

    def sampling(self) -> Sampling:
        """Only the settings the client sent, so the model's defaults fill the rest."""
        return Sampling(**{k: v for k, v in self.given().items() if v is not None})

    def include_usage(self) -> bool:
        options = (self.model_extra or {}).get("stream_options") or {}
        return bool(isinstance(options, dict) and options.get("include_usage"))


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None
    name: str | None = None  # accepted and ignored
    refusal: str | None = None  # clients echo earlier assistant messages whole
    tool_calls: list[dict] | None = Field(None, max_length=0)  # this server never calls tools

    def as_message(self) -> dict[str, str]:
        text = self.content if isinstance(self.content, str) else "".join(p.text for p in self.content or [])
        return {"role": "system" if self.role == "developer" else self.role, "content": text}


class ChatRequest(Sampled):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = None
    reasoning_effort: str | None = None

    def given(self) -> dict[str, Any]:
        return {**super().given(), "max_tokens": self.max_completion_tokens or self.max_tokens,
                "reasoning_effort": self.reasoning_effort}


class CompletionRequest(Sampled):
    prompt: str | list[str]
    max_tokens: int | None = 16  # OpenAI's and vLLM's default for plain completions

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else self.prompt


# ---- responses ------------------------------------------------------------------------------


def finish_of(done: Completion) -> str:
    return done.finish_reason if done.finish_reason in ("stop", "length") else "stop"


def usage_body(completions: list[Completion], prompt_tokens: int) -> dict:
    usage = sum((d.usage for d in completions), Usage())
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": prompt_tokens + usage.completion_tokens,
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def envelope(kind: str, name: str) -> dict:
    prefix = "chatcmpl" if kind.startswith("chat") else "cmpl"
    return {"id": f"{prefix}-{uuid.uuid4().hex}", "object": kind, "created": int(time.time()), "model": name}


def chat_body(name: str, completions: list[Completion]) -> dict:
    choices = []
    for index, done in enumerate(completions):
        message = {"role": "assistant", "content": done.content, "reasoning_content": done.reasoning or None}
        choices.append({"index": index, "message": message, "finish_reason": finish_of(done), "logprobs": None})
    # The prompt is read once however many samples are drawn, as OpenAI bills it.
    usage = usage_body(completions, completions[0].usage.prompt_tokens)
    return {**envelope("chat.completion", name), "choices": choices, "usage": usage}


def chat_chunks(name: str, completions: list[Completion], include_usage: bool) -> list[dict]:
    """The answer as vLLM streams it: a role chunk, reasoning and content deltas, a finish chunk per
    choice, then (when asked) one usage chunk with no choices."""
    head = envelope("chat.completion.chunk", name)
    chunks = []
    for index, done in enumerate(completions):
        deltas = [{"role": "assistant", "content": ""}]
        deltas += [{"reasoning_content": done.reasoning}] if done.reasoning else []
        deltas += [{"content": done.content}] if done.content else []
        chunks += [{**head, "choices": [{"index": index, "delta": d, "logprobs": None, "finish_reason": None}]}
                   for d in deltas]
        chunks.append({**head, "choices": [{"index": index, "delta": {}, "logprobs": None,
                                            "finish_reason": finish_of(done)}]})
    if include_usage:
        chunks.append({**head, "choices": [], "usage": usage_body(completions, completions[0].usage.prompt_tokens)})
    return chunks


def text_of(done: Completion) -> str:
    """A plain completion's text: whatever the model wrote, thinking included."""
    return f"{done.reasoning}</think>{done.content}" if done.reasoning else done.content


def text_body(name: str, completions: list[Completion], prompt_tokens: int) -> dict:
    choices = [{"index": i, "text": text_of(d), "finish_reason": finish_of(d), "logprobs": None}
               for i, d in enumerate(completions)]
    return {**envelope("text_completion", name), "choices": choices, "usage": usage_body(completions, prompt_tokens)}


def text_chunks(name: str, completions: list[Completion], prompt_tokens: int, include_usage: bool) -> list[dict]:
    head = envelope("text_completion", name)
    chunks = [{**head, "choices": [{"index": i, "text": text_of(d), "finish_reason": finish_of(d), "logprobs": None}]}
              for i, d in enumerate(completions)]
    if include_usage:
        chunks.append({**head, "choices": [], "usage": usage_body(completions, prompt_tokens)})
    return chunks


def sse(data: dict | str) -> str:
    """One server-sent event, as OpenAI-compatible servers write them."""
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"
