"""A stand-in for the embedded decoder that behaves like a model with a key/value cache.

Each slot caches token ids instead of keys and values; the logits after a position depend on
every token cached in that slot so far (and on nothing else), as a real model's do. So a batching
mistake (a row reading another row's cache, a wrong length, a slot moved without its contents, a
cache grown without keeping a row) changes the tokens that come out, and outputs of sequences
run together can be compared with the same sequences run alone.
"""

from __future__ import annotations

import threading
import time

import numpy as np

VOCAB = 64
EMPTY = -1


def next_token(history: np.ndarray, end: int | None) -> int:
    """The token this fake model predicts after `history`; `end` ends texts that add up right."""
    token = int((history * np.arange(1, len(history) + 1)).sum() * 7 + len(history)) % (VOCAB - 3) + 3
    if end is not None and token % 13 == 0:
        return end
    return token


class HistoryDecoder:
    def __init__(self, rows: int, end: int | None = None, step_s: float = 0.0):
        self.rows = rows
        self.end = end  # the end-of-sequence id it sometimes predicts (None: never)
        self.step_s = step_s  # time a step takes, so tests can act while a generation runs
        self.cache = np.full((rows, 0), EMPTY)
        self.steps: list[int] = []  # the batch size of every step
        self.stepped = threading.Event()  # set after every step

    def reserve(self, length: int, lengths: dict[int, int]) -> None:
        if length <= self.cache.shape[1]:
            return
        grown = np.full((self.rows, length), EMPTY)
        for slot, used in lengths.items():  # only what the batcher says is in use survives
            grown[slot, :used] = self.cache[slot, :used]
        self.cache = grown

    def release(self) -> None:
        self.cache = np.full((self.rows, 0), EMPTY)

    def move(self, source: int, target: int, length: int) -> None:
        self.cache[target, :length] = self.cache[source, :length]

    def prefill(self, slot: int, ids: list[int], start: int) -> np.ndarray:
        self._write(slot, start, ids)
        return self._logits(slot, start + len(ids))

    def step(self, tokens: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        time.sleep(self.step_s)
        self.steps.append(len(tokens))
        for slot, (token, length) in enumerate(zip(tokens, lengths, strict=True)):
            self._write(slot, int(length), [int(token)])
        logits = np.stack([self._logits(slot, int(length) + 1) for slot, length in enumerate(lengths)])
        self.stepped.set()
        return logits

    def _write(self, slot: int, start: int, ids: list[int]) -> None:
        if start + len(ids) > self.cache.shape[1]:
            raise IndexError(f"slot {slot}: writing position {start + len(ids) - 1} past the reserved cache")
        self.cache[slot, start:start + len(ids)] = ids

    def _logits(self, slot: int, length: int) -> np.ndarray:
        history = self.cache[slot, :length]
        if (history == EMPTY).any():
            raise AssertionError(f"slot {slot} reads positions that were never written: {history.tolist()}")
        logits = np.linspace(0.0, 1.0, VOCAB)  # a spread, so sampling has choices
        logits[next_token(history, self.end)] = 5.0
        return logits
