"""Tiny random-weight llama models with the real SmolLM2 tokenizer, for training and checkpoint tests.

The tokenizer comes from the installed GGUF (read once per test session, ~10 s with imports);
the model has SmolLM2's vocabulary but 2 layers of width 64, so a step takes well under a second.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any


@lru_cache(maxsize=1)
def smollm2_tokenizer() -> Any:
    from transformers import AutoTokenizer

    from qednano.llm.embedded import find_gguf

    gguf = find_gguf("SmolLM2-135M-Instruct")
    return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


def tiny_llama(seed: int = 0) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = smollm2_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return LlamaForCausalLM(config)


def save_tiny_checkpoint(folder: Path, seed: int = 0) -> Path:
    """A checkpoint folder as a trainer writes one: config, safetensors weights, tokenizer."""
    tiny_llama(seed).save_pretrained(folder)
    smollm2_tokenizer().save_pretrained(folder)
    return folder
