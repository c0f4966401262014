"""The embedded backend: batching, stop strings, the conversion cache, and (slow) the real model."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from pathlib import Path

import pytest

from qednano.llm.embedded import (
    ConversionError,
    EmbeddedBackend,
    Job,
    Row,
    convert,
    converted_dir,
    cut_at_stop,
    ensure_converted,
    file_digest,
    find_gguf,
    search_options,
    take_batch,
)
from qednano.llm.model import Model
from qednano.llm.types import Sampling
from qednano.paths import cache_root

MODEL = "SmolLM2-135M-Instruct"


# --- pure helpers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, stops, expected",
    [
        ("a proof. QED", ("QED",), ("a proof. ", True)),
        ("one\ntwo", ("\n", "two"), ("one", True)),  # the earliest stop wins, whatever its order
        ("two\none", ("\n", "two"), ("", True)),
        ("nothing here", ("QED",), ("nothing here", False)),
        ("empty stops", (), ("empty stops", False)),
        ("an empty stop string is ignored", ("",), ("an empty stop string is ignored", False)),
    ],
)
def test_cut_at_stop(text, stops, expected):
    assert cut_at_stop(text, stops) == expected


def job(ids: list[int], **settings) -> Job:
    return Job([{"role": "user", "content": "-"}], Sampling(**settings), ids=ids)


def test_requests_differing_only_in_seed_share_a_batch_in_arrival_order():
    jobs = [job([1, 2], temperature=1, seed=s) for s in range(3)]
    other_prompt = job([1, 3], temperature=1, seed=0)
    other_settings = job([1, 2], temperature=0.5, seed=0)
    batch, rest = take_batch([jobs[0], other_prompt, jobs[1], other_settings, jobs[2]])
    assert batch == jobs
    assert rest == [other_prompt, other_settings]


def test_batches_are_capped_and_the_overflow_waits():
    jobs = [job([7], temperature=1, seed=s) for s in range(11)]
    batch, rest = take_batch(jobs, cap=8)
    assert batch == jobs[:8] and rest == jobs[8:]


def test_search_options_map_greedy_sampling_and_seeds():
    assert search_options(Sampling(), 50, 1) == {"max_length": 50, "batch_size": 1, "do_sample": False}
    assert search_options(Sampling(temperature=0, seed=3), 50, 2)["do_sample"] is False
    sampled = search_options(Sampling(temperature=0.7, seed=-1), 90, 4)
    # onnxruntime-genai's own default top_k is 50: unset must mean "no top-k" (0)
    assert sampled == {"max_length": 90, "batch_size": 4, "do_sample": True, "temperature": 0.7,
                       "top_p": 1.0, "top_k": 0, "random_seed": 0x7FFFFFFF}


class PieceStream:
    """Stands in for onnxruntime-genai's detokenizer stream: token t decodes to PIECES[t]."""

    PIECES = {10: "so ", 11: "Q", 12: "E", 13: "D", 14: " more"}

    def decode(self, token: int) -> str:
        return self.PIECES[token]


def test_a_stop_string_split_over_tokens_ends_the_row():
    row = Row(PieceStream())
    for token in [10, 11, 12, 13]:
        assert row.finish is None
        row.push(token, eos={2}, stops=("QED",), max_new=100)
    assert row.finish == "stop" and row.tokens == [10, 11, 12, 13]


def test_a_row_ends_at_eos_or_at_its_token_budget():
    ended = Row(PieceStream())
    ended.push(10, eos={2}, stops=(), max_new=5)
    ended.push(2, eos={2}, stops=(), max_new=5)
    assert ended.finish == "stop" and ended.tokens == [10, 2]  # the end token is counted
    capped = Row(PieceStream())
    for token in [10, 14]:
        capped.push(token, eos={2}, stops=(), max_new=2)
    assert capped.finish == "length"


# --- the conversion cache ------------------------------------------------------------------


def test_cache_root_prefers_qednano_then_xdg_then_home(monkeypatch, tmp_path):
    monkeypatch.setenv("QEDNANO_CACHE_DIR", str(tmp_path / "q"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "q"
    monkeypatch.delenv("QEDNANO_CACHE_DIR")
    assert cache_root() == tmp_path / "xdg" / "qednano"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "qednano"


@pytest.fixture
def weights(monkeypatch, tmp_path) -> Path:
    monkeypatch.setenv("QEDNANO_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF" + bytes(100))
    return path


def test_the_converted_folder_is_named_by_weights_and_builder(weights):
    folder = converted_dir(MODEL, weights)
    assert folder.parent == cache_root() / "embedded"
    assert folder.name.startswith(f"{MODEL}-int4-fgu-{file_digest(weights)}-ogb")
    assert converted_dir(MODEL, weights, "int8").name.startswith(f"{MODEL}-int8-fgu-")  # other precision
    weights.write_bytes(b"GGUF" + bytes(101))  # other weights, another folder
    assert converted_dir(MODEL, weights) != folder


def test_each_precision_is_converted_into_its_own_folder(weights):
    calls: list[Path] = []
    int4 = ensure_converted(MODEL, weights, converter=fake_converter(calls))
    int8 = ensure_converted(MODEL, weights, "int8", converter=fake_converter(calls))
    assert int4 != int8 and len(calls) == 2
    assert ensure_converted(MODEL, weights, "int8", converter=fake_converter(calls)) == int8
    assert len(calls) == 2


def test_the_builder_is_asked_for_the_chosen_precision(monkeypatch, tmp_path):
    commands: list[list[str]] = []

    def run(command, **kwargs):
        commands.append(command)
        if "onnxruntime_genai.models.builder" in command:
            out = Path(command[command.index("-o") + 1])
            out.mkdir(parents=True)
            (out / "genai_config.json").write_text("{}")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr("qednano.llm.embedded.subprocess.run", run)
    convert(tmp_path / "model.gguf", tmp_path / "onnx", "int8")
    builder = commands[-1]
    assert builder[builder.index("-p") + 1] == "int8"


def test_precision_is_part_of_the_backend_identity(weights):
    assert EmbeddedBackend(MODEL, weights).identity != EmbeddedBackend(MODEL, weights, "int8").identity
    with pytest.raises(ValueError, match="int4, int8"):
        EmbeddedBackend(MODEL, weights, "fp8")


def fake_converter(calls: list[Path], delay_s: float = 0.0):
    def convert(gguf: Path, out: Path, precision: str) -> None:
        calls.append(out)
        time.sleep(delay_s)
        out.mkdir()
        (out / "genai_config.json").write_text("{}")

    return convert


def test_concurrent_first_uses_convert_once(weights):
    calls: list[Path] = []
    results: list[Path] = []
    convert = fake_converter(calls, delay_s=0.3)
    threads = [threading.Thread(target=lambda: results.append(ensure_converted(MODEL, weights, converter=convert)))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert results == [converted_dir(MODEL, weights)] * 3
    assert ensure_converted(MODEL, weights, converter=fake_converter(calls)) == results[0]
    assert len(calls) == 1  # converted folders are reused
    leftovers = [p.name for p in results[0].parent.iterdir() if p.name.startswith(".converting")]
    assert leftovers == []  # the work folder is gone


def test_a_failed_conversion_leaves_no_folder_behind(weights):
    def broken(gguf: Path, out: Path, precision: str) -> None:
        out.mkdir()
        raise RuntimeError("builder crashed")

    with pytest.raises(RuntimeError, match="builder crashed"):
        ensure_converted(MODEL, weights, converter=broken)
    assert sorted(p.name for p in converted_dir(MODEL, weights).parent.iterdir()) == [
        f"{converted_dir(MODEL, weights).name}.lock"
    ]


def test_a_failing_conversion_step_raises_with_its_log(monkeypatch, tmp_path):
    fake_python = tmp_path / "python"
    fake_python.write_text("#!/bin/sh\necho 'dequantizing...'\necho 'KeyError: blk.0.attn_q' >&2\nexit 3\n")
    fake_python.chmod(0o755)
    monkeypatch.setattr("sys.executable", str(fake_python))
    with pytest.raises(ConversionError, match=r"(?s)exit 3.*dequantizing.*KeyError: blk.0.attn_q"):
        convert(tmp_path / "model.gguf", tmp_path / "onnx")


def test_an_unknown_embedded_model_names_the_known_ones():
    with pytest.raises(ValueError, match=MODEL):
        find_gguf("GPT-9-embedded")


# --- the worker, with a stand-in engine ----------------------------------------------------


class LetterTokenizer:
    """Token ids are character codes; a chat prompt is the last message's characters."""

    def apply_chat_template(self, messages, **kwargs) -> dict:
        return {"input_ids": [ord(c) for c in messages[-1]["content"]]}

    def decode(self, tokens: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(chr(t) for t in tokens if t != 2)

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [ord(c) for c in text]


class StandIn:
    """Replaces the engine: row i of a batch writes 'r<i>. END' then the end token."""

    def __init__(self, backend: EmbeddedBackend, context_length: int = 40):
        self.batches: list[list[Job]] = []
        self.fail_next = False
        backend.load = lambda: (None, None, LetterTokenizer(), {"context_length": context_length})
        backend._generate = self.generate

    def generate(self, batch: list[Job]) -> list[Row]:
        self.batches.append(batch)
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("onnxruntime exploded")
        return [Row(None, tokens=[ord(c) for c in f"r{i}. END"] + [2], finish="stop") for i in range(len(batch))]


@pytest.fixture
async def stand_in(weights):
    backend = EmbeddedBackend(MODEL, weights)
    yield backend, StandIn(backend)
    await backend.aclose()


ASK = [{"role": "user", "content": "prove it"}]


async def test_samples_requested_together_run_as_one_batch(stand_in):
    backend, engine = stand_in
    handovers = []
    flush = backend._flush
    backend._flush = lambda: (handovers.append(len(backend._pending)), flush())
    done = await Model("m", backend).generate(ASK, Sampling(temperature=1, seed=5, n=3, stop=(" END",)))
    assert handovers == [3]  # handed to the worker in one go, not as the worker happens to wake
    assert [len(b) for b in engine.batches] == [3]
    assert [b.sampling.seed for b in engine.batches[0]] == [5, 6, 7]
    assert [c.content for c in done] == ["r0.", "r1.", "r2."]  # cut at the stop string
    assert all(c.usage.prompt_tokens == 8 and c.usage.completion_tokens == 8 for c in done)
    assert identity_ok(backend.identity)


def identity_ok(identity: str) -> bool:
    kind, model, precision, digest = identity.split("|")
    return (kind, model, precision) == ("embedded", MODEL, "int4") and len(digest) == 16


async def test_different_prompts_run_in_separate_batches(stand_in):
    backend, engine = stand_in
    asks = [[{"role": "user", "content": text}] for text in ["a", "b", "a"]]
    done = await asyncio.gather(*[backend.complete(a, Sampling()) for a in asks])
    assert sorted(len(b) for b in engine.batches) == [1, 2]
    assert all(c.ok for c in done)


async def test_a_crash_in_generation_is_a_recorded_failure_and_the_worker_goes_on(stand_in):
    backend, engine = stand_in
    engine.fail_next = True
    failed = await backend.complete(ASK, Sampling())
    assert not failed.ok and failed.error_kind == "embedded_error" and "exploded" in failed.error
    again = await backend.complete(ASK, Sampling())
    assert again.ok and again.content == "r0. END"


async def test_a_prompt_that_fills_the_context_fails_with_context_length(stand_in):
    backend, engine = stand_in
    done = await backend.complete([{"role": "user", "content": "x" * 40}], Sampling())
    assert done.error_kind == "context_length" and "maximum context length" in done.error
    assert engine.batches == []


async def test_a_model_that_cannot_load_fails_each_call(weights):
    backend = EmbeddedBackend(MODEL, weights)

    def cannot_load():
        raise OSError("disk on fire")

    backend.load = cannot_load
    done = await backend.complete(ASK, Sampling())
    assert done.error_kind == "embedded_load" and "disk on fire" in done.error
    await backend.aclose()


async def test_the_backend_works_again_after_aclose(stand_in):
    backend, _ = stand_in
    assert (await backend.complete(ASK, Sampling())).ok
    await backend.aclose()
    assert (await backend.complete(ASK, Sampling())).ok
    await backend.aclose()


# --- the real model (converted once per machine, loaded once per session) -------------------


@pytest.fixture(scope="session")
def smollm2():
    backend = EmbeddedBackend(MODEL, find_gguf(MODEL))
    backend.load()
    yield backend
    asyncio.run(backend.aclose())


PROOF = [{"role": "user", "content": "Prove that the sum of two even numbers is even."}]


@pytest.mark.slow
async def test_greedy_generation_is_deterministic_and_honours_a_stop_string(smollm2):
    first = await smollm2.complete(PROOF, Sampling(temperature=0, max_tokens=40))
    second = await smollm2.complete(PROOF, Sampling(temperature=0, max_tokens=40))
    assert first.ok and first.content.strip() != ""
    assert first.content == second.content and first.usage == second.usage
    word = first.content.split()[4]
    stopped = await smollm2.complete(PROOF, Sampling(temperature=0, max_tokens=40, stop=(word,)))
    assert stopped.finish_reason == "stop"
    assert stopped.content == first.content[: first.content.index(word)].strip()


@pytest.mark.slow
async def test_n_samples_come_back_with_exact_token_counts(smollm2):
    prompt_ids = smollm2.load()[2].apply_chat_template(PROOF, add_generation_prompt=True, tokenize=True,
                                                       return_dict=True)["input_ids"]
    done = await Model("smollm2", smollm2).generate(PROOF, Sampling(temperature=1.0, seed=1, n=3, max_tokens=12))
    assert [c.sample_index for c in done] == [0, 1, 2]
    assert all(c.ok and c.usage.prompt_tokens == len(prompt_ids) for c in done)
    for c in done:
        assert c.usage.completion_tokens == 12 if c.finish_reason == "length" else c.usage.completion_tokens < 12
    assert len({c.content for c in done}) > 1  # sampled, not three copies


@pytest.mark.slow
async def test_max_tokens_ends_with_length(smollm2):
    essay = [{"role": "user", "content": "Write a long essay about the history of geometry."}]
    done = await smollm2.complete(essay, Sampling(temperature=0, max_tokens=8))
    assert done.finish_reason == "length" and done.usage.completion_tokens == 8


@pytest.mark.slow
async def test_a_prompt_longer_than_the_context_is_a_context_length_failure(smollm2):
    done = await smollm2.complete([{"role": "user", "content": "hi " * 9000}], Sampling(max_tokens=4))
    assert not done.ok and done.error_kind == "context_length"


@pytest.mark.slow
async def test_the_int8_model_file_converts_and_generates():
    from qednano.llm.registry import load_model

    model = load_model("smollm2-int8")
    assert model.backend.identity.startswith(f"embedded|{MODEL}|int8|")
    done = await model.complete(PROOF, Sampling(temperature=0, max_tokens=8))
    await model.backend.aclose()
    assert done.ok and done.content.strip() and done.usage.completion_tokens == 8
