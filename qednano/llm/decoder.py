"""The embedded model's forward pass on onnxruntime, with one key/value-cache slot per sequence.

The converted model (onnxruntime-genai's builder) attends with GroupQueryAttention. That operator
reads each row's length from its own attention mask row (the sum) and applies the rotary position
itself, so rows of different lengths decode together in one batch: row b keeps its keys and values
at positions 0..len_b-1 of the cache and attends to those only. No left padding, no wrong outputs
from padding. Past and present are bound to the same buffer, so a step writes one position per row
and copies nothing.

Slots are rows of that buffer. The decoding rows sit in slots 0..n-1 (a step runs the first n
rows); a prompt is fed into a slot of its own, alone, in chunks; a finished row's slot is filled by
moving another row into it. The cache grows by doubling when a row needs more room, and is freed
when nothing runs. Buffers come from calloc, so slots nobody uses cost no memory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

BLOCK = 256  # the cache grows in multiples of this many positions


class Decoder:
    def __init__(self, folder: Path, config: dict, rows: int):
        import onnxruntime as ort

        decoder = config["decoder"]
        self.rows = rows
        self.vocab = config["vocab_size"]
        self.shape = (decoder["num_key_value_heads"], decoder["head_size"])
        layers = range(decoder["num_hidden_layers"])
        inputs, outputs = decoder["inputs"], decoder["outputs"]
        self.pairs = [(inputs[f"past_{kind}_names"] % i, outputs[f"present_{kind}_names"] % i)
                      for i in layers for kind in ("key", "value")]
        options = ort.SessionOptions()
        # onnxruntime's default used one thread of the two here; both: 74 → 120 tok/s.
        options.intra_op_num_threads = len(os.sched_getaffinity(0))
        self.session = ort.InferenceSession(str(folder / decoder["filename"]), options,
                                            providers=["CPUExecutionProvider"])
        self.ort_value = ort.OrtValue.ortvalue_from_numpy
        self.capacity = 0  # positions per slot
        self.cache: list[np.ndarray] = []  # one (rows, kv heads, capacity, head size) buffer per past input
        # Binding 60 cache tensors costs ~1 ms a step: bindings are kept per range of slots until
        # the cache is reallocated.
        self.bindings: dict[tuple[int, int], Any] = {}

    def reserve(self, length: int, lengths: dict[int, int]) -> None:
        """Make room for `length` positions per slot, keeping the first lengths[slot] of each slot."""
        if length <= self.capacity:
            return
        capacity = max(BLOCK, self.capacity)
        while capacity < length:
            capacity *= 2
        heads, size = self.shape
        grown = [np.zeros((self.rows, heads, capacity, size), np.float32) for _ in self.pairs]
        for old, new in zip(self.cache, grown, strict=False):  # nothing to keep when the cache was empty
            for slot, used in lengths.items():
                new[slot, :, :used] = old[slot, :, :used]
        self.cache, self.capacity, self.bindings = grown, capacity, {}

    def release(self) -> None:
        self.cache, self.capacity, self.bindings = [], 0, {}

    def move(self, source: int, target: int, length: int) -> None:
        """Copy the first `length` cached positions of slot `source` into slot `target`."""
        for buffer in self.cache:
            buffer[target, :, :length] = buffer[source, :, :length]

    def prefill(self, slot: int, ids: list[int], start: int) -> np.ndarray:
        """Feed prompt tokens `ids` to a slot that already holds `start` tokens; the last token's logits."""
        mask = np.ones((1, start + len(ids)), np.int64)
        logits = self._run(slot, slot + 1, np.array([ids], np.int64), mask)
        return logits[0, -1]

    def step(self, tokens: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """One token for each of the first len(tokens) slots, which hold `lengths` tokens; (n, vocab) logits."""
        total = lengths + 1
        mask = (np.arange(int(total.max()))[None, :] < total[:, None]).astype(np.int64)
        logits = self._run(0, len(tokens), tokens.astype(np.int64)[:, None], mask)
        return logits[:, -1]

    def _run(self, first: int, end: int, input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Run slots first..end-1; the logits of every fed position."""
        binding = self.bindings.get((first, end))
        if binding is None:
            binding = self.bindings[first, end] = self.session.io_binding()
            for buffer, (past, present) in zip(self.cache, self.pairs, strict=True):
                value = self.ort_value(buffer[first:end])  # a view: a range of leading rows is contiguous
                binding.bind_ortvalue_input(past, value)
                binding.bind_ortvalue_output(present, value)
        binding.bind_cpu_input("input_ids", input_ids)
        binding.bind_cpu_input("attention_mask", mask)
        logits = np.empty((*input_ids.shape, self.vocab), np.float32)
        binding.bind_output("logits", "cpu", 0, np.float32, list(logits.shape), logits.ctypes.data)
        self.session.run_with_iobinding(binding)
        return logits
