"""How closely a training checkpoint, converted to the embedded engine, follows the checkpoint itself.

`qednano eval -m runs/x/checkpoint-40` converts the checkpoint once to onnxruntime-genai, at int4
or int8. An eval through the conversion is only worth something if it generates what the fp32
checkpoint would: this script measures that, side by side, for both precisions and two
checkpoints of SmolLM2-135M-Instruct:

- `base`: the embedded GGUF dequantized to fp32 and saved as a checkpoint (what step 0 of a
  training run on this machine saves; its weights lie on the GGUF's 4-bit grid),
- `tuned`: `base` after a few AdamW steps of language-model loss on short proofs (a checkpoint
  whose weights have left that grid, as a fine-tune's do).

For each prompt, greedy decoding in transformers fp32 is the reference; reported are the tokens
equal before the first difference, and fp32's tokens the converted model also picks when fed
fp32's text so far (teacher forcing). The choice of int8 as the default precision of checkpoint
folders (llm/registry.py) rests on these numbers. Measured on a 2-core EPYC (November 2026),
4 prompts x 64 tokens = 256, teacher-forced agreement (tokens equal before the first difference):

    base   int4 182 (25)   int8 255 (199)
    tuned  int4 203 (50)   int8 246 (91)

Leaving the 4-bit grid helps int4 a little (71% → 79% of tokens) but it stays far below int8
(96-100%). It takes about 10 CPU-minutes (four conversions and the fine-tune).

    python bench/checkpoint_fidelity.py [--new-tokens 64] [--steps 10]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from generation import forced_agreement, og_model, processor, same_prefix, transformers_rate
from transformers import AutoModelForCausalLM, AutoTokenizer

from qednano.llm.embedded import PRECISIONS, EmbeddedBackend, find_gguf, gguf_to_transformers

PROMPTS = [
    "Prove that there are infinitely many prime numbers.",
    "Prove that the sum of two even integers is even.",
    "Show that the square root of 2 is irrational.",
    "Prove that n^3 - n is divisible by 6 for every integer n.",
]
PROOFS = [
    "Let a = 2m and b = 2n. Then a + b = 2(m + n), which is even.",
    "Suppose sqrt(2) = p/q in lowest terms. Then p^2 = 2q^2, so p is even, p = 2r, and q^2 = 2r^2, "
    "so q is even too, a contradiction.",
    "n^3 - n = (n - 1) n (n + 1) is a product of three consecutive integers, so one factor is even "
    "and one is a multiple of 3.",
]


def fine_tune(folder: Path, out: Path, steps: int) -> None:
    """A few AdamW steps of language-model loss on PROOFS, saved as a checkpoint in `out`."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = tokenizer(PROOFS, return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    for _ in range(steps):
        model(**batch, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def measure(folder: Path, new_tokens: int) -> dict[str, tuple[int, int]]:
    """Per precision: (tokens equal before the first difference, teacher-forced agreements), summed."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    reference = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    prompts = [list(tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                                  tokenize=True, return_dict=True)["input_ids"]) for p in PROMPTS]
    wanted = [transformers_rate(reference, ids, new_tokens)[1] for ids in prompts]
    found = {}
    for precision in PRECISIONS:
        onnx = og_model(EmbeddedBackend(folder.name, folder, precision))
        prefix = forced = 0
        for ids, tokens in zip(prompts, wanted, strict=True):
            made = greedy(onnx, ids, new_tokens)
            prefix += same_prefix(made, tokens)
            forced += forced_agreement(onnx, ids, tokens)
        found[precision] = (prefix, forced)
    return found


def greedy(model, ids: list[int], new_tokens: int) -> list[int]:
    """`new_tokens` greedy tokens of an onnxruntime-genai model (see generation.og_model)."""
    import numpy as np
    import onnxruntime_genai as og

    params = og.GeneratorParams(model)
    length = len(ids) + new_tokens
    params.set_search_options(max_length=length, min_length=length, do_sample=False)
    generator = og.Generator(model, params)
    generator.append_tokens(np.array([ids], dtype=np.int32))
    tokens = []
    while not generator.is_done():
        generator.generate_next_token()
        tokens.append(int(generator.get_next_tokens()[0]))
    return tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10, help="AdamW steps (lr 1e-4) that make the tuned checkpoint")
    args = parser.parse_args()
    print(f"machine: {processor()}")
    with tempfile.TemporaryDirectory() as work:
        base, tuned = Path(work) / "base", Path(work) / "tuned"
        gguf_to_transformers(find_gguf("SmolLM2-135M-Instruct"), base)
        fine_tune(base, tuned, args.steps)
        total = len(PROMPTS) * args.new_tokens
        print(f"{len(PROMPTS)} prompts × {args.new_tokens} greedy tokens = {total} tokens against transformers fp32")
        for folder in (base, tuned):
            for precision, (prefix, forced) in measure(folder, args.new_tokens).items():
                print(f"  {folder.name:5s} {precision}: equal before first difference {prefix:4d} of {total}, "
                      f"fp32's tokens chosen when fed its text {forced:4d} of {total}")


if __name__ == "__main__":
    main()
