"""The records that cross the model boundary: chat messages, sampling settings, completions.

Every backend (OpenAI-compatible HTTP, embedded) takes `Messages` + `Sampling` and returns a
`Completion`. A failed call is a `Completion` with `error` set, never an empty string: callers
check `.ok` and record failures instead of scoring them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}
Messages = list[Message]

ReasoningEffort = Literal["minimal", "low", "medium", "high"]


class Sampling(BaseModel):
    """Sampling settings. None means "the backend's default"; only set fields are sent."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    temperature: float | None = Field(None, ge=0, description="Softmax temperature; 0 is greedy.")
    top_p: float | None = Field(None, gt=0, le=1, description="Nucleus sampling mass.")
    top_k: int | None = Field(None, ge=0, description="Keep the k most likely tokens (0 = off).")
    max_tokens: int | None = Field(None, gt=0, description="Cap on generated tokens, reasoning included.")
    seed: int | None = Field(None, description="Base seed; sample i uses seed + i.")
    n: int = Field(1, ge=1, description="Independent samples per prompt.")
    stop: tuple[str, ...] = Field((), description="Strings that end generation (not included).")
    reasoning_effort: ReasoningEffort | None = Field(None, description="For reasoning models.")
    thinking: bool | None = Field(
        None, description="Switch the chat template's thinking on or off where the server has one (vLLM, SGLang)."
    )

    def merged_over(self, defaults: Sampling | None) -> Sampling:
        """These settings, with unset fields filled from `defaults` (e.g. a model's YAML)."""
        if defaults is None:
            return self
        mine = self.model_dump(exclude_unset=True)
        return defaults.model_copy(update=mine)

    def for_sample(self, index: int) -> Sampling:
        """The settings of one sample of n: a single draw with its own seed."""
        seed = None if self.seed is None else self.seed + index
        return self.model_copy(update={"n": 1, "seed": seed})


class Usage(BaseModel):
    """Token counts. `completion_tokens` includes `reasoning_tokens` (as OpenAI counts them).

    `reasoning_tokens` is None when the split is unknown: the model reasoned but neither the
    server nor a known tokenizer said how many tokens that took. A sum with an unknown part is
    unknown, never a silent 0.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int | None = 0

    def __add__(self, other: Usage) -> Usage:
        unknown = self.reasoning_tokens is None or other.reasoning_tokens is None
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            reasoning_tokens=None if unknown else self.reasoning_tokens + other.reasoning_tokens,
        )


FinishReason = Literal["stop", "length", "error", "other"]


class Completion(BaseModel):
    """One model response, or one recorded failure (`error` set, `content` empty)."""

    model: str
    content: str = ""
    reasoning: str = ""
    reasoning_closed: bool = True  # False when the model opened a thinking block and never closed it
    finish_reason: FinishReason = "stop"
    usage: Usage = Field(default_factory=Usage)
    latency_s: float = 0.0
    cost_usd: float = 0.0
    error: str | None = None
    error_kind: str | None = None  # e.g. "context_length", "http_429", "timeout", "malformed"
    cached: bool = False
    sample_index: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def failure(cls, model: str, kind: str, message: str, latency_s: float = 0.0) -> Completion:
        return cls(model=model, finish_reason="error", error=message, error_kind=kind, latency_s=latency_s)


def split_reasoning(text: str, opened_in_prompt: bool = False) -> tuple[str, str, bool]:
    """Split raw model text into (reasoning, content, closed) at the last `</think>`.

    Models that think in-band write `<think> ... </think>` before their answer. Some templates
    open the block in the prompt (`opened_in_prompt`, a model entry's `thinking_in_prompt`), so
    the text holds only the closing tag, or none at all when generation was cut off. A block that
    is opened but never closed means the answer was never written: content is "" and closed False.
    """
    open_tag, close_tag = "<think>", "</think>"
    if close_tag in text:
        head, _, tail = text.rpartition(close_tag)
        return head.replace(open_tag, "", 1).strip(), tail.strip(), True
    if opened_in_prompt:
        return text.strip(), "", False
    if text.lstrip().startswith(open_tag):
        return text.lstrip()[len(open_tag):].strip(), "", False
    return "", text.strip(), True


def proof_text(text: str, opened_in_prompt: bool = False) -> str:
    """The proof in raw generated text: what follows the reasoning, "" when none was written.

    The one rule for eval, scaffolds and RL rewards alike: with thinking opened in the prompt, no
    `</think>` means the model never stopped reasoning, so there is no proof (it scores 0).
    """
    _, content, closed = split_reasoning(text, opened_in_prompt)
    return content if closed else ""


def reopen_prompt_thinking(done: Completion) -> Completion:
    """A backend's completion read with thinking opened in the prompt.

    When the server did not separate any reasoning, the text it returned as content had no
    `</think>` (backends split at it), so with the block opened in the prompt that text is
    reasoning that never closed: no proof. Completions with reasoning separated are unchanged.
    """
    if not done.ok or done.reasoning or not done.content:
        return done
    return done.model_copy(update={"reasoning": done.content, "content": "", "reasoning_closed": False})


class Prices(BaseModel):
    """US dollars per million tokens. Reasoning tokens are billed as output."""

    input: float = 0.0
    output: float = 0.0

    def cost(self, usage: Usage) -> float:
        return (usage.prompt_tokens * self.input + usage.completion_tokens * self.output) / 1e6
