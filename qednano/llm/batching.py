"""Continuous batching: many sequences, any prompts, share every forward pass of one decoder.

Each call of `Batcher.advance` does one unit of work: it feeds one chunk of a waiting prompt into
a free slot, then runs one decoding step for every sequence already decoding. So a request that
arrives while others run starts at once (it does not wait for a batch to end), a long generation
never holds up a short one, and a sequence whose caller left is dropped before the next step.
Up to `rows` sequences decode together; later ones wait for a slot.

Every sequence draws from its own random generator, seeded by its request, so a seeded request
gives the same text alone or beside any others. Greedy rows pick the highest logit; a row's
logits do not depend on the other rows (the decoder keeps rows apart), so greedy output equals
decoding the request alone.

The decoder is anything with `reserve`, `release`, `move`, `prefill` and `step` (see decoder.py);
the tests drive this class with a stand-in.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from qednano.llm.types import FinishReason, Sampling

CHUNK = 256  # prompt tokens fed per unit of work, so a long prompt does not stall the others


class Decoder(Protocol):
    def reserve(self, length: int, lengths: dict[int, int]) -> None: ...
    def release(self) -> None: ...
    def move(self, source: int, target: int, length: int) -> None: ...
    def prefill(self, slot: int, ids: list[int], start: int) -> np.ndarray: ...
    def step(self, tokens: np.ndarray, lengths: np.ndarray) -> np.ndarray: ...


def pick(logits: np.ndarray, sampling: Sampling, rng: np.random.Generator) -> int:
    """The next token: the highest logit when greedy, else a draw after temperature, top-k, top-p."""
    if not sampling.temperature:
        return int(np.argmax(logits))
    k = sampling.top_k or 0
    ids = np.argpartition(logits, -k)[-k:] if 0 < k < logits.size else np.arange(logits.size)
    scores = logits[ids].astype(np.float64) / sampling.temperature
    top_p = sampling.top_p or 1.0
    if top_p < 1.0:  # the fewest most likely tokens whose mass reaches top_p (ties broken by id)
        order = np.lexsort((ids, -scores))
        ids, scores = ids[order], scores[order]
    weights = np.exp(scores - scores.max())
    mass = np.cumsum(weights)
    if top_p < 1.0:
        keep = int(np.searchsorted(mass, top_p * mass[-1])) + 1
        mass = mass[:keep]
    chosen = int(np.searchsorted(mass, rng.random() * mass[-1], side="right"))
    return int(ids[min(chosen, len(mass) - 1)])


@dataclass
class Sequence:
    """One request being generated: its prompt, its tokens so far and where its cache lives."""

    ids: list[int]  # the prompt
    sampling: Sampling
    max_new: int
    owner: Any = None  # whatever the caller needs to answer it
    cancelled: threading.Event = field(default_factory=threading.Event)
    tokens: list[int] = field(default_factory=list)
    finish: FinishReason | None = None
    slot: int = -1
    fed: int = 0  # prompt tokens in the cache
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        seed = self.sampling.seed
        self.rng = np.random.default_rng(None if seed is None else seed & 0xFFFFFFFFFFFFFFFF)

    @property
    def cached(self) -> int:
        """Tokens in the cache: the prompt, then every generated token but the last (fed next step)."""
        return self.fed + max(len(self.tokens) - 1, 0)


class Batcher:
    def __init__(self, decoder: Decoder, rows: int, eos: set[int], text: Callable[[list[int]], str]):
        self.decoder = decoder
        self.rows = rows
        self.eos = eos
        self.text = text  # token ids → text, to spot stop strings
        self.decoding: list[Sequence] = []  # sequence i sits in slot i
        self.filling: Sequence | None = None  # its prompt is being fed into slot len(decoding)
        self.waiting: deque[Sequence] = deque()
        self.steps = 0  # decoding steps run, for tests and benchmarks

    def add(self, sequence: Sequence) -> None:
        self.waiting.append(sequence)

    @property
    def busy(self) -> bool:
        return bool(self.decoding or self.filling or self.waiting)

    def sequences(self) -> list[Sequence]:
        return self.decoding + ([self.filling] if self.filling else []) + list(self.waiting)

    def drain(self) -> list[Sequence]:
        """Stop everything; the sequences that were not finished."""
        left = self.sequences()
        self.decoding, self.filling, self.waiting = [], None, deque()
        self.decoder.release()
        return left

    def advance(self) -> list[Sequence]:
        """One prompt chunk and one decoding step; the sequences that finished (cancelled ones vanish)."""
        self._drop_cancelled()
        finished = self._feed()
        if self.decoding:
            finished += self._step()
        if finished:
            self._compact()
        if not self.busy:
            self.decoder.release()
        return finished

    def _drop_cancelled(self) -> None:
        self.waiting = deque(s for s in self.waiting if not s.cancelled.is_set())
        if self.filling and self.filling.cancelled.is_set():
            self.filling = None
        if any(s.cancelled.is_set() for s in self.decoding):
            self.decoding = [s for s in self.decoding if not s.cancelled.is_set()]
            self._compact()

    def _feed(self) -> list[Sequence]:
        if self.filling is None:
            if not self.waiting or len(self.decoding) >= self.rows:
                return []
            self.filling = self.waiting.popleft()
            self.filling.slot = len(self.decoding)
        sequence = self.filling
        chunk = sequence.ids[sequence.fed: sequence.fed + CHUNK]
        self._reserve(sequence.fed + len(chunk))
        logits = self.decoder.prefill(sequence.slot, chunk, sequence.fed)
        sequence.fed += len(chunk)
        if sequence.fed < len(sequence.ids):
            return []
        self.filling = None
        self._push(sequence, pick(logits, sequence.sampling, sequence.rng))
        if sequence.finish:
            return [sequence]
        self.decoding.append(sequence)
        return []

    def _step(self) -> list[Sequence]:
        rows = self.decoding
        lengths = np.array([s.cached for s in rows])
        self._reserve(int(lengths.max()) + 1)
        logits = self.decoder.step(np.array([s.tokens[-1] for s in rows]), lengths)
        self.steps += 1
        for sequence, row in zip(rows, logits, strict=True):
            self._push(sequence, pick(row, sequence.sampling, sequence.rng))
        return [s for s in rows if s.finish]

    def _push(self, sequence: Sequence, token: int) -> None:
        sequence.tokens.append(token)
        stops = sequence.sampling.stop
        if token in self.eos:
            sequence.finish = "stop"
        elif stops and any(s in self.text(sequence.tokens[-4 * max(map(len, stops)) - 1:]) for s in stops if s):
            sequence.finish = "stop"  # a byte-level token may be a quarter of a character: 4 per char
        elif len(sequence.tokens) >= sequence.max_new:
            sequence.finish = "length"

    def _compact(self) -> None:
        """Close the gaps finished rows left: row i moves to slot i (only ever to a lower slot)."""
        self.decoding = [s for s in self.decoding if not s.finish]
        for index, sequence in enumerate(self.decoding):
            if sequence.slot != index:
                self.decoder.move(sequence.slot, index, sequence.cached)
                sequence.slot = index
        if self.filling and self.filling.slot != len(self.decoding):
            self.decoder.move(self.filling.slot, len(self.decoding), self.filling.fed)
            self.filling.slot = len(self.decoding)

    def _reserve(self, length: int) -> None:
        used = {s.slot: s.cached for s in self.decoding}
        if self.filling:
            used[self.filling.slot] = self.filling.fed
        self.decoder.reserve(length, used)
