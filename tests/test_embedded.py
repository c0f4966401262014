"""The embedded backend: the conversion cache, the worker (with a stand-in decoder), and (slow) the real model."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from pathlib import Path

import pytest
from history_decoder import HistoryDecoder

from qednano.llm.embedded import (
    MAX_BATCH,
    ConversionError,
    EmbeddedBackend,
    Engine,
    convert,
    converted_dir,
    cut_at_stop,
    ensure_converted,
    file_digest,
    find_gguf,
)
from qednano.llm.model import Model
from qednano.llm.types import Sampling
from qednano.paths import cache_root

MODEL = "SmolLM2-135M-Instruct"
END = 2


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


# --- the worker, with a stand-in decoder ------------------------------------------------------


class LetterTokenizer:
    """Token ids are character codes; a chat prompt is the last message's characters."""

    def apply_chat_template(self, messages, **kwargs) -> dict:
        return {"input_ids": [ord(c) for c in messages[-1]["content"]]}

    def decode(self, tokens: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(chr(t) for t in tokens if t != END)

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [ord(c) for c in text]


class ExplodingDecoder(HistoryDecoder):
    """Fails the next step after `explode` is set."""

    explode = False

    def step(self, tokens, lengths):
        if self.explode:
            self.explode = False
            raise RuntimeError("onnxruntime exploded")
        return super().step(tokens, lengths)


@pytest.fixture
async def stand_in(weights):
    backend = EmbeddedBackend(MODEL, weights)
    decoder = ExplodingDecoder(MAX_BATCH, end=END, step_s=0.002)
    backend.load = lambda: Engine(decoder, LetterTokenizer(), context_length=400, eos={END})
    yield backend, decoder
    await backend.aclose()


ASK = [{"role": "user", "content": "prove it"}]


def ask(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


async def test_concurrent_requests_with_different_prompts_share_steps_and_equal_solo_runs(stand_in):
    backend, decoder = stand_in
    texts = ["a", "prove it", "x" * 300, "two words"]
    alone = [await backend.complete(ask(t), Sampling(max_tokens=60)) for t in texts]
    assert max(decoder.steps) == 1
    together = await asyncio.gather(*[backend.complete(ask(t), Sampling(max_tokens=60)) for t in texts])
    assert [c.content for c in together] == [c.content for c in alone]
    assert [c.usage for c in together] == [c.usage for c in alone]
    assert all(c.ok and c.usage.completion_tokens > 0 for c in together)
    assert max(decoder.steps) > 1


async def test_samples_get_their_seeds_and_counts(stand_in):
    backend, _ = stand_in
    done = await Model("m", backend).generate(ASK, Sampling(temperature=1, seed=5, n=3, max_tokens=30))
    again = await Model("m", backend).complete(ASK, Sampling(temperature=1, seed=5, n=3, max_tokens=30), 2)
    assert again.content == done[2].content  # sample 2 alone (seed 7) equals sample 2 of three
    assert len({c.content for c in done}) == 3
    assert all(c.usage.prompt_tokens == 8 for c in done)
    assert identity_ok(backend.identity)


def identity_ok(identity: str) -> bool:
    kind, model, precision, digest, engine = identity.split("|")
    return (kind, model, precision, engine) == ("embedded", MODEL, "int4", "cb") and len(digest) == 16


async def test_a_stop_string_cuts_the_content(stand_in):
    backend, _ = stand_in
    free = await backend.complete(ASK, Sampling(max_tokens=40))
    stop = free.content[5:7]
    cut = await backend.complete(ASK, Sampling(max_tokens=40, stop=(stop,)))
    assert cut.finish_reason == "stop" and cut.content == free.content[: free.content.index(stop)].strip()


async def steps_while(decoder: HistoryDecoder, count: int) -> None:
    """Wait until the decoder has run `count` more steps."""
    target = len(decoder.steps) + count
    while len(decoder.steps) < target:
        await asyncio.sleep(0.001)


async def test_a_cancelled_request_stops_at_the_next_step_and_a_short_one_is_not_starved(stand_in):
    backend, decoder = stand_in
    decoder.end = None  # the long request never ends by itself
    long = asyncio.create_task(backend.complete(ASK, Sampling(max_tokens=350)))
    await steps_while(decoder, 5)
    started = len(decoder.steps)
    short = await backend.complete(ask("quick"), Sampling(max_tokens=4))
    assert short.ok and short.usage.completion_tokens == 4
    assert len(decoder.steps) - started < 10  # the long one would have taken 340 more steps
    long.cancel()
    with pytest.raises(asyncio.CancelledError):
        await long
    cancelled_at = len(decoder.steps)
    await asyncio.sleep(0.05)  # ~25 steps' time
    assert len(decoder.steps) <= cancelled_at + 1  # at most the step already running
    assert not backend.batcher.busy


async def test_a_crash_in_generation_is_a_recorded_failure_and_the_worker_goes_on(stand_in):
    backend, decoder = stand_in
    decoder.explode = True
    failed = await backend.complete(ASK, Sampling(max_tokens=5))
    assert not failed.ok and failed.error_kind == "embedded_error" and "exploded" in failed.error
    again = await backend.complete(ASK, Sampling(max_tokens=5))
    assert again.ok and again.usage.completion_tokens == 5


async def test_a_prompt_that_fills_the_context_fails_with_context_length(stand_in):
    backend, decoder = stand_in
    done = await backend.complete(ask("x" * 400), Sampling())
    assert done.error_kind == "context_length" and "maximum context length" in done.error
    assert decoder.steps == []
    fits = await backend.complete(ask("x" * 398), Sampling())  # room for two tokens, then length
    assert fits.ok and fits.usage.completion_tokens <= 2


async def test_a_model_that_cannot_load_fails_each_call(weights):
    backend = EmbeddedBackend(MODEL, weights)

    def cannot_load():
        raise OSError("disk on fire")

    backend.load = cannot_load
    done = await backend.complete(ASK, Sampling())
    assert done.error_kind == "embedded_load" and "disk on fire" in done.error
    await backend.aclose()


async def test_closing_answers_what_is_running_and_the_backend_works_again(stand_in):
    backend, decoder = stand_in
    decoder.end = None
    running = asyncio.create_task(backend.complete(ASK, Sampling(max_tokens=300)))
    await steps_while(decoder, 3)
    await backend.aclose()
    closed = await running
    assert closed.error_kind == "closed"
    assert (await backend.complete(ASK, Sampling(max_tokens=3))).ok


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
    prompt_ids = smollm2.load().tokenizer.apply_chat_template(PROOF, add_generation_prompt=True, tokenize=True,
                                                       return_dict=True)["input_ids"]
    done = await Model("smollm2", smollm2).generate(PROOF, Sampling(temperature=1.0, seed=1, n=3, max_tokens=12))
    assert [c.sample_index for c in done] == [0, 1, 2]
    assert all(c.ok and c.usage.prompt_tokens == len(prompt_ids) for c in done)
    for c in done:
        assert c.usage.completion_tokens == 12 if c.finish_reason == "length" else c.usage.completion_tokens < 12
    assert len({c.content for c in done}) > 1  # sampled, not three copies


@pytest.mark.slow
async def test_different_prompts_together_give_what_each_gives_alone(smollm2):
    # Prompts of different lengths share every step: no padding may leak into any row.
    asks = [PROOF, ask("What is 2+2?"), ask("Let n be a positive integer. Show that n^3 - n is divisible by 6, "
                                            "using only the fact that among consecutive integers one is even.")]
    greedy, seeded = Sampling(temperature=0, max_tokens=24), Sampling(temperature=1.0, top_k=50, seed=7, max_tokens=24)
    alone = [await smollm2.complete(a, greedy) for a in asks] + [await smollm2.complete(asks[0], seeded)]
    together = await asyncio.gather(*[smollm2.complete(a, greedy) for a in asks], smollm2.complete(asks[0], seeded))
    assert [c.content for c in together] == [c.content for c in alone]
    assert all(c.ok for c in together) and together[3].content != together[0].content


@pytest.mark.slow
async def test_a_short_request_passes_a_long_one_which_stops_when_cancelled(smollm2):
    essay = ask("Write a very long essay about the history of geometry, chapter by chapter.")
    long = asyncio.create_task(smollm2.complete(essay, Sampling(temperature=1.0, top_k=50, seed=1, max_tokens=2000)))
    while smollm2.batcher is None or smollm2.batcher.steps < 3:
        await asyncio.sleep(0.01)
    started = smollm2.batcher.steps
    short = await smollm2.complete(PROOF, Sampling(temperature=0, max_tokens=8))
    assert short.ok and smollm2.batcher.steps - started < 20
    long.cancel()
    cancelled_at = smollm2.batcher.steps
    await asyncio.sleep(0.5)
    assert long.cancelled() and not smollm2.batcher.busy
    assert smollm2.batcher.steps <= cancelled_at + 1  # at most the step that was running


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
