"""Reasoning-cache RL through `qednano train rl`'s trainer: states in the prompts, the run directory, eval."""

from __future__ import annotations

import json
import re

import pytest

grpo = pytest.importorskip("qednano.train.grpo", reason="needs the GRPO trainer (train-grpo)")

from qednano.llm.scripted import BUILTIN_SCRIPTS  # noqa: E402

SUMS = [(1, 2), (3, 4), (5, 1)]


@pytest.fixture
def problems(tmp_path, scripted_registry, monkeypatch):
    """An addition set with answers, and a registered scripted summarizer writing numbered notes."""
    notes = iter(range(10_000))
    monkeypatch.setitem(BUILTIN_SCRIPTS, "note-writer", lambda messages, sampling: f"NOTE{next(notes)}")
    (scripted_registry / "note-writer.yaml").write_text("backend: scripted\nmodel: note-writer\n")
    data = tmp_path / "addition.jsonl"
    data.write_text("".join(json.dumps({"id": f"add-{a}-{b}", "problem": f"What is {a}+{b}? Answer in \\boxed{{}}.",
                                        "answer": str(a + b)}) + "\n" for a, b in SUMS))
    return data


def rc_recipe(tmp_path, model, data, **changes):
    settings = dict(model=str(model), dataset=str(data), rewards=["answer"], output_dir=str(tmp_path / "run"),
                    use_cpu=True, bf16=False, report_to="none", max_steps=2, per_device_train_batch_size=4,
                    num_generations=2, max_completion_length=8, learning_rate=0.05, logging_steps=1, save_steps=2,
                    seed=0, disable_tqdm=True, num_completions_to_print=0, gradient_checkpointing=False,
                    rc={"turns": 2, "states_per_problem": 2, "summarizer": "note-writer", "reasoning_tokens": 6,
                        "summary_tokens": 8, "refresh_steps": 1})
    return grpo.RLRecipe(**{**settings, **changes})


def test_rc_rl_trains_on_states_and_logs_them(tmp_path, problems):
    from tiny_models import save_tiny_checkpoint

    model = save_tiny_checkpoint(tmp_path / "policy")
    grpo.train_rl(rc_recipe(tmp_path, model, problems), {"recipe": "test"})
    run = tmp_path / "run"
    rows = [json.loads(line) for line in (run / "completions.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and all(isinstance(r["state"], int) for r in rows)
    assert {r["problem_id"] for r in rows} <= {f"add-{a}-{b}" for a, b in SUMS}
    for r in rows:
        text = r["prompt"][-1]["content"]
        assert ("Where I stand" in text) == (r["state"] > 0)
        assert len(re.findall(r"NOTE\d+", text)) == (1 if r["state"] else 0)
        assert r["grade_status"] is not None  # graded against the original problem's answer
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    keys = {key for entry in metrics for key in entry}
    assert {"rc/turns_reached", "rc/failed_rollouts", "rc/refresh_s"} <= keys
    assert any(key.startswith("rc/reward_s") for key in keys)
    assert (run / "checkpoint-2" / "config.json").is_file()


def test_the_manifest_counts_the_summarizers_calls(tmp_path, problems, monkeypatch):
    from tiny_models import save_tiny_checkpoint

    notes: list[str] = []
    monkeypatch.setitem(BUILTIN_SCRIPTS, "note-writer", lambda messages, sampling: notes.append("NOTE") or "NOTE")
    rc = {"turns": 1, "states_per_problem": 1, "summarizer": "note-writer", "reasoning_tokens": 4,
          "summary_tokens": 4, "refresh_steps": 1}
    config = rc_recipe(tmp_path, save_tiny_checkpoint(tmp_path / "policy"), problems, max_steps=1, save_steps=1,
                       no_cache=True, rc=rc)
    grpo.train_rl(config, {"recipe": "test"})
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    summarizer = manifest["totals"]["models"]["note-writer"]
    assert len(notes) == len(SUMS)  # one refresh (at the start), one turn per problem
    assert summarizer["calls"] == len(notes) and summarizer["completion_tokens"] == len(notes)


@pytest.mark.slow
def test_a_checkpoint_of_the_rc_run_is_evaluated_offline(tmp_path, problems):
    from tiny_models import save_tiny_checkpoint
    from typer.testing import CliRunner

    from qednano.cli import app

    model = save_tiny_checkpoint(tmp_path / "policy")
    grpo.train_rl(rc_recipe(tmp_path, model, problems), {"recipe": "test"})
    out = tmp_path / "eval"
    result = CliRunner().invoke(app, ["eval", "--bench", str(problems), "-m", str(tmp_path / "run" / "checkpoint-2"),
                                      "--scaffold", "rc", "--turns", "2", "--set", "reasoning_tokens=6",
                                      "--set", "summary_tokens=6", "--out", str(out)])
    assert result.exit_code == 0, result.output
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 3 and all(s["attempt"]["status"] != "failed" for s in samples)


@pytest.mark.slow
async def test_rc_rl_on_two_processes_splits_the_rollouts_and_installs_the_same_states(tmp_path):
    """Each rank rolls out and summarizes problems[rank::2]; the gathered pool is the same on both ranks,
    so a group of G spanning both ranks shares one prompt. (DDP over gloo: ZeRO-3/FSDP cannot run here.)"""
    from fault_server import FaultServer, last_user_text, reply
    from test_train_multiprocess import COMMON, environment, qednano, recipe
    from tiny_models import save_tiny_checkpoint

    def summarize(body):  # a summary naming the problem it was asked about
        return reply("NOTE on " + re.search(r"What is \d\+\d\?", last_user_text(body)).group(0))

    model = save_tiny_checkpoint(tmp_path / "policy")
    data = tmp_path / "addition.jsonl"
    data.write_text("".join(json.dumps({"id": f"add-{a}-{b}", "problem": f"What is {a}+{b}?", "answer": str(a + b)})
                            + "\n" for a, b in SUMS))
    (tmp_path / "models").mkdir()
    async with FaultServer(respond=summarize) as server:
        # The API key is torchrun's RANK variable, so each request names the process that sent it.
        (tmp_path / "models" / "notes.yaml").write_text(
            f"name: notes\nbackend: openai\nmodel: fault-model\nbase_urls: [{server.url}]\napi_key_env: RANK\n")
        text = (f"model: {model}\ndataset: {data}\nrewards: [answer]\nmax_steps: 2\nsave_steps: 2\n"
                f"num_generations: 4\nper_device_train_batch_size: 2\nmax_completion_length: 6\nno_cache: true\n"
                f"rc: {{turns: 1, states_per_problem: 2, summarizer: notes, reasoning_tokens: 6, summary_tokens: 8, "
                f"refresh_steps: 1}}\n{COMMON}")
        await qednano("train", "rl", str(recipe(tmp_path, text)), "--run-dir", str(tmp_path / "run"),
                      "--set", "ddp_backend=gloo", processes=2, env=environment(tmp_path))
        requests = list(server.requests)
    asked: dict[str, list[str]] = {}
    for request in requests:
        sender = {k.lower(): v for k, v in request.headers.items()}["authorization"].removeprefix("Bearer ")
        asked.setdefault(sender, []).append(re.search(r"What is (\d)\+(\d)", last_user_text(request.body)).group(0))
    # Two refreshes (start, after step 1), one turn: rank 0 summarized problems 0 and 2, rank 1 problem 1,
    # each after its own policy wrote the turn's reasoning.
    assert sorted(asked) == ["0", "1"]
    assert sorted(asked["0"]) == sorted(2 * ["What is 1+2", "What is 5+1"]) and asked["1"] == 2 * ["What is 3+4"]
    rows = [json.loads(line) for line in (tmp_path / "run" / "completions.jsonl").read_text().splitlines()]
    assert len(rows) == 8
    steps = sorted({r["step"] for r in rows})
    assert len(steps) == 2
    for step in steps:  # one group of 4 per step, generated 2 + 2 by the two processes from one pool slot
        group = [r for r in rows if r["step"] == step]
        assert len({json.dumps(r["prompt"]) for r in group}) == 1 and len({r["state"] for r in group}) == 1
    for r in rows:  # a state's summary is its own problem's, whichever rank summarized it
        a, b = r["problem_id"].split("-")[1:]
        notes = re.findall(r"NOTE on What is \d\+\d\?", r["prompt"][-1]["content"])
        assert notes == ([f"NOTE on What is {a}+{b}?"] if r["state"] else [])
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["totals"]["models"]["notes"]["calls"] == len(requests) == 6  # summed over both processes
