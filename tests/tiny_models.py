"""The package's tiny random-weight llama (qednano.train.policy) with one tokenizer per test session.

Tests often point QEDNANO_CACHE_DIR at a fresh folder, where the tokenizer would be read from the
GGUF again (~10 s); keeping the first one read makes that once per session.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from qednano.train import policy


@lru_cache(maxsize=1)
def smollm2_tokenizer() -> Any:
    return policy.smollm2_tokenizer()


def tiny_llama(seed: int = 0) -> Any:
    return policy.tiny_random_llama(smollm2_tokenizer(), seed)


def save_tiny_checkpoint(folder: Path, seed: int = 0) -> Path:
    return policy.save_tiny_random_policy(folder, seed, tokenizer=smollm2_tokenizer())
