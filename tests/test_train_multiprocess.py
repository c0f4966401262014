"""The tiny SFT and GRPO recipes as 2 processes (torchrun, DDP over gloo), against 1 process."""

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest
from fault_server import FaultServer, reply

from qednano.grading.untrusted import PROOF_BEGIN
from qednano.train.policy import save_tiny_random_policy as save_tiny_policy

REPO = Path(__file__).resolve().parents[1]
ROWS = [{"id": f"r{n}", "problem": f"Show that {n} + {n} is even.", "reasoning_content": f"{n}+{n} = 2*{n}.",
         "proof": f"{n} + {n} = 2 * {n}, a multiple of 2."} for n in range(1, 5)]


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory):
    return save_tiny_policy(tmp_path_factory.mktemp("policy"))


async def qednano(*args: str, processes: int, env: dict) -> None:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "-m", "qednano.cli"]
    command = launcher if processes > 1 else [sys.executable, "-m", "qednano.cli"]
    run = await asyncio.create_subprocess_exec(*command, *args, cwd=REPO, env=env,
                                               stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await run.communicate()
    assert run.returncode == 0, out.decode()[-3000:]


def environment(tmp_path: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "QEDNANO_CACHE_DIR": str(tmp_path / "cache"),
            "QEDNANO_MODELS": str(tmp_path / "models"), "OMP_NUM_THREADS": "1"}


def recipe(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


COMMON = "use_cpu: true\nbf16: false\ngradient_checkpointing: false\nreport_to: none\nseed: 0\nlogging_steps: 1\n"


@pytest.mark.slow
async def test_sft_on_two_processes_logs_the_mean_loss_and_writes_once(tmp_path, tiny_policy) -> None:
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    text = f"model: {tiny_policy}\ndataset: {data}\nmax_steps: 1\nsave_steps: 1\nlearning_rate: 1.0e-3\n{COMMON}"
    path, env = recipe(tmp_path, text), environment(tmp_path)
    # The same 4 rows in one step: 2 processes x 2 rows, or 1 process x 4 rows.
    await qednano("train", "sft", str(path), "--run-dir", str(tmp_path / "two"), "--set", "ddp_backend=gloo",
                  "--set", "per_device_train_batch_size=2", processes=2, env=env)
    await qednano("train", "sft", str(path), "--run-dir", str(tmp_path / "one"),
                  "--set", "per_device_train_batch_size=4", processes=1, env=env)
    two, one = metrics(tmp_path / "two"), metrics(tmp_path / "one")
    assert len(two) == len(one) == 2  # one step log and the summary: written once, not per process
    assert two[0]["loss"] == pytest.approx(one[0]["loss"], rel=0.02)
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["command"] == "train-sft" and manifest["status"] == "finished"
    assert (tmp_path / "two" / "model" / "tokenizer.json").is_file()


@pytest.mark.slow
async def test_grpo_on_two_processes_grades_each_completion_once(tmp_path, tiny_policy) -> None:
    problems = tmp_path / "problems.jsonl"
    problems.write_text("".join(json.dumps({"id": r["id"], "problem": r["problem"]}) + "\n" for r in ROWS))
    (tmp_path / "models").mkdir()
    async with FaultServer(respond=lambda body: reply("Fine.\nFINAL SCORE: 7")) as server:
        (tmp_path / "models" / "grader.yaml").write_text(
            f"name: grader\nbackend: openai\nmodel: fault-model\nbase_urls: [{server.url}]\n")
        text = (f"model: {tiny_policy}\ndataset: {problems}\nrewards: [grader]\ngraders: [grader]\n"
                f"grader_variant: no_reference\nmax_steps: 1\nsave_steps: 1\nnum_generations: 4\n"
                f"per_device_train_batch_size: 2\nmax_completion_length: 8\nno_cache: true\n{COMMON}")
        await qednano("train", "rl", str(recipe(tmp_path, text)), "--run-dir", str(tmp_path / "run"),
                      "--set", "ddp_backend=gloo", processes=2, env=environment(tmp_path))
        graded = [r for r in server.requests if PROOF_BEGIN in json.dumps(r.body)]
    rows = [json.loads(line) for line in (tmp_path / "run" / "completions.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and len({r["problem_id"] for r in rows}) == 1  # one group of 4 over 2 processes
    assert len(graded) == 4  # each completion graded once, by the process that generated it
    assert all(r["reward"] == 1.0 and r["grade_status"] == "graded" for r in rows)
    assert len(metrics(tmp_path / "run")) == 2
    # The manifest counts both processes' grader calls, not only the main one's.
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["totals"]["models"]["grader"]["calls"] == len(graded) == 4
