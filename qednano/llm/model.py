"""`Model`: a backend plus what the toolkit adds on top of every call.

Defaults from the model's registry entry are merged into each request, samples are fanned out
(sample i gets seed + i and its own cache entry), finished calls are cached durably, costs are
computed from the registry's prices, and every call is counted in a `Meter` that run manifests
read. Scaffolds, graders and trainers all talk to a `Model`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from qednano.llm.backend import Backend
from qednano.llm.cache import CallCache, call_key
from qednano.llm.types import Completion, Messages, Prices, Sampling, Usage, reopen_prompt_thinking

TokenCounter = Callable[[str], int]


@dataclass
class Meter:
    """Running totals of a model's calls; cached answers cost nothing new."""

    calls: int = 0
    cached: int = 0
    failed: int = 0
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0

    def record(self, completion: Completion) -> None:
        if completion.cached:
            self.cached += 1
            return
        self.calls += 1
        self.failed += 0 if completion.ok else 1
        self.usage = self.usage + completion.usage
        self.cost_usd += completion.cost_usd

    def __add__(self, other: Meter) -> Meter:
        """Two meters' totals in one (the same model's calls in several processes)."""
        return Meter(calls=self.calls + other.calls, cached=self.cached + other.cached,
                     failed=self.failed + other.failed, usage=self.usage + other.usage,
                     cost_usd=self.cost_usd + other.cost_usd)

    def as_dict(self) -> dict:
        return {
            "calls": self.calls,
            "cached": self.cached,
            "failed": self.failed,
            **self.usage.model_dump(),
            "cost_usd": round(self.cost_usd, 6),
        }


class Model:
    def __init__(
        self,
        name: str,
        backend: Backend,
        defaults: Sampling | None = None,
        prices: Prices | None = None,
        cache: CallCache | None = None,
        thinking_in_prompt: bool = False,
        count_tokens: TokenCounter | None = None,
    ):
        self.name = name
        self.thinking_in_prompt = thinking_in_prompt  # see ModelSpec.thinking_in_prompt
        self.count_tokens = count_tokens  # the model's tokenizer, when known
        self.backend = backend
        self.defaults = defaults
        self.prices = prices or Prices()
        self.cache = cache
        self.meter = Meter()

    async def generate(self, messages: Messages, sampling: Sampling | None = None) -> list[Completion]:
        """`sampling.n` completions for one conversation, in sample order."""
        settings = (sampling or Sampling()).merged_over(self.defaults)
        samples = [self._one(messages, settings.for_sample(i), i) for i in range(settings.n)]
        return list(await asyncio.gather(*samples))

    async def complete(self, messages: Messages, sampling: Sampling | None = None, sample_index: int = 0) -> Completion:
        """One completion: sample `sample_index` of these settings (n is ignored)."""
        settings = (sampling or Sampling()).merged_over(self.defaults)
        return await self._one(messages, settings.for_sample(sample_index), sample_index)

    async def _one(self, messages: Messages, sampling: Sampling, index: int) -> Completion:
        key = call_key(self.backend.identity, messages, sampling, index)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            done = self.read(hit.model_copy(update={"cached": True, "sample_index": index}))
            self.meter.record(done)
            return done
        done = await self.backend.complete(messages, sampling)
        done = done.model_copy(update={"sample_index": index, "cost_usd": self.prices.cost(done.usage)})
        if self.cache is not None and done.ok:
            self.cache.put(key, self.backend.identity, done)  # as the backend gave it: `read` is redone on hits
        done = self.read(done)
        self.meter.record(done)
        return done

    def read(self, done: Completion) -> Completion:
        """What this model entry says about a backend's completion: where thinking was opened,
        and how many tokens the reasoning took when the server did not say."""
        if self.thinking_in_prompt:
            done = reopen_prompt_thinking(done)
        if done.reasoning and not done.usage.reasoning_tokens:
            # Servers (vLLM) often leave reasoning_tokens empty: count them, or say "unknown".
            counted = self.count_tokens(done.reasoning) if self.count_tokens else None
            done = done.model_copy(update={"usage": done.usage.model_copy(update={"reasoning_tokens": counted})})
        return done

    async def aclose(self) -> None:
        await self.backend.aclose()
