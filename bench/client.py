"""Requests/s of OpenAIBackend (through Model, no cache) beside a raw aiohttp loop; then the
client's CPU per call when answers stream one token per event, beside `stream: false`.

Both clients hit the same fast loopback server, which runs in its own process so it never
shares the clients' event loop or their core. Rounds alternate between the two clients and
the best round of each is kept, because the machine is shared and a busy neighbour slows
whichever client happens to run at that moment.

The second part is what a real server does: it writes each token as it is made, `--token-gap-ms`
apart, so each event arrives alone; asked not to stream, it sends the same answer as one body
when the last token is made. The client's CPU time (this process; the server is another) is
divided by the calls.

    python bench/client.py --requests 3000 --concurrency 64 [--tokens 200 --token-gap-ms 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

from qednano.llm.model import Model
from qednano.llm.openai_backend import OpenAIBackend
from qednano.llm.types import Sampling
from qednano.records.pipeline import run_models

MESSAGES = [{"role": "user", "content": "Prove that the square root of 2 is irrational."}]
REPLY = json.dumps({
    "id": "bench", "object": "chat.completion", "created": 0, "model": "bench-model",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": "Suppose sqrt(2) = p/q in lowest terms. QED."}}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 12, "total_tokens": 24},
}).encode()


def event(data: dict) -> bytes:
    """One server-sent event, as OpenAI-compatible servers frame a chunk."""
    return b"data: " + json.dumps(data).encode() + b"\n\n"


async def serve() -> None:
    """The loopback server: a fixed reply, no logging; prints its port and runs until killed."""

    async def chat(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=REPLY, content_type="application/json")

    async def paced(request: web.Request) -> web.StreamResponse:
        """`tokens` tokens, one every `gap_ms`: streamed one per event, or as one body at the end."""
        body = await request.json()
        tokens, gap = int(request.match_info["tokens"]), float(request.match_info["gap_ms"]) / 1000
        if not body.get("stream"):
            await asyncio.sleep(tokens * gap)
            reply = {"id": "bench", "object": "chat.completion", "created": 0, "model": body["model"],
                     "choices": [{"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": " step" * tokens}}],
                     "usage": {"prompt_tokens": 12, "completion_tokens": tokens, "total_tokens": 12 + tokens}}
            return web.json_response(reply)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        base = {"id": "bench", "object": "chat.completion.chunk", "created": 0, "model": body["model"]}
        for _ in range(tokens):
            await asyncio.sleep(gap)
            delta = {**base, "choices": [{"index": 0, "delta": {"content": " step"}, "finish_reason": None}]}
            await response.write(event(delta))
        end = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        usage = {**base, "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": tokens, "total_tokens": 12 + tokens}}
        await response.write(event(end) + event(usage) + b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/paced/{tokens}/{gap_ms}/v1/chat/completions", paced)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    print(runner.addresses[0][1], flush=True)
    await asyncio.Event().wait()


async def drive(call: Callable[[], Awaitable[None]], requests: int, concurrency: int) -> float:
    """Requests per second of `requests` calls made by `concurrency` workers."""
    todo = iter(range(requests))  # shared: each worker takes the next number until none are left

    async def worker() -> None:
        for _ in todo:
            await call()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return requests / (time.perf_counter() - start)


async def measure(url: str, requests: int, concurrency: int, rounds: int) -> tuple[float, float]:
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))
    body = {"model": "bench-model", "messages": MESSAGES}

    async def raw_call() -> None:
        async with session.post(f"{url}/chat/completions", json=body) as response:
            reply = json.loads(await response.read())
            if response.status != 200 or not reply["choices"]:
                raise RuntimeError(f"raw aiohttp call failed: HTTP {response.status}")

    model = Model("bench", OpenAIBackend("bench-model", [url], max_concurrency=concurrency, max_retries=0))

    async def model_call() -> None:
        done = await model.complete(MESSAGES, Sampling())
        if not done.ok:
            raise RuntimeError(f"OpenAIBackend call failed: {done.error_kind}: {done.error}")

    try:
        warmup = max(concurrency * 2, requests // 10)  # open the connections, fill caches
        await drive(raw_call, warmup, concurrency)
        await drive(model_call, warmup, concurrency)
        raw, ours = 0.0, 0.0
        for _ in range(rounds):
            raw = max(raw, await drive(raw_call, requests, concurrency))
            ours = max(ours, await drive(model_call, requests, concurrency))
    finally:
        await session.close()
        await model.aclose()
    return raw, ours


async def cpu_per_call(url: str, calls: int, concurrency: int, stream: bool) -> float:
    """Milliseconds of this process's CPU per call of an OpenAIBackend with `stream`."""
    backend = OpenAIBackend("bench-model", [url], max_concurrency=concurrency, max_retries=0, stream=stream)
    await backend.complete(MESSAGES, Sampling())  # opens the client (imports the SDK) before the clock starts

    async def one() -> None:
        done = await backend.complete(MESSAGES, Sampling())
        if not done.ok:
            raise RuntimeError(f"OpenAIBackend call failed: {done.error_kind}: {done.error}")

    start = time.process_time()
    await asyncio.gather(*(one() for _ in range(calls)))
    used = time.process_time() - start
    await backend.aclose()
    return 1000 * used / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="calls per client per round")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds; the best of each is kept")
    parser.add_argument("--tokens", type=int, default=200, help="tokens of each paced answer")
    parser.add_argument("--token-gap-ms", type=float, default=5.0, help="time between a paced answer's tokens")
    parser.add_argument("--paced-calls", type=int, default=192, help="calls per paced measurement")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the server process
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve())
        return

    server = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        url = f"http://127.0.0.1:{port}/v1"
        raw, ours = asyncio.run(measure(url, args.requests, args.concurrency, args.rounds))
        paced = f"http://127.0.0.1:{port}/paced/{args.tokens}/{args.token_gap_ms}/v1"
        streamed, whole = [], []
        for _ in range(args.rounds):  # alternated, the best of each kept
            # on the event loop evals and data stages run on (run_models: uvloop where installed)
            streamed.append(run_models([], cpu_per_call(paced, args.paced_calls, args.concurrency, stream=True)))
            whole.append(run_models([], cpu_per_call(paced, args.paced_calls, args.concurrency, stream=False)))
    finally:
        server.terminate()
        server.wait()
    print(f"loopback server, {args.requests} requests x {args.rounds} rounds, concurrency {args.concurrency}")
    print(f"raw aiohttp                 {raw:8.0f} req/s")
    print(f"OpenAIBackend through Model {ours:8.0f} req/s")
    print(f"ratio OpenAIBackend / raw   {ours / raw:8.2f}")
    print(f"answers of {args.tokens} tokens, one every {args.token_gap_ms:g} ms, {args.paced_calls} calls, "
          f"concurrency {args.concurrency}: client CPU per call")
    print(f"streamed, one token per event {min(streamed):8.2f} ms")
    print(f"stream: false, one body       {min(whole):8.2f} ms")
    print(f"ratio streamed / one body     {min(streamed) / min(whole):8.2f}")


if __name__ == "__main__":
    main()
