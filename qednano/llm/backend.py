"""The one async interface every model backend implements."""

from __future__ import annotations

from typing import Protocol

from qednano.llm.types import Completion, Messages, Sampling


class Backend(Protocol):
    """Something that turns chat messages into one completion.

    `identity` names everything about the endpoint that changes its answers (backend kind,
    served model, server addresses); it is part of the cache key. `complete` never raises for a
    failed call: it returns `Completion.failure(...)` so the failure can be recorded.
    `sampling.n` is always 1 here; the `Model` wrapper fans out samples.

    A backend that can also continue raw text, with no chat template, adds
    `async def complete_text(self, prompt: str, sampling: Sampling) -> Completion`; the server's
    /v1/completions endpoint uses it when it is there.
    """

    identity: str
    model: str

    async def complete(self, messages: Messages, sampling: Sampling) -> Completion: ...

    async def aclose(self) -> None: ...
