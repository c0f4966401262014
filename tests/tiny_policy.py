"""A tiny random-weight llama with the real SmolLM2 tokenizer, saved as a model folder.

Training tests load it through the real `from_pretrained` path; its weights are random, so the
tests check mechanics (labels, gradients, files), never what the model says.
"""

from __future__ import annotations

from pathlib import Path

from qednano.train.policy import embedded_gguf, embedded_tokenizer_dir


def save_tiny_policy(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(embedded_tokenizer_dir(embedded_gguf("smollm2")))
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
