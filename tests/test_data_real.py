"""Every `qednano data` stage end to end on the real embedded model (smollm2) as teacher,
rubric writer, labeller, policy and grader. A 135M model seldom writes valid JSON or a valid
verdict: whatever it writes must end as a recorded status, never as a crash or a made-up score."""

import json

import pytest
from datasets import load_from_disk
from typer.testing import CliRunner

from qednano.cli import app

runner = CliRunner()
pytestmark = pytest.mark.slow

PROBLEMS = [
    {"id": "even", "problem": "Prove that the sum of two even integers is even.", "solution": "Write them as 2a and 2b; the sum is 2(a+b)."},
    {"id": "odd", "problem": "Prove that the product of two odd integers is odd.", "solution": "(2a+1)(2b+1) = 2(2ab+a+b)+1."},
]


@pytest.fixture
def brief(tmp_path, monkeypatch):
    """The embedded model (smollm2's weights) with short answers, so the test takes minutes, not tens of minutes."""
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "brief.yaml").write_text("name: brief\nbackend: embedded\nmodel: SmolLM2-135M-Instruct\n"
                                       "sampling: {temperature: 0.7, top_k: 50, max_tokens: 40}\n")
    monkeypatch.setenv("QEDNANO_MODELS", str(folder))


def data(*args):
    result = runner.invoke(app, ["data", *(str(a) for a in args)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def test_every_data_stage_with_the_embedded_model(brief, tmp_path):
    problems = tmp_path / "problems.jsonl"
    problems.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    run = {name: tmp_path / name for name in ("distill", "grade", "filter", "sft", "rubrics", "label", "difficulty", "rl")}
    short = ("--no-cache",)

    data("distill", problems, "-m", "brief", "-k", 2, "--limit", 1, *short, "--out", run["distill"])
    data("grade", run["distill"], "-g", "brief", "--no-cache", "--out", run["grade"])
    data("filter", run["grade"], "--min-score", 0, "--out", run["filter"])
    data("export", run["filter"], "--kind", "sft", "--out", run["sft"])
    data("rubrics", problems, "-m", "brief", "--tries", 1, *short, "--out", run["rubrics"])
    data("label", problems, "-m", "brief", "--tries", 1, "--max-difficulty", 10, "--no-cache", "--out", run["label"])
    data("difficulty", problems, "-m", "brief", "-g", "brief", "-k", 2, "--limit", 1, *short, "--out", run["difficulty"])
    data("export", run["difficulty"], "--kind", "rl", "--out", run["rl"])

    for name, path in run.items():
        assert json.loads((path / "manifest.json").read_text())["status"] == "finished", name
    distilled = [json.loads(line) for line in (run["distill"] / "samples.jsonl").read_text().splitlines()]
    assert len(distilled) == 2 and all(r["attempt"]["steps"][0]["completion"]["usage"]["completion_tokens"] > 0 for r in distilled)
    for record in (json.loads(line) for line in (run["grade"] / "samples.jsonl").read_text().splitlines()):
        assert (record["grade"]["score"] is None) == (record["grade"]["status"] == "ungraded")
    schemes = [json.loads(line) for line in (run["rubrics"] / "rubrics.jsonl").read_text().splitlines()]
    assert len(schemes) == 2 and all((s["status"] == "ok") == (s["rubric"] is not None) for s in schemes)
    for line in (run["difficulty"] / "difficulty.jsonl").read_text().splitlines():
        measured = json.loads(line)
        assert len(measured["scores"]) + measured["ungraded"] + measured["failed"] == 2
        assert measured["kept"] or measured["reason"]
    sft = load_from_disk(str(run["sft"] / "dataset"))
    assert {"problem", "reasoning_content", "proof", "messages", "score"} <= set(sft.column_names)
    assert "rewards" in load_from_disk(str(run["rl"] / "dataset")).column_names
