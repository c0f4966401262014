"""`qednano train sft|rl`: recipes, --set, errors before training, and resuming a killed run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qednano.cli import app
from qednano.train.policy import save_tiny_random_policy as save_tiny_policy

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
ROWS = [{"problem": f"Show that {n} + {n} is even.", "reasoning_content": "Double.", "proof": f"{n} + {n} = 2 * {n}."}
        for n in range(1, 5)]


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory):
    return save_tiny_policy(tmp_path_factory.mktemp("policy"))


def sft_recipe(tmp_path: Path, model: Path, extra: str = "") -> Path:
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    path = tmp_path / "sft.yaml"
    path.write_text(f"model: {model}\ndataset: sft.jsonl\nuse_cpu: true\nbf16: false\ngradient_checkpointing: false\n"
                    f"report_to: none\nper_device_train_batch_size: 2\nlogging_steps: 1\nmax_steps: 2\n{extra}")
    return path


def test_unknown_recipe_field_is_one_line_naming_file_and_field(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("dataset: x.jsonl\nlearnig_rate: 1\n")
    result = runner.invoke(app, ["train", "sft", str(path)])
    assert result.exit_code == 2
    assert "bad.yaml: unknown field 'learnig_rate' for SFTRecipe; did you mean learning_rate" in result.output


def test_a_mistyped_set_key_fails_too(tmp_path, tiny_policy) -> None:
    result = runner.invoke(app, ["train", "rl", "rl-tiny-addition", "--set", "num_generatons=4"])
    assert result.exit_code == 2
    assert "rl-tiny-addition.yaml: unknown field 'num_generatons' for RLRecipe" in result.output


def test_train_sft_with_set_overrides_writes_the_run(tmp_path, tiny_policy) -> None:
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", "sft", str(sft_recipe(tmp_path, tiny_policy)), "--run-dir", str(run),
                                 "--set", "max_steps=1", "--set", "save_steps=1"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["config"]["max_steps"] == 1 and manifest["config"]["dataset"].endswith("sft.jsonl")
    assert (run / "checkpoint-1").is_dir() and (run / "model" / "config.json").is_file()


@pytest.mark.slow
def test_a_killed_sft_run_resumes_from_its_last_checkpoint(tmp_path, tiny_policy) -> None:
    run = tmp_path / "run"
    recipe = sft_recipe(tmp_path, tiny_policy, "save_steps: 2\nsave_total_limit: 3\n")
    command = [sys.executable, "-m", "qednano.cli", "train", "sft", str(recipe), "--run-dir", str(run),
               "--set", "max_steps=100000"]  # killed long before the end
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while not list(run.glob("checkpoint-*/trainer_state.json")) and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(1)
    child.send_signal(signal.SIGKILL)
    child.wait()
    killed_at = max(int(p.name.split("-")[1]) for p in run.glob("checkpoint-*") if (p / "trainer_state.json").is_file())
    assert json.loads((run / "manifest.json").read_text())["status"] == "running"  # killed, not finished
    done = subprocess.run([*command[:-1], f"max_steps={killed_at + 2}"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    # The second run starts after the checkpoint: its two step logs, then its summary line.
    assert steps[-3:] == [killed_at + 1, killed_at + 2, killed_at + 2]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["resumes"] == 1
