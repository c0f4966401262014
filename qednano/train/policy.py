"""The model being trained: a Hugging Face name, a local folder, or the embedded SmolLM2 in fp32.

The embedded model ships as a 4-bit GGUF file; transformers dequantizes it to fp32 on load but
still marks the model as quantized, and `Trainer` refuses to train "purely quantized" models.
The weights really are fp32 by then, so the marks are cleared.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from qednano.llm.embedded import file_digest, find_gguf
from qednano.llm.registry import registered_models
from qednano.paths import cache_root

THINK_OPEN = "<think>"


def embedded_gguf(name: str) -> Path | None:
    """The GGUF file of a registered embedded model (e.g. `smollm2`), else None."""
    if Path(name).exists():
        return None
    entry = registered_models().get(name)
    if entry is None or entry[0].backend != "embedded":
        return None
    return find_gguf(entry[0].model)


def load_policy(name: str, dtype: str = "float32") -> tuple[Any, Any]:
    """(model, tokenizer) for training, from a name, a folder or a registered embedded model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = embedded_gguf(name)
    if gguf is None:
        return AutoModelForCausalLM.from_pretrained(name, dtype=dtype), AutoTokenizer.from_pretrained(name)
    tokenizer = AutoTokenizer.from_pretrained(embedded_tokenizer_dir(gguf))
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype="float32")
    model.hf_quantizer = None
    model.config.__dict__.pop("quantization_config", None)
    model.is_quantized = False
    return model, tokenizer


def embedded_tokenizer_dir(gguf: Path) -> Path:
    """The GGUF's tokenizer saved once as a folder: reading it from the GGUF takes ~12 s each time."""
    from transformers import AutoTokenizer

    folder = cache_root() / "tokenizers" / f"{gguf.stem}-{file_digest(gguf)}"
    if not (folder / "tokenizer_config.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        work = folder.with_name(f"{folder.name}.tmp{os.getpid()}")
        tokenizer.save_pretrained(work)
        shutil.rmtree(folder, ignore_errors=True)  # a torn folder left by a killed writer
        work.replace(folder)
    return folder


def generation_prompt(tokenizer: Any) -> str:
    """What the chat template appends after a user turn to start the assistant's reply."""
    turn = [{"role": "user", "content": "x"}]
    bare = tokenizer.apply_chat_template(turn, tokenize=False, add_generation_prompt=False)
    opened = tokenizer.apply_chat_template(turn, tokenize=False, add_generation_prompt=True)
    return opened[len(bare):] if opened.startswith(bare) else opened


def template_opens_reasoning(tokenizer: Any) -> bool:
    """True when the template's generation prompt already opens `<think>` (Qwen3 thinking models)."""
    return generation_prompt(tokenizer).rstrip().endswith(THINK_OPEN)


def template_writes_opener(tokenizer: Any) -> bool:
    """True when rendering an assistant turn that starts with `<think>` yields two of them.

    Qwen3-Thinking's template re-renders the reasoning it finds before `</think>` with a single
    opening tag, so either completion form gives one; a template that writes `<think>` before
    every assistant turn gives two, and there the completion must leave the tag out.
    """
    turn = [{"role": "user", "content": "x"}, {"role": "assistant", "content": f"{THINK_OPEN}\nr\n</think>\n\np"}]
    rendered = tokenizer.apply_chat_template(turn, tokenize=False)
    return rendered.count(THINK_OPEN) > 1


def smollm2_tokenizer() -> Any:
    """The embedded SmolLM2's tokenizer (its GGUF's, saved once as a folder)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(embedded_tokenizer_dir(embedded_gguf("smollm2")))


def tiny_random_llama(tokenizer: Any, seed: int = 0) -> Any:
    """A 2-layer random-weight llama of width 16 over the tokenizer's vocabulary, in memory.

    For tests and benchmarks of the training machinery (labels, gradients, files, timings):
    a step takes well under a second, and it says nothing sensible. One attention head of size
    16: the embedded engine's attention kernel needs head sizes in multiples of 16, so its
    checkpoints convert and generate as a trained model's do.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=1, num_key_value_heads=1, max_position_embeddings=1024, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config)


def save_tiny_random_policy(folder: Path, seed: int = 0, tokenizer: Any = None) -> Path:
    """`tiny_random_llama` with the SmolLM2 tokenizer, saved as a model folder (a checkpoint as a
    trainer writes one: config, safetensors weights, tokenizer) that loads through `from_pretrained`."""
    tokenizer = tokenizer or smollm2_tokenizer()
    tiny_random_llama(tokenizer, seed).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
