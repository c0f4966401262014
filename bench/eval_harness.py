"""The cost of `qednano eval` itself: a whole eval against a server that answers at once, then its resume.

A loopback OpenAI-compatible server runs in its own process and answers every chat completion
at once: a short proof for a prover request, an assessment ending in the verdict line the
grading prompt asks for ("FINAL SCORE: N") for a grader request. It streams (server-sent events
in a few chunks, with a usage chunk, as vLLM does) when asked to, and sends one JSON body
otherwise. `qednano eval` then runs in a child process on IMO-ProofBench problems (the local CSV
under $QEDNANO_DATA_DIR) with a grader, in a fresh run directory and call cache, and once more
on the same run directory: the resume of a finished run, which makes no calls.

Printed, measured in this one run: `qednano --help` time (best of a few), the first run's calls
per second, the CPU of the eval process per model call, and the resume's wall time over the first
run's. CPU per call is given twice: `cpu ms per call` is what the calls add, the first run's CPU
time less the resume's (which starts up, loads the problems, reads the samples and writes the
report just the same, and makes no call) divided by the calls; the whole process's CPU time over
the calls, start-up included, is printed beside it, and so is the CPU of importing the openai SDK
(measured in a process of its own; a fixed cost of the first run, which the resume skips). Only
the eval process is measured: the server runs in a process of its own.

    QEDNANO_DATA_DIR=/work/shared/data python bench/eval_harness.py [--problems 60] [--samples 10]
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

CLI = [sys.executable, "-c", "from qednano.cli import app; app()"]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=60)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--keep", type=Path, help="keep the run directory, cache and logs here")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the server process
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve())
        return

    work = args.keep or Path(tempfile.mkdtemp(prefix="qednano-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    # The progress bars draw as on a terminal, since that is where people wait for them.
    env = {**os.environ, "QEDNANO_CACHE_DIR": str(work / "cache"), "TTY_COMPATIBLE": os.environ.get("BENCH_TTY", "1"), "COLUMNS": "120"}
    help_wall = min(timed([*CLI, "--help"], env)[0] for _ in range(5))
    server = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{int(server.stdout.readline())}/v1"
        command = [*CLI, "eval", "--bench", "imo-proofbench", "--limit", str(args.problems), "-n", str(args.samples),
                   "-m", f"openai:bench-prover@{url}", "-g", f"openai:bench-grader@{url}",
                   "--concurrency", str(args.concurrency), "--out", str(work / "run")]
        first_wall, first_cpu = timed(command, env, work / "first.log")
        calls = calls_made(work / "run")
        resume_wall, resume_cpu = timed(command, env, work / "resume.log")
        resumed_calls = calls_made(work / "run")
    finally:
        server.terminate()
        server.wait()
    print(f"processor: {processor()}; load average {os.getloadavg()[0]:.1f}")
    print(f"qednano --help: {help_wall:.3f} s wall (best of 5)")
    print(f"first run: {args.problems} problems x {args.samples} samples, {calls} calls, {first_wall:.2f} s wall, "
          f"{first_cpu:.2f} s CPU, {calls / first_wall:.0f} calls/s")
    print(f"resume: {resumed_calls} calls, {resume_wall:.2f} s wall, {resume_cpu:.2f} s CPU")
    print(f"whole process, start-up included: {1000 * first_cpu / calls:.2f} ms CPU per call")
    sdk_cpu = min(timed([sys.executable, "-c", "import openai, httpx2, aiohttp"], env)[1] for _ in range(3))
    sdk_cpu -= min(timed([sys.executable, "-c", "pass"], env)[1] for _ in range(3))  # the interpreter's own start
    print(f"importing the openai SDK (once per process, which a resume skips): {sdk_cpu:.2f} s CPU; per call "
          f"without it {1000 * (first_cpu - resume_cpu - sdk_cpu) / calls:.2f} ms")
    print(f"cpu ms per call {1000 * (first_cpu - resume_cpu) / calls:.2f}")
    print(f"resume/first wall {resume_wall / first_wall:.3f}")
    print(f"(run directory, cache and logs: {work})")




if __name__ == "__main__":
    main()
