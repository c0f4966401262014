"""A scripted backend: deterministic replies from a function, for tests and dry runs.

It is a real backend (registered as `backend: scripted`), so whole pipelines run offline
against it. Token counts are whitespace word counts. A reply function may return a
`Completion` itself to script failures, truncations or reasoning. It also continues plain text
(`complete_text`, the server's /v1/completions), which the Backend protocol leaves optional.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from qednano.llm.types import Completion, Messages, Sampling, Usage, split_reasoning

if TYPE_CHECKING:
    from qednano.llm.spec import ModelSpec

Reply = Callable[[Messages, Sampling], "str | Completion"]


def echo(messages: Messages, sampling: Sampling) -> str:
    return messages[-1]["content"]


BUILTIN_SCRIPTS: dict[str, Reply] = {"echo": echo}


class ScriptedBackend:
    def __init__(self, reply: Reply, model: str = "scripted", delay_s: float = 0.0):
        self.reply = reply
        self.model = model
        self.identity = f"scripted|{model}"
        self.delay_s = delay_s
        self.calls: list[tuple[Messages, Sampling]] = []

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> ScriptedBackend:
        if spec.model not in BUILTIN_SCRIPTS:
            raise ValueError(f"scripted model {spec.model!r} unknown; built in: {sorted(BUILTIN_SCRIPTS)}")
        return cls(BUILTIN_SCRIPTS[spec.model], model=spec.model)

    async def complete(self, messages: Messages, sampling: Sampling) -> Completion:
        self.calls.append((messages, sampling))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        out = self.reply(messages, sampling)
        if isinstance(out, Completion):
            return out
        reasoning, content, closed = split_reasoning(out)
        prompt_words = sum(len(m["content"].split()) for m in messages)
        usage = Usage(
            prompt_tokens=prompt_words,
            completion_tokens=len(out.split()),
            reasoning_tokens=len(reasoning.split()),
        )
        return Completion(
            model=self.model,
            content=content,
            reasoning=reasoning,
            reasoning_closed=closed,
            finish_reason="stop" if closed else "length",
            usage=usage,
        )

    async def complete_text(self, prompt: str, sampling: Sampling) -> Completion:
        """A plain continuation: the reply function sees the prompt as one message of role "text"."""
        return await self.complete([{"role": "text", "content": prompt}], sampling)

    async def aclose(self) -> None:
        return None
