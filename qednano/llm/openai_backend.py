"""The backend for any OpenAI-compatible chat server: vLLM, SGLang, OpenRouter, OpenAI.

Calls go through the official `openai` SDK on its aiohttp transport (on loopback it served
~740 req/s against ~400 for the default one, see NOTES.md). The SDK's own retries are off:
this module owns the retry policy, so there is exactly one and it is tested.

The SDK costs about a second of CPU to import, so it is imported, and its clients made, at the
first call: resuming a finished run makes none. Requests go through the client's plain `post`
(the SDK's way to any endpoint; auth, headers, timeouts and status errors as for `create`)
with the JSON body we build, asking for the raw streamed response as `with_streaming_response`
does: `chat.completions.create` would first walk every message through its typed-dict
transform, which took more CPU than the rest of a call at instant answers.

- Responses are streamed (with `stream_options.include_usage`, so tokens are still counted).
  Two clocks run per attempt: the idle timeout (no chunk for `idle_timeout_s`: a hung
  connection, retried) and the total timeout (`timeout_s`, for the whole answer; a 49k-token
  proof can legitimately stream for most of an hour). A server that answers a stream request
  with one JSON body is read as well. With `stream=False` (a model file's `stream: false`) the
  answer is asked for as one body: the client parses it once instead of once per token, which
  at scale is most of its CPU per call, and only the total timeout applies (a server working
  on a long answer sends nothing until it is done).

- Several base URLs are load-balanced: each call goes to the endpoint with the fewest calls in
  flight; an endpoint that just failed is benched (tried after the others) for a growing while.
- One semaphore bounds the requests in flight over all endpoints.
- Transient failures (429, 5xx, timeouts, dropped connections, malformed bodies) are retried
  with exponential backoff and full jitter, waiting at least the server's Retry-After (capped);
  so are errors reported inside a stream, streams cut off mid-answer and timeouts.
  Anything else (bad request, auth, context length) fails at once. The last failure is returned
  as `Completion.failure(...)`; nothing raises and no empty answer passes for a success.
- The API key is scrubbed from every error message: some proxies echo request headers.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from qednano.llm.openai_stream import CONTEXT_LENGTH, Failure, StreamReader, parse_completion
from qednano.llm.types import Completion, Messages, Sampling
from qednano.secrets import redact

if TYPE_CHECKING:
    import openai

    from qednano.llm.spec import ModelSpec

log = logging.getLogger(__name__)

ERROR_TEXT_LIMIT = 500  # characters of a server's error body worth keeping (HTML pages are long)
# The header `with_streaming_response` sets (openai._constants.RAW_RESPONSE_HEADER): hand back
# the response unread, so its lines can be read as they arrive.
RAW_STREAM = "X-Stainless-Raw-Response"
# Headers the SDK adds to every request for OpenAI's own statistics (platform, retry count, read
# timeout). No server we talk to reads them, and building them took about a tenth of a call's
# CPU at instant answers, so they are left out (the SDK's `Omit`).
TELEMETRY = ("X-Stainless-Lang", "X-Stainless-Package-Version", "X-Stainless-OS", "X-Stainless-Arch",
             "X-Stainless-Runtime", "X-Stainless-Runtime-Version", "X-Stainless-Async",
             "x-stainless-retry-count", "x-stainless-read-timeout")


@dataclass
class Endpoint:
    url: str
    client: openai.AsyncOpenAI | None = None  # made at the backend's first call
    chat_url: str = ""  # {url}/chat/completions: an absolute URL, which the SDK need not merge with its base
    in_flight: int = 0
    failures: int = 0  # consecutive failures that blame the server
    benched_until: float = 0.0  # time.monotonic() before which others are tried first
    last_pick: int = 0

    def succeeded(self) -> None:
        self.failures, self.benched_until = 0, 0.0

    def failed(self) -> None:
        self.failures += 1
        self.benched_until = time.monotonic() + min(60.0, 2.0 ** self.failures)


class OpenAIBackend:
    def __init__(
        self,
        model: str,
        base_urls: Sequence[str],
        *,
        api_key: str | None = None,
        identity: str | None = None,
        max_concurrency: int = 64,
        timeout_s: float = 3600.0,
        idle_timeout_s: float = 120.0,
        max_retries: int = 6,
        reasoning_model: bool = False,
        stream: bool = True,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 60.0,
        retry_after_cap_s: float = 120.0,
        rng: random.Random | None = None,
    ):
        if not base_urls:
            raise ValueError(f"model {model!r}: the openai backend needs a base URL, e.g. http://localhost:8000/v1")
        self.model = model
        self.identity = identity or "|".join(["openai", model, *sorted(base_urls)])  # as ModelSpec.cache_identity
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.max_retries = max_retries
        self.reasoning_model = reasoning_model
        self.stream = stream
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.retry_after_cap_s = retry_after_cap_s
        self.rng = rng or random.Random()
        self._slots = asyncio.Semaphore(max_concurrency)
        self._picks = 0
        self.endpoints = [Endpoint(url) for url in base_urls]
        self.request_options: dict = {}  # the SDK options of every request (headers), set with the clients

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> OpenAIBackend:
        from qednano.llm.spec import ModelConfigError

        if not spec.base_urls:
            raise ModelConfigError(
                f"model {spec.name!r}: backend openai needs base_urls, e.g. [http://localhost:8000/v1]"
            )
        return cls(
            spec.model,
            spec.base_urls,
            api_key=spec.api_key(),
            identity=spec.cache_identity(),
            max_concurrency=spec.max_concurrency,
            timeout_s=spec.timeout_s,
            idle_timeout_s=spec.idle_timeout_s,
            max_retries=spec.max_retries,
            reasoning_model=spec.reasoning_model,
            stream=spec.stream,
        )

    async def complete(self, messages: Messages, sampling: Sampling) -> Completion:
        if self.endpoints[0].client is None:
            self._open_clients()
        request = self.request_body(messages, sampling)
        # Latency counts attempts and backoff waits, not time queued for a concurrency slot.
        start, queued = time.monotonic(), 0.0
        attempts = 0
        while True:
            waiting = time.monotonic()
            # The slot is held for one attempt, not through the backoff sleep, so it bounds
            # requests actually in flight. The endpoint is picked once the slot is ours, when
            # the in-flight counts and benches are current.
            async with self._slots:
                queued += time.monotonic() - waiting
                endpoint = self._pick()
                endpoint.in_flight += 1
                try:
                    outcome = await self._attempt(endpoint, request)
                finally:
                    endpoint.in_flight -= 1
            attempts += 1
            latency = time.monotonic() - start - queued
            if isinstance(outcome, Completion):
                endpoint.succeeded()
                return outcome.model_copy(update={"latency_s": latency})
            outcome.message = redact(outcome.message, [self.api_key])
            if outcome.retryable:
                endpoint.failed()
            if not outcome.retryable or attempts > self.max_retries:
                tries = f" (gave up after {attempts} attempts)" if attempts > 1 else ""
                return Completion.failure(self.model, outcome.kind, outcome.message + tries, latency_s=latency)
            delay = self.backoff_delay(attempts, outcome.retry_after_s)
            log.info("retrying %s in %.2f s after %s: %s", self.model, delay, outcome.kind, outcome.message)
            await asyncio.sleep(delay)

    def request_body(self, messages: Messages, sampling: Sampling) -> dict:
        """The JSON body of a chat completion request; unset settings are left out."""
        args: dict = {"model": self.model, "messages": messages, "stream": self.stream}
        if self.stream:
            args["stream_options"] = {"include_usage": True}
        optional = {"temperature": sampling.temperature, "top_p": sampling.top_p, "seed": sampling.seed,
                    "reasoning_effort": sampling.reasoning_effort, "stop": list(sampling.stop) or None}
        args.update({name: value for name, value in optional.items() if value is not None})
        if sampling.max_tokens is not None:
            # OpenAI's reasoning models refuse max_tokens; vLLM and SGLang accept both names.
            args["max_completion_tokens" if self.reasoning_model else "max_tokens"] = sampling.max_tokens
        # Not OpenAI parameters: vLLM and SGLang read them from the top level of the body.
        if sampling.top_k is not None:
            args["top_k"] = sampling.top_k
        if sampling.thinking is not None:
            # Passed to the chat template (Qwen3's switch is enable_thinking).
            args["chat_template_kwargs"] = {"enable_thinking": sampling.thinking}
        return args

    def backoff_delay(self, attempts: int, retry_after_s: float | None) -> float:
        """Full jitter: a uniform draw below an exponential cap, so calls that failed together
        do not retry together; never shorter than the server's Retry-After (capped)."""
        cap = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempts - 1))
        delay = self.rng.uniform(0, cap)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.retry_after_cap_s))
        return delay

    def _pick(self) -> Endpoint:
        """Least in flight among endpoints not benched; ties go to the least recently picked."""
        now = time.monotonic()
        self._picks += 1
        best = min(self.endpoints, key=lambda e: (e.benched_until > now, e.in_flight, e.last_pick))
        best.last_pick = self._picks
        return best

    def _open_clients(self) -> None:
        """The SDK's clients, made at the first call (see the module's docstring)."""
        import openai

        for endpoint in self.endpoints:
            # A placeholder key, not None: the SDK would otherwise send $OPENAI_API_KEY to any server.
            endpoint.client = openai.AsyncOpenAI(
                base_url=endpoint.url, api_key=self.api_key or "no-key", max_retries=0,
                timeout=openai.Timeout(self.timeout_s, connect=min(self.timeout_s, 30.0)),
                http_client=openai.DefaultAioHttpClient(verify=tls_context()),
            )
            endpoint.chat_url = str(endpoint.client.base_url).rstrip("/") + "/chat/completions"
        self.request_options = {"headers": {RAW_STREAM: "stream", **{name: openai.Omit() for name in TELEMETRY}}}

    async def _attempt(self, endpoint: Endpoint, request: dict) -> Completion | Failure:
        import openai  # for the exception classes (loaded by _open_clients)

        # One body arrives only when the answer is done: no idle clock then, the total one alone.
        clocks = Clocks(self.timeout_s, self.idle_timeout_s if self.stream else self.timeout_s)
        try:
            async with asyncio.timeout_at(clocks.deadline()) as timer:  # a time on the loop's clock, not a delay
                outcome = await self._read(endpoint, request, lambda: clocks.heard(timer))
        except TimeoutError:
            outcome = Failure("timeout", clocks.expired(), retryable=True)
        except openai.APIStatusError as err:
            return status_failure(endpoint.url, err)
        except openai.APIConnectionError as err:  # APITimeoutError is a subclass
            return connection_failure(endpoint.url, err, self.timeout_s)
        if isinstance(outcome, Failure):
            outcome.message = f"{endpoint.url}: {outcome.message}"
        return outcome

    async def _read(self, endpoint: Endpoint, request: dict, heard) -> Completion | Failure:
        """One answer, streamed or in one body; `heard()` restarts the idle clock whenever bytes arrive."""
        import httpx2  # the SDK's HTTP layer, loaded with it

        http = await endpoint.client.post(endpoint.chat_url, body=request, cast_to=httpx2.Response,
                                          options=self.request_options)
        reader = StreamReader(self.model)
        try:
            heard()
            if "text/event-stream" not in http.headers.get("content-type", ""):
                return parse_completion(self.model, await http.aread())  # a server that did not stream
            async for data in http.aiter_bytes():
                heard()
                if failure := reader.feed_bytes(data):
                    return failure
                if reader.done:
                    break
            else:
                if failure := reader.finish():
                    return failure
        except httpx2.RequestError as err:  # the SDK wraps transport errors only in what it reads itself
            return Failure("connection", f"the connection dropped mid-answer ({type(err).__name__}: {err})",
                           retryable=True)
        finally:
            await http.aclose()
        return reader.result()

    async def aclose(self) -> None:
        for endpoint in self.endpoints:
            if endpoint.client is not None:
                await endpoint.client.close()


@cache
def tls_context() -> ssl.SSLContext:
    """One TLS context for every client of the process: each one the SDK makes for itself loads
    the certificate bundle again, about a tenth of a second of CPU."""
    import httpx2

    return httpx2.create_ssl_context()


def status_failure(url: str, err: openai.APIStatusError) -> Failure:
    code = err.status_code
    text = err.message[:ERROR_TEXT_LIMIT]
    message = f"{url}: HTTP {code}: {text}"
    if code in (400, 413) and CONTEXT_LENGTH.search(f"{text} {err.code}"):
        return Failure("context_length", message, retryable=False)
    if code in (401, 403):
        return Failure("auth", f"{message}; check the API key and its environment variable", retryable=False)
    retryable = code in (408, 429) or code >= 500
    return Failure(f"http_{code}", message, retryable, retry_after(err.response.headers) if retryable else None)


def retry_after(headers) -> float | None:
    """Seconds from `retry-after-ms` or `Retry-After`; the HTTP-date form is rare from LLM servers."""
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        try:
            return max(0.0, float(headers[name]) * scale)
        except (KeyError, ValueError):
            continue
    return None


class Clocks:
    """The idle and total deadlines of one attempt, on the event loop's clock."""

    def __init__(self, total_s: float, idle_s: float):
        self.total_s, self.idle_s = total_s, idle_s
        self.ends = asyncio.get_running_loop().time() + total_s

    def deadline(self) -> float:
        """When the attempt times out unless another chunk arrives first."""
        return min(self.ends, asyncio.get_running_loop().time() + self.idle_s)

    def heard(self, timer: asyncio.Timeout) -> None:
        """Something arrived: push the timeout back to `deadline()`. Only when that moves it by a
        hundredth of the idle time or more: a stream's lines come far faster than that, and
        rescheduling the timer for each took a tenth of a call's CPU at instant answers."""
        deadline = self.deadline()
        if deadline - timer.when() >= self.idle_s / 100:
            timer.reschedule(deadline)

    def expired(self) -> str:
        if asyncio.get_running_loop().time() >= self.ends - 1e-3:
            return f"no complete answer within the total timeout of {self.total_s:g} s"
        return f"nothing received for {self.idle_s:g} s (the idle timeout): a hung connection or server"


def connection_failure(url: str, err: openai.APIConnectionError, timeout_s: float) -> Failure:
    chain = []
    cause: BaseException | None = err
    while cause is not None:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    # The aiohttp transport maps a dropped connection to a *timeout* error, so look for a real
    # timeout at the root rather than trusting the SDK's class.
    if any(isinstance(e, TimeoutError) for e in chain):
        return Failure("timeout", f"{url}: no response within {timeout_s:g} s", retryable=True)
    root = chain[-1]
    return Failure(
        "connection",
        f"{url}: connection failed ({type(root).__name__}: {root}); check that the server is running "
        "and that the URL is right (it usually ends in /v1)",
        retryable=True,
    )
