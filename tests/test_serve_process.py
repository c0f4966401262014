"""A real `qednano serve` process with the embedded model: an abandoned long generation is
stopped, a short request after it is answered, and SIGTERM ends the server within seconds.

How much the abandoned request keeps generating is read from the server process's CPU time: a
generation that goes on burns a core or more; one that was cancelled burns next to nothing.

These need the embedded backend to stop a generation at its next token when the task awaiting
it is cancelled, and to interleave concurrent prompts (the engine branch); the server's side is
in qednano/llm/server.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest

REPO = Path(__file__).resolve().parents[1]
# Small models loop on counting: greedy decoding keeps going until max_tokens.
LONG = {"model": "smollm2", "temperature": 0, "max_tokens": 6000,
        "messages": [{"role": "user", "content": "Count from 1 to 100000, separated by commas."}]}
SHORT = {"model": "smollm2", "temperature": 0, "max_tokens": 8,
         "messages": [{"role": "user", "content": "Say hi."}]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture
def server(tmp_path):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "QEDNANO_CACHE_DIR": os.environ.get("QEDNANO_CACHE_DIR", "")}
    env = {k: v for k, v in env.items() if v}
    command = [sys.executable, "-c", "from qednano.cli import app; app()", "serve", "--port", str(port)]
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 300  # the first run converts the model
    while True:
        assert process.poll() is None, (tmp_path / "serve.log").read_text()
        assert time.monotonic() < deadline, "the server did not come up"
        try:
            if httpx2.get(f"{url}/models", timeout=1).status_code == 200:
                break
        except httpx2.HTTPError:
            time.sleep(0.5)
    yield process, url
    if process.poll() is None:
        process.kill()
        process.wait()


def ask(url: str, body: dict) -> socket.socket:
    """A connection on which `body` was sent to /chat/completions, left for the caller to close."""
    host, port = url.removeprefix("http://").split("/")[0].split(":")
    payload = json.dumps(body).encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n").encode()
    sock = socket.create_connection((host, int(port)))
    sock.sendall(head + payload)
    return sock


def abandon(url: str, body: dict, after_s: float) -> None:
    """Ask, wait `after_s` seconds, and hang up (as `curl -m` does). Not a client read timeout:
    a streamed answer's keep-alive lines would keep resetting that."""
    with ask(url, body):
        time.sleep(after_s)


@pytest.mark.slow
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_an_abandoned_long_generation_stops_and_a_short_one_is_answered(server, stream):
    process, url = server
    abandon(url, {**LONG, "stream": stream}, after_s=3)
    asked = time.monotonic()
    try:
        short = httpx2.post(f"{url}/chat/completions", json=SHORT, timeout=60)
    except httpx2.TimeoutException:
        pytest.fail("the short request waited over 60 s behind the abandoned one")
    waited = time.monotonic() - asked
    assert short.status_code == 200 and short.json()["choices"][0]["message"]["content"]
    # 6000 tokens take about a minute here; the short answer must not wait for them.
    assert waited < 20, f"the short request waited {waited:.1f} s behind the abandoned one"
    time.sleep(1.0)
    before = cpu_seconds(process.pid)
    time.sleep(3.0)
    burnt = cpu_seconds(process.pid) - before
    assert burnt < 1.0, f"the server burnt {burnt:.1f} s of CPU in 3 s: the abandoned generation kept going"


@pytest.mark.slow
def test_sigterm_stops_a_busy_server_within_seconds(server):
    process, url = server
    with ask(url, LONG):  # this client stays connected throughout
        time.sleep(3.0)  # the long generation is under way
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        assert time.monotonic() - signalled < 15
