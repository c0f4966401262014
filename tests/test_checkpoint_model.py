"""A training checkpoint folder as a model: converted once to the embedded engine, cached by content."""

from __future__ import annotations

import json
import subprocess

import pytest
from tiny_models import save_tiny_checkpoint

from qednano.llm import embedded
from qednano.llm.registry import load_model, resolve_spec
from qednano.llm.spec import ModelConfigError
from qednano.llm.types import Sampling


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = save_tiny_checkpoint(tmp_path_factory.mktemp("run") / "checkpoint-40")
    (folder / "optimizer.pt").write_bytes(b"optimizer state the model does not depend on")
    return folder


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("QEDNANO_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_checkpoint_folder_resolves_to_an_embedded_int8_spec(checkpoint):
    spec = resolve_spec(str(checkpoint))
    assert (spec.backend, spec.model, spec.precision) == ("embedded", str(checkpoint), "int8")


def test_a_folder_without_config_is_refused_with_the_fix(tmp_path):
    with pytest.raises(ModelConfigError, match="has no config.json"):
        resolve_spec(str(tmp_path))


def test_the_cache_key_follows_the_model_files_only(tmp_path, checkpoint):
    copy = save_tiny_checkpoint(tmp_path / "copy")
    assert embedded.checkpoint_digest(copy) == embedded.checkpoint_digest(checkpoint)
    (copy / "trainer_state.json").write_text("{}")  # trainer files do not change the model
    assert embedded.checkpoint_digest(copy) == embedded.checkpoint_digest(checkpoint)
    retrained = save_tiny_checkpoint(tmp_path / "retrained", seed=1)
    assert embedded.checkpoint_digest(retrained) != embedded.checkpoint_digest(checkpoint)
    config = json.loads((copy / "generation_config.json").read_text())
    (copy / "generation_config.json").write_text(json.dumps({**config, "temperature": 0.3}))
    assert embedded.checkpoint_digest(copy) != embedded.checkpoint_digest(checkpoint)


def test_a_checkpoint_without_safetensors_names_the_fix(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="no \\*.safetensors weights"):
        embedded.checkpoint_digest(tmp_path)


async def test_a_checkpoint_converts_once_and_generates(checkpoint, cache, monkeypatch):
    model = load_model(str(checkpoint))
    [done] = await model.generate([{"role": "user", "content": "Prove that 1 + 1 = 2."}],
                                  Sampling(max_tokens=6, temperature=0))
    await model.aclose()
    assert done.ok, done.error
    assert done.usage.completion_tokens == 6 and done.finish_reason == "length"
    [converted] = [p for p in (cache / "embedded").iterdir() if p.is_dir()]
    assert converted.name.startswith("checkpoint-40-int8-")
    assert embedded.checkpoint_digest(checkpoint) in converted.name

    def no_conversion(*args, **kwargs):
        raise AssertionError("the checkpoint was converted a second time")

    monkeypatch.setattr(subprocess, "run", no_conversion)
    again = load_model(str(checkpoint))
    [second] = await again.generate([{"role": "user", "content": "Prove that 1 + 1 = 2."}],
                                    Sampling(max_tokens=6, temperature=0))
    await again.aclose()
    assert second.ok and second.content == done.content  # greedy: the same converted model


@pytest.mark.slow
def test_train_then_eval_a_checkpoint_offline(tmp_path, cache):
    """The loop closes on this machine: an RL run's checkpoint is evaluated by `qednano eval`."""
    from tiny_models import smollm2_tokenizer, tiny_llama
    from trl import GRPOConfig, GRPOTrainer
    from typer.testing import CliRunner

    from qednano.cli import app

    rows = [{"id": f"add-{a}-{b}", "problem": f"What is {a}+{b}? Put the final answer in \\boxed{{}}.",
             "answer": str(a + b)} for a, b in [(1, 2), (3, 4), (5, 1)]]
    bench = tmp_path / "addition.jsonl"
    bench.write_text("".join(json.dumps(row) + "\n" for row in rows))

    def boxed(completions, answer, **_):
        return [float(f"\\boxed{{{a}}}" in c[-1]["content"]) for c, a in zip(completions, answer, strict=True)]

    from datasets import Dataset
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": r["problem"]}], "answer": r["answer"]}
                              for r in rows])
    args = GRPOConfig(output_dir=str(tmp_path / "run"), use_cpu=True, bf16=False, max_steps=2, num_generations=2,
                      per_device_train_batch_size=2, max_completion_length=8, save_steps=2, report_to=[], seed=0)
    GRPOTrainer(model=tiny_llama(), processing_class=smollm2_tokenizer(), args=args, train_dataset=data,
                reward_funcs=[boxed]).train()
    checkpoint = tmp_path / "run" / "checkpoint-2"
    assert (checkpoint / "optimizer.pt").is_file()  # a real trainer checkpoint, not a bare model folder

    out = tmp_path / "eval"
    result = CliRunner().invoke(app, ["eval", "--bench", str(bench), "--task", "answer", "-m", str(checkpoint),
                                      "--max-tokens", "8", "--out", str(out)])
    assert result.exit_code == 0, result.output
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 3
    assert all(s["attempt"]["steps"][0]["completion"]["model"] == str(checkpoint) for s in samples)
    assert all(s["grade"] is not None for s in samples)  # each answer was checked (random weights: no box)
    counts = json.loads((out / "report.json").read_text())["counts"]
    assert (counts["samples"], counts["failed"], counts["pending"]) == (3, 0, 0)
