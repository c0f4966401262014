"""Reading an OpenAI-compatible chat response into a `Completion`: streamed chunks or one body.

The OpenAI backend streams (so a hung connection shows as silence between tokens, and a long
proof is not one silent wait). Chunks are read as plain dicts, not through the SDK's types: the
SDK hides the `reasoning_content` / `reasoning` fields that vLLM, SGLang and OpenRouter add.
Whatever arrives, the result is a `Completion` or a `Failure` saying whether a retry could help.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from qednano.llm.types import Completion, FinishReason, Usage, split_reasoning

# vLLM: "maximum context length is 4096 tokens" (older) / "maximum model length of 4096" (V1);
# OpenAI: code context_length_exceeded, "exceeds the context window"; SGLang: "context length".
CONTEXT_LENGTH = re.compile(r"context.length|context window|maximum model length|max_model_len", re.IGNORECASE)
FINISH: dict[str | None, FinishReason] = {"stop": "stop", "length": "length"}


@dataclass
class Failure:
    """Why one attempt failed, and whether another attempt could succeed."""

    kind: str
    message: str
    retryable: bool
    retry_after_s: float | None = None


@dataclass
class StreamReader:
    """Accumulates the chunks of one streamed chat completion (choice 0; we ask for one)."""

    model: str
    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    usage: dict = field(default_factory=dict)
    chunks: int = 0  # chunks that carried a choice
    done: bool = False  # the server sent [DONE]
    pending: bytes = b""  # the start of a line whose end has not arrived yet

    def feed_bytes(self, data: bytes) -> Failure | None:
        """Take the stream's bytes as they arrive: each complete line goes to `feed_line`. The
        lines are split here rather than by the HTTP client, which decodes and splits them one by
        one at several times the cost; `finish()` takes a last line that has no newline."""
        *lines, self.pending = (self.pending + data).split(b"\n")
        for line in lines:
            failure = self.feed_line(line)
            if failure or self.done:
                return failure
        return None

    def finish(self) -> Failure | None:
        """The stream ended: take what is left of its last line."""
        return self.feed_bytes(b"\n") if self.pending else None

    def feed_line(self, line: bytes) -> Failure | None:
        """Take one line of the event stream. OpenAI-compatible servers send each chunk as one
        `data: {json}` line and end with `data: [DONE]`; blank lines separate events and comments
        (`: ping`) keep connections alive. Lines stay bytes: json reads UTF-8 bytes itself."""
        if not line.startswith(b"data:"):
            return None
        data = line[5:].strip()
        if data == b"[DONE]":
            self.done = True
            return None
        try:
            chunk = event_json(data)
        except ValueError:
            return Failure("malformed", f"a stream event is not JSON: {data[:200].decode(errors='replace')!r}",
                           retryable=True)
        return self.feed(chunk)

    def feed(self, chunk: dict) -> Failure | None:
        """Take one chunk; a chunk that reports an error ends the stream as a failure."""
        if not isinstance(chunk, dict):
            return Failure("malformed", f"a stream chunk is not a JSON object: {str(chunk)[:200]!r}", retryable=True)
        if chunk.get("error"):
            return stream_error(chunk["error"])
        if chunk.get("usage"):  # the last chunk (stream_options.include_usage); some servers repeat it
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            self.chunks += 1
            delta = choice.get("delta") or {}
            self.content.append(delta.get("content") or "")
            self.reasoning.append(delta.get("reasoning_content") or delta.get("reasoning") or "")
            self.finish_reason = choice.get("finish_reason") or self.finish_reason
        return None

    def result(self) -> Completion | Failure:
        if not self.chunks:
            return Failure("malformed", "the stream ended without a single choice", retryable=True)
        if self.finish_reason is None and not self.done:
            # Neither a finish reason nor [DONE]: the connection dropped mid-answer.
            return Failure("connection", f"the stream ended mid-answer after {self.chunks} chunks", retryable=True)
        return completion_from(self.model, "".join(self.content), "".join(self.reasoning), self.finish_reason, self.usage)


def event_json(data: bytes) -> object:
    """An event's JSON; a byte that is not UTF-8 is read as the replacement character."""
    try:
        return json.loads(data)
    except UnicodeDecodeError:
        return json.loads(data.decode("utf-8", errors="replace"))


def stream_error(error: object) -> Failure:
    """An error event inside a stream (vLLM sends one when generation fails after the headers)."""
    message = error.get("message") if isinstance(error, dict) else None
    text = str(message or error)[:500]
    if CONTEXT_LENGTH.search(text):
        return Failure("context_length", f"error in the stream: {text}", retryable=False)
    return Failure("stream_error", f"error in the stream: {text}", retryable=True)


def parse_completion(model: str, raw: bytes) -> Completion | Failure:
    """A Completion from a whole chat.completions JSON body (a server that did not stream)."""
    try:
        body = json.loads(raw)
    except ValueError:
        return Failure("malformed", f"response is not JSON: {raw[:200]!r}", retryable=True)
    choices = body.get("choices") if isinstance(body, dict) else None
    if not choices or not isinstance(choices[0], dict) or not isinstance(choices[0].get("message"), dict):
        return Failure("malformed", f"response has no choices[0].message: {raw[:200]!r}", retryable=True)
    message = choices[0]["message"]
    reasoning = message.get("reasoning_content") or message.get("reasoning") or ""
    return completion_from(model, message.get("content") or "", reasoning, choices[0].get("finish_reason"),
                           body.get("usage") or {})


def completion_from(model: str, content: str, reasoning: str, finish_reason: str | None, usage: dict) -> Completion | Failure:
    """The Completion of an answer's text, thinking, finish reason and usage, however they arrived."""
    finish = FINISH.get(finish_reason, "other")
    content, reasoning = content.strip(), reasoning.strip()
    if reasoning:
        # The server split the thinking off; with no answer and a length stop it never ended.
        closed = bool(content) or finish != "length"
    else:
        reasoning, content, closed = split_reasoning(content)
    if not content and not reasoning and finish != "length":
        return Failure("empty", "the model returned no text", retryable=False)
    details = usage.get("completion_tokens_details") or {}
    return Completion(
        model=model,
        content=content,
        reasoning=reasoning,
        reasoning_closed=closed,
        finish_reason=finish,
        usage=Usage(
            prompt_tokens=usage.get("prompt_tokens") or 0,
            completion_tokens=usage.get("completion_tokens") or 0,
            reasoning_tokens=details.get("reasoning_tokens") or 0,
        ),
    )
