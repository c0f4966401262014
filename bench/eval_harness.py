"""The cost of `qednano eval` itself: a whole eval against a server that answers at once, then its resume.

A loopback OpenAI-compatible server runs in its own process and answers every chat completion
at once: a short proof for a prover request, an assessment ending in the verdict line the
grading prompt asks for ("FINAL SCORE: N") for a grader request. It streams (server-sent events
in a few chunks, with a usage chunk, as vLLM does) when asked to, and sends one JSON body
otherwise. `qednano eval` then runs in a child process on IMO-ProofBench problems (the local CSV
under $QEDNANO_DATA_DIR) with a grader, in a fresh run directory and call cache, and once more
on the same run directory: the resume of a finished run, which makes no calls.

Fresh runs at half and at all the samples alternate with a resume of each full run (`--pairs`
times). Printed: `qednano --help` time (best of a few), the runs' wall and CPU times, calls per
second, the CPU of the eval process per model call, and the resume's wall time over its run's.

`cpu ms per call` is what one more call costs the eval process, the figure that decides how many
calls a second one client drives over a long job: a full run's CPU time less its half run's, over
the calls it added, the median over the pairs. Start-up, importing the openai SDK, loading the
problems and writing the report cost the same in both runs of a pair, so they drop out. Printed
beside it: the whole process's CPU over its calls (start-up included), a run's CPU less its
resume's over its calls, and the CPU of importing the SDK (in a process of its own).
`resume/first wall` is the median over the pairs of a resume's wall time over its full run's.
Every figure is taken within a pair, seconds apart, because this machine's speed swings by up
to 40% within minutes. Only the eval process is measured: the server runs in
a process of its own.

The child processes keep compiled bytecode (`__pycache__`), as an installed Python does; a
`PYTHONDONTWRITEBYTECODE` in the environment is dropped for them, or every start would compile
qednano's modules again.

    QEDNANO_DATA_DIR=/work/shared/data python bench/eval_harness.py [--problems 60] [--samples 10] [--pairs 7]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

from aiohttp import web
from machine import processor  # bench/machine.py (the script's own folder is on sys.path)

CLI = [sys.executable, "-c", "from qednano.cli import run; run()"]  # as the qednano command runs
PROOF = ("We argue by induction on n. The base case n = 1 is checked directly. Suppose the claim "
         "holds for n; adding one more term keeps every inequality, as each term is positive. ") * 4
REASONING = "Try small cases first, then look for an invariant. " * 8
CHUNKS = 8  # pieces a streamed answer is sent in (a real server sends one per token)


def answer(body: dict) -> tuple[str, str]:
    """(reasoning, content) for one request: a verdict for graders, a proof for provers."""
    prompt = body["messages"][-1]["content"]
    if "FINAL SCORE" in prompt:
        score = (0, 1, 6, 7)[zlib.crc32(prompt.encode()) % 4]  # varied, and the same on every run
        return "", f"The argument is sound in outline; the induction step needs one more line.\n\nFINAL SCORE: {score}"
    return REASONING, PROOF


def usage(body: dict, reasoning: str, content: str) -> dict:
    prompt_tokens = sum(len(m["content"]) for m in body["messages"]) // 4
    return {"prompt_tokens": prompt_tokens, "completion_tokens": (len(reasoning) + len(content)) // 4,
            "total_tokens": prompt_tokens + (len(reasoning) + len(content)) // 4}


def sse_chunks(body: dict, reasoning: str, content: str) -> bytes:
    """The answer as vLLM streams it: role, reasoning and content deltas, a finish, usage, [DONE]."""
    base = {"id": "bench", "object": "chat.completion.chunk", "created": 0, "model": body["model"]}
    deltas = [{"role": "assistant", "content": ""}]
    deltas += [{"reasoning_content": piece} for piece in pieces(reasoning)]
    deltas += [{"content": piece} for piece in pieces(content)]
    events = [{**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]} for delta in deltas]
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    events.append({**base, "choices": [], "usage": usage(body, reasoning, content)})
    return b"".join(b"data: " + json.dumps(event).encode() + b"\n\n" for event in events) + b"data: [DONE]\n\n"


def pieces(text: str) -> list[str]:
    step = max(1, -(-len(text) // CHUNKS))
    return [text[i:i + step] for i in range(0, len(text), step)]


async def chat(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    reasoning, content = answer(body)
    if not body.get("stream"):
        message = {"role": "assistant", "content": content, "reasoning_content": reasoning or None}
        reply = {"id": "bench", "object": "chat.completion", "created": 0, "model": body["model"],
                 "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                 "usage": usage(body, reasoning, content)}
        return web.json_response(reply)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    await response.write(sse_chunks(body, reasoning, content))
    await response.write_eof()
    return response


async def serve() -> None:
    """The loopback server: prints its port, then runs until killed."""
    app = web.Application(client_max_size=64 * 2**20)
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    print(runner.addresses[0][1], flush=True)
    await asyncio.Event().wait()


def timed(command: list[str], env: dict, log: Path | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child) of one command, which must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with open(log or os.devnull, "w") as out:
        done = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[3:])} exited {done.returncode}; see {log}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def calls_made(run_dir: Path) -> int:
    """Model calls (not cached) of the last invocation of the run, over all its models."""
    manifest = json.loads((run_dir / "manifest.json").read_text())
    return sum(totals["calls"] for totals in manifest["invocations"][-1]["totals"]["models"].values())


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=60)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--pairs", type=int, default=7, help="fresh runs at half and all the samples, alternated")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--keep", type=Path, help="keep the run directories, caches and logs here")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the server process
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve())
        return

    work = args.keep or Path(tempfile.mkdtemp(prefix="qednano-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    # The progress bars draw as on a terminal, since that is where people wait for them.
    env = {**os.environ, "TTY_COMPATIBLE": os.environ.get("BENCH_TTY", "1"), "COLUMNS": "120"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as an installed Python runs (see the docstring)
    help_wall = min(timed([*CLI, "--help"], env)[0] for _ in range(5))
    server = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{int(server.stdout.readline())}/v1"

        def run(name: str, samples: int) -> tuple[float, float, int]:
            """(wall, CPU, calls) of `qednano eval` in run directory `name` with its own cache."""
            command = [*CLI, "eval", "--bench", "imo-proofbench", "--limit", str(args.problems), "-n", str(samples),
                       "-m", f"openai:bench-prover@{url}", "-g", f"openai:bench-grader@{url}",
                       "--concurrency", str(args.concurrency), "--out", str(work / name)]
            wall, cpu = timed(command, {**env, "QEDNANO_CACHE_DIR": str(work / f"{name}-cache")}, work / f"{name}.log")
            return wall, cpu, calls_made(work / name)

        half, full, resumed = [], [], []
        for pair in range(args.pairs):  # the first half run also compiles the modules an eval imports
            half.append(run(f"half-{pair}", args.samples // 2))
            full.append(run(f"full-{pair}", args.samples))
            resumed.append(run(f"full-{pair}", args.samples))
    finally:
        server.terminate()
        server.wait()
    calls = full[0][2]
    added_calls = calls - half[0][2]
    # Differences and ratios within a pair, then medians (see the docstring).
    first_wall, first_cpu = median([wall for wall, _, _ in full]), median([cpu for _, cpu, _ in full])
    resume_wall = median([wall for wall, _, _ in resumed])
    per_call_cpu = median([f[1] - h[1] for f, h in zip(full, half, strict=True)]) / added_calls
    per_call_wall = median([f[0] - h[0] for f, h in zip(full, half, strict=True)]) / added_calls
    resume_ratio = median([r[0] / f[0] for r, f in zip(resumed, full, strict=True)])
    resume_cpu = median([r[1] for r in resumed])
    sdk_cpu = min(timed([sys.executable, "-c", "import openai, httpx2, aiohttp"], env)[1] for _ in range(3))
    sdk_cpu -= min(timed([sys.executable, "-c", "pass"], env)[1] for _ in range(3))  # the interpreter's own start
    print(f"processor: {processor()}; load average {os.getloadavg()[0]:.1f}")
    print(f"qednano --help: {help_wall:.3f} s wall (best of 5)")
    print(f"fresh runs, {args.problems} problems; wall s / CPU s: {args.samples // 2} samples "
          + " ".join(f"{wall:.2f}/{cpu:.2f}" for wall, cpu, _ in half) + f"; {args.samples} samples "
          + " ".join(f"{wall:.2f}/{cpu:.2f}" for wall, cpu, _ in full) + "; their resumes "
          + " ".join(f"{wall:.2f}/{cpu:.2f}" for wall, cpu, _ in resumed))
    print(f"{args.samples} samples (median of {args.pairs}): {calls} calls, {first_wall:.2f} s wall, "
          f"{first_cpu:.2f} s CPU, {calls / first_wall:.0f} calls/s; resumed with "
          f"{max(calls for _, _, calls in resumed)} calls, {resume_wall:.2f} s wall")
    print(f"one more call: {1000 * per_call_wall:.2f} ms wall, {1 / per_call_wall:.0f} calls/s once started")
    print(f"whole process, start-up included: {1000 * first_cpu / calls:.2f} ms CPU per call")
    print(f"run less its resume: {1000 * (first_cpu - resume_cpu) / calls:.2f} ms CPU per call, of which "
          f"importing the openai SDK (once per process) {1000 * sdk_cpu / calls:.2f}")
    print(f"cpu ms per call {1000 * per_call_cpu:.2f}")
    print(f"resume/first wall {resume_ratio:.3f}")
    print(f"(run directories, caches and logs: {work})")


if __name__ == "__main__":
    main()
