"""Overhead of the scaffold machinery: an RC run against the same calls made straight to the backend.

The reasoning cache is run on a backend that records every request. The recorded requests are
then replayed one after another straight to a fresh backend, with no Model, trace, prompt
filling or cache in between. Since RC's calls are sequential anyway, the ratio of the two wall
times is the cost of the scaffold machinery (prompt files, pydantic records, sampling merges,
call indices). The default backend is scripted and sleeps a fixed time per call; `--embedded`
repeats the measurement on the embedded SmolLM2 (greedy, so the replay generates the same text).

    python bench/scaffold_overhead.py [--turns 3] [--delay-ms 20] [--repeats 20] [--embedded]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from qednano.llm.model import Model
from qednano.llm.scripted import ScriptedBackend
from qednano.llm.types import Completion, Messages, Sampling
from qednano.problems.record import Problem
from qednano.scaffolds.config import Roles
from qednano.scaffolds.reasoning_cache import RCConfig, ReasoningCache

PROBLEM = Problem(id="bench", statement="Prove that the sum of two even integers is even.")


class Recording:
    """A backend wrapper that keeps every request it passes on."""

    def __init__(self, backend):
        self.backend = backend
        self.identity = backend.identity
        self.model = backend.model
        self.requests: list[tuple[Messages, Sampling]] = []

    async def complete(self, messages: Messages, sampling: Sampling) -> Completion:
        self.requests.append((messages, sampling))
        return await self.backend.complete(messages, sampling)

    async def aclose(self) -> None:
        await self.backend.aclose()


class Greedy(Recording):
    """Greedy decoding, so the scaffold run and its replay generate the same tokens."""

    async def complete(self, messages: Messages, sampling: Sampling) -> Completion:
        return await super().complete(messages, sampling.model_copy(update={"temperature": 0.0}))


def thinking_reply(messages: Messages, sampling: Sampling) -> str:
    return "<think>" + "I try induction on n. " * 50 + "</think>" + "Proof. The claim holds. " * 20


async def one_round(make_backend, rc_settings: dict) -> tuple[float, float, int]:
    """(scaffold wall time, direct replay wall time, calls) of one RC run."""
    recording = Recording(make_backend())
    rc = ReasoningCache(RCConfig(**rc_settings), Roles(Model("bench", recording)))
    start = time.perf_counter()
    attempt = await rc.solve(PROBLEM)
    scaffold_s = time.perf_counter() - start
    if attempt.status == "failed":
        raise SystemExit(f"the RC run failed: {attempt.error}")

    replay = make_backend()
    start = time.perf_counter()
    for messages, sampling in recording.requests:
        await replay.complete(messages, sampling)
    direct_s = time.perf_counter() - start
    return scaffold_s, direct_s, len(recording.requests)


async def measure(label: str, make_backend, rc_settings: dict, repeats: int) -> None:
    await one_round(make_backend, rc_settings)  # warm-up: prompt files, imports, model load
    rounds = [await one_round(make_backend, rc_settings) for _ in range(repeats)]
    scaffold = statistics.median(r[0] for r in rounds)
    direct = statistics.median(r[1] for r in rounds)
    calls = rounds[0][2]
    print(f"{label}: {calls} calls, median of {repeats} runs")
    print(f"  RC scaffold     {scaffold * 1000:9.2f} ms")
    print(f"  direct replay   {direct * 1000:9.2f} ms")
    per_call_ms = (scaffold - direct) / calls * 1000
    print(f"  ratio           {scaffold / direct:9.3f}   (overhead {per_call_ms:.2f} ms per call)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--delay-ms", type=float, default=20.0, help="Scripted backend's sleep per call.")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--embedded", action="store_true", help="Also measure on the embedded SmolLM2.")
    args = parser.parse_args()

    def scripted() -> ScriptedBackend:
        return ScriptedBackend(thinking_reply, delay_s=args.delay_ms / 1000)

    label = f"scripted backend, {args.delay_ms:g} ms per call"
    asyncio.run(measure(label, scripted, {"turns": args.turns}, args.repeats))

    if args.embedded:
        from qednano.llm.registry import load_model

        backend = load_model("smollm2").backend  # one loaded model, shared by both sides
        tiny = {"turns": args.turns, "reasoning_tokens": 48, "summary_tokens": 32}
        asyncio.run(measure("embedded SmolLM2-135M, greedy", lambda: Greedy(backend), tiny, max(3, args.repeats // 5)))


if __name__ == "__main__":
    main()
