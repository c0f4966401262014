"""Loud failures: literal error lines, failure summaries, --max-failures, totals over resumes."""

import asyncio
import json
import socket

import pytest
from typer.testing import CliRunner

from qednano.cli import app
from qednano.llm.scripted import BUILTIN_SCRIPTS
from qednano.llm.types import Completion
from qednano.records.failures import allowance

runner = CliRunner()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---- 1. what users and exceptions wrote is printed as written ---------------------------------


@pytest.mark.parametrize("bench", ["data[/]/nope.jsonl", "data[v2]/x.jsonl", "runs/[bold]x[/bold].jsonl"])
def test_an_error_naming_a_bracketed_path_prints_it_literally(scripted_registry, bench):
    result = runner.invoke(app, ["eval", "--bench", bench, "-m", "openai:x@http://127.0.0.1:9/v1"])
    assert result.exit_code == 2, result.output
    assert f"error: '{bench}' is not a benchmark name" in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_a_yaml_error_keeps_its_brackets(scripted_registry, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\nbackend: [openai\n")
    result = runner.invoke(app, ["solve", "x", "-m", str(broken)])
    assert result.exit_code == 2
    assert "[openai" in result.output and "not valid YAML" in result.output


def test_a_redacted_key_in_a_failure_shows_as_redacted(scripted_registry, monkeypatch):
    def rejected(messages, sampling):
        return Completion.failure("keyed", "auth", "http://h/v1: HTTP 401: rejected Bearer [redacted]")

    monkeypatch.setitem(BUILTIN_SCRIPTS, "keyed", rejected)
    (scripted_registry / "keyed.yaml").write_text("name: keyed\nbackend: scripted\nmodel: keyed\n")
    result = runner.invoke(app, ["solve", "x", "-m", "keyed"])
    assert result.exit_code == 1
    assert "Bearer [redacted]" in result.output
    assert "auth" in result.output  # the failure summary names the kind


# ---- 3. a run whose calls fail says so, stops, and exits non-zero ------------------------------


def test_an_eval_against_an_unreachable_url_fails_loudly(flaky_bench, scripted_registry, tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    (scripted_registry / "dead.yaml").write_text(
        f"name: dead\nbackend: openai\nmodel: x\nbase_urls: [{url}]\nmax_retries: 0\n")
    out = tmp_path / "run"
    result = runner.invoke(app, ["eval", "--bench", str(flaky_bench), "--limit", "3", "-m", "dead", "--out", str(out),
                                 "--max-failures", "5"])
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "every sample failed" in text and "3 of 3 samples failed" in text
    assert "generation connection" in text and url in text  # the kind and one example message
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    report = json.loads((out / "report.json").read_text())
    [kind] = report["failures"]["kinds"]
    assert (report["failures"]["failed"], kind["stage"], kind["kind"], kind["count"]) == (3, "generation", "connection", 3)
    assert "## Failures" in (out / "report.md").read_text()


def fails_on_odd_problems(messages, sampling):
    text = messages[-1]["content"]
    odd = any(f"problem number {i}" in text for i in (1, 3, 5, 7, 9))
    return Completion.failure("flaky", "http_503", "injected 503") if odd else "Proof. Fine."


@pytest.fixture
def flaky_bench(scripted_registry, tmp_path, monkeypatch):
    monkeypatch.setitem(BUILTIN_SCRIPTS, "flaky", fails_on_odd_problems)
    (scripted_registry / "flaky.yaml").write_text("name: flaky\nbackend: scripted\nmodel: flaky\n")
    bench = tmp_path / "bench.jsonl"
    bench.write_text("".join(json.dumps({"id": f"p{i}", "statement": f"Prove problem number {i}."}) + "\n"
                             for i in range(10)))
    return bench


def test_failures_past_the_tolerance_stop_the_run_early(flaky_bench, tmp_path):
    out = tmp_path / "run"
    args = ["eval", "--bench", str(flaky_bench), "-m", "flaky", "--concurrency", "1", "--out", str(out)]
    result = runner.invoke(app, [*args, "--max-failures", "2"])
    assert result.exit_code == 1, result.output
    assert "stopped early: 3 samples failed" in " ".join(result.output.split())
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 6  # p0..p5: the third failure (p5) stopped it; p6..p9 never ran
    report = json.loads((out / "report.json").read_text())
    assert report["failures"]["failed"] == 3 and report["counts"]["samples"] == 6
    assert json.loads((out / "manifest.json").read_text())["status"] == "failed"


def test_failures_within_the_tolerance_finish_with_a_summary(flaky_bench, tmp_path):
    out = tmp_path / "run"
    args = ["eval", "--bench", str(flaky_bench), "-m", "flaky", "--out", str(out), "--max-failures", "0.5"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "5 of 10 samples failed (generation http_503: 5)" in text and "injected 503" in text  # the table's example
    report = json.loads((out / "report.json").read_text())
    assert report["failures"]["kinds"][0]["example"] == "injected 503"


@pytest.mark.parametrize(("setting", "total", "allowed"), [(0.1, 600, 60), (0.07, 100, 7), (0.1, 5, 1), (0.25, 10, 3), (0, 9, 0), (3, 10, 3), (1, 1, 1)])
def test_max_failures_is_a_fraction_below_one_and_a_count_above(setting, total, allowed):
    assert allowance(setting, total) == allowed


def test_max_failures_refuses_a_fractional_count():
    with pytest.raises(ValueError, match="whole count"):
        allowance(2.5, 10)


# ---- 7. a resumed run's manifest says what the whole run cost ---------------------------------


def test_resumed_totals_are_the_sum_of_the_invocations(flaky_bench, tmp_path):
    out = tmp_path / "run"
    base = ["eval", "--bench", str(flaky_bench), "-m", "echo", "--out", str(out), "--limit", "4"]
    for samples in ("1", "2", "2"):  # a run, a resume that adds samples, a resume with nothing to do
        assert runner.invoke(app, [*base, "-n", samples]).exit_code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    calls = [i["totals"]["models"]["echo"]["calls"] for i in manifest["invocations"]]
    assert calls == [4, 4, 0] and manifest["resumes"] == 2
    totals = manifest["totals"]
    assert totals["models"]["echo"]["calls"] == 8
    for figure in ("tokens", "cost_usd"):
        assert totals[figure] == pytest.approx(sum(i["totals"][figure] for i in manifest["invocations"]))
    assert totals["tokens"] > 0 and totals["cost_usd"] > 0
    assert manifest["wall_s"] == pytest.approx(sum(i["wall_s"] for i in manifest["invocations"]), abs=0.01)


async def test_a_running_manifest_is_rewritten_with_what_was_spent_so_far(tmp_path):
    from qednano.llm.model import Model
    from qednano.llm.scripted import ScriptedBackend
    from qednano.records.rundir import Run

    model = Model("echo", ScriptedBackend(lambda messages, sampling: "three words here"))
    run = Run(tmp_path / "run", "eval", {}, models=[model])
    run.write("running")
    saving = asyncio.ensure_future(run.checkpoints(every_s=0.05))
    await model.complete([{"role": "user", "content": "hi"}])
    await asyncio.sleep(0.3)
    saving.cancel()
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "running" and manifest["totals"]["models"]["echo"]["calls"] == 1
    assert manifest["invocations"][-1]["totals"]["models"]["echo"]["completion_tokens"] == 3


def test_a_manifest_from_before_invocations_were_kept_counts_as_one(tmp_path):
    from qednano.records.rundir import Run

    old = {"command": "eval", "status": "finished", "started": "2026-11-01T00:00:00+00:00", "wall_s": 12.5,
           "totals": {"models": {"m": {"calls": 7, "cost_usd": 0.25}}, "tokens": 900, "cost_usd": 0.25}}
    (tmp_path / "manifest.json").write_text(json.dumps(old))
    with Run(tmp_path, "eval", {}):
        pass
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert len(manifest["invocations"]) == 2 and manifest["resumes"] == 1
    assert manifest["totals"] == {"models": {"m": {"calls": 7, "cost_usd": 0.25}}, "tokens": 900, "cost_usd": 0.25}
    assert manifest["wall_s"] >= 12.5
