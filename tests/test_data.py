"""`qednano data`: every stage through the CLI on scripted models (offline, fast)."""

import json
from collections import Counter

import pytest
from datasets import load_dataset, load_from_disk
from typer.testing import CliRunner

from qednano.cli import app
from qednano.data.difficulty import measure
from qednano.llm.scripted import BUILTIN_SCRIPTS
from qednano.llm.types import Completion, Sampling
from qednano.problems.loaders import load_problems
from qednano.records.store import SampleStore
from qednano.train.data import read_table, sft_rows

runner = CliRunner()

PROBLEMS = [
    {"id": "even", "problem": "Prove that the sum of two even integers is even.", "solution": "Write them as 2a and 2b.",
     "source": "Toy Olympiad 2020", "category": "Number theory"},
    {"id": "odd", "problem": "Prove that the product of two odd integers is odd.", "solution": "Expand (2a+1)(2b+1).",
     "source": "Toy Olympiad 2021", "category": "Number theory"},
    {"id": "long", "problem": "Prove that there are infinitely many primes.", "solution": "Euclid's argument.",
     "source": "Toy Olympiad 2022", "category": "Number theory"},
]
CALLS: Counter = Counter()


def which(messages) -> str:
    """The id of the problem a prompt is about."""
    text = messages[-1]["content"] if len(messages) == 1 else messages[0]["content"]
    return next(p["id"] for p in PROBLEMS if p["problem"] in text)


def teacher(messages, sampling):
    pid = which(messages)
    CALLS["teacher", pid] += 1
    if pid == "long":
        return "<think>an argument that never ends"  # cut off inside its reasoning: truncated
    return f"<think>thinking about {pid} with seed {sampling.seed}</think>Proof. The {pid} case holds."


def grader(messages, sampling):
    return "Assessment.\nFINAL SCORE: 7" if "The even case" in messages[0]["content"] else "Assessment.\nFINAL SCORE: 1"


VALID = {"checkpoints": [{"title": "Setup", "points": 3, "description": "Writes the numbers in general form."},
                         {"title": "Finish", "points": 4, "description": "Concludes correctly."}],
         "zero_credit": ["Checking small cases only."], "deductions": [{"description": "Arithmetic slip", "points": 1}]}


def rubric_writer(messages, sampling):
    pid = which(messages)
    CALLS["rubric", pid] += 1
    if pid == "even":
        return f"Here it is:\n```json\n{json.dumps(VALID)}\n```"
    if pid == "odd" and CALLS["rubric", pid] > 1:  # the first answer adds up to 6; the redraw is fine
        return json.dumps(VALID)
    if pid == "odd":
        return json.dumps({**VALID, "checkpoints": VALID["checkpoints"][:1] + [{**VALID["checkpoints"][1], "points": 3}]})
    return "A good scheme would reward Euclid's idea."  # never JSON: recorded as failed


def policy(messages, sampling):
    pid = which(messages)
    CALLS["policy", pid] += 1
    good = pid == "even" or (pid == "odd" and CALLS["policy", pid] % 2 == 1)
    return "Proof. GOOD argument." if good else "Proof. BAD argument."


def policy_grader(messages, sampling):
    return "Assessment.\nFINAL SCORE: 7" if "GOOD" in messages[0]["content"] else "Assessment.\nFINAL SCORE: 0"


def labeller(messages, sampling):
    pid = which(messages)
    if pid == "long":
        return "I cannot say."
    kind = "proof" if pid == "even" else "computational"
    return json.dumps({"incomplete_statement": False, "difficulty": 2, "kind": kind, "solution": "correct"})


@pytest.fixture
def data(scripted_registry, monkeypatch, tmp_path):
    CALLS.clear()
    scripts = {"teacher": teacher, "grader": grader, "rubric-writer": rubric_writer, "policy": policy,
               "policy-grader": policy_grader, "labeller": labeller}
    for name, reply in scripts.items():
        monkeypatch.setitem(BUILTIN_SCRIPTS, name, reply)
        (scripted_registry / f"{name}.yaml").write_text(f"name: {name}\nbackend: scripted\nmodel: {name}\n")
    path = tmp_path / "problems.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    return path


def invoke(*args):
    result = runner.invoke(app, ["data", *(str(a) for a in args)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_distill_grade_filter_export_gives_sft_rows(data, tmp_path):
    distilled, graded, kept, exported = (tmp_path / name for name in ("distill", "grade", "filter", "sft"))
    invoke("distill", data, "-m", "teacher", "-k", 2, "--shard-rows", 4, "--out", distilled)
    rows = load_dataset("parquet", data_files=str(distilled / "data" / "*.parquet"), split="train")
    assert sorted(p.name for p in (distilled / "data").iterdir()) == ["train-00000-of-00002.parquet", "train-00001-of-00002.parquet"]
    assert len(rows) == 6 and len(lines(distilled / "problems.jsonl")) == 3
    first = next(r for r in rows if r["problem_id"] == "even")
    assert first["reasoning_content"].startswith("thinking about even") and first["proof"] == "Proof. The even case holds."
    assert first["finish_reason"] == "stop" and first["completion_tokens"] > first["reasoning_tokens"] > 0
    cut = [r for r in rows if r["problem_id"] == "long"]
    assert all(r["truncated"] and r["status"] == "no_proof" and r["proof"] == "" for r in cut)
    assert json.loads((distilled / "manifest.json").read_text())["command"] == "data-distill"

    invoke("grade", distilled, "-g", "grader", "--out", graded)
    scores = {(r["problem_id"], r["sample_index"]): r["grade"]["score"] for r in lines(graded / "samples.jsonl")}
    assert scores == {("even", 0): 7, ("even", 1): 7, ("odd", 0): 1, ("odd", 1): 1, ("long", 0): 0, ("long", 1): 0}

    result = invoke("filter", graded, "--min-score", 6, "--out", kept)
    assert "kept 2 of 6 samples" in result.output
    summary = json.loads((kept / "summary.json").read_text())
    assert summary["dropped_by_reason"] == {"score below 6": 2, "truncated (finish reason length)": 2}
    assert {(d["problem_id"], d["reason"]) for d in lines(kept / "dropped.jsonl")} >= {("odd", "score below 6")}

    invoke("export", kept, "--kind", "sft", "--out", exported)
    sft = load_from_disk(str(exported / "dataset"))
    for column in ("problem", "reasoning_content", "proof", "messages", "source", "category", "competition", "score", "grader"):
        assert column in sft.column_names
    assert len(sft) == 2 and set(sft["score"]) == {7.0}
    messages = sft[0]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert PROBLEMS[0]["problem"] in messages[0]["content"]
    assert messages[1]["content"].startswith("<think>\nthinking about even") and messages[1]["content"].endswith("The even case holds.")
    card = (exported / "README.md").read_text()
    assert "2 rows over 1 problems" in card and "not** checked" in card
    # ... and the export folder is what `qednano train sft` reads: prompt-completion rows
    train_rows = sft_rows(read_table(str(exported)), str(exported))
    assert len(train_rows) == 2 and PROBLEMS[0]["problem"] in train_rows[0]["prompt"][0]["content"]
    completion = train_rows[0]["completion"][0]["content"]
    assert completion.startswith("<think>\nthinking about even") and "</think>\n\nProof. The even case holds." in completion
    assert card.index("`data-distill`") < card.index("`data-grade`") < card.index("`data-filter`")
    assert "dropped 2: truncated (finish reason length)" in card
    assert len(load_dataset("parquet", data_files=str(exported / "data" / "*.parquet"), split="train")) == 2


def test_interrupted_distill_resumes_without_repeating_calls(data, tmp_path, monkeypatch):
    out = tmp_path / "distill"

    def crashing(messages, sampling):
        if sum(v for (role, _), v in CALLS.items() if role == "teacher") == 3:
            raise RuntimeError("connection lost")  # the process dies in the middle of the run
        return teacher(messages, sampling)

    monkeypatch.setitem(BUILTIN_SCRIPTS, "teacher", crashing)
    result = runner.invoke(app, ["data", "distill", str(data), "-m", "teacher", "-k", "2", "--concurrency", "1", "--out", str(out)])
    assert isinstance(result.exception, RuntimeError)
    assert json.loads((out / "manifest.json").read_text())["status"] == "failed"
    assert len(SampleStore(out / "samples.jsonl").read()) == 3

    CALLS.clear()
    monkeypatch.setitem(BUILTIN_SCRIPTS, "teacher", teacher)
    invoke("distill", data, "-m", "teacher", "-k", 2, "--out", out)
    assert sum(CALLS.values()) == 3  # only the three samples not finished before the crash
    assert len(SampleStore(out / "samples.jsonl").read()) == 6
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["resumes"] == 1

    CALLS.clear()
    invoke("distill", data, "-m", "teacher", "-k", 2, "--out", out)
    assert sum(CALLS.values()) == 0

    invoke("distill", data, "-m", "teacher", "-k", 3, "--out", out)  # more samples extend the run
    assert sum(CALLS.values()) == 3 and len(SampleStore(out / "samples.jsonl").read()) == 9


def test_failed_teacher_calls_are_recorded_and_redone_on_resume(data, tmp_path, monkeypatch):
    out = tmp_path / "distill"

    def overloaded_on_odd(messages, sampling):
        return Completion.failure("teacher", "http_503", "overloaded") if which(messages) == "odd" else teacher(messages, sampling)

    monkeypatch.setitem(BUILTIN_SCRIPTS, "teacher", overloaded_on_odd)
    invoke("distill", data, "-m", "teacher", "-k", 1, "--max-failures", 1, "--out", out)
    rows = {r["problem_id"]: r for r in load_dataset("parquet", data_files=str(out / "data" / "*.parquet"), split="train")}
    assert rows["odd"]["status"] == "failed" and rows["odd"]["error"] == "overloaded" and rows["odd"]["proof"] == ""
    assert rows["even"]["status"] == "ok"
    CALLS.clear()
    monkeypatch.setitem(BUILTIN_SCRIPTS, "teacher", teacher)
    invoke("distill", data, "-m", "teacher", "-k", 1, "--out", out)
    assert sum(CALLS.values()) == 1  # only the failed sample is redone


def test_a_teacher_that_is_down_fails_the_run(data, tmp_path, monkeypatch):
    monkeypatch.setitem(BUILTIN_SCRIPTS, "teacher", lambda m, s: Completion.failure("teacher", "http_503", "overloaded"))
    result = runner.invoke(app, ["data", "distill", str(data), "-m", "teacher", "-k", "2", "--out", str(tmp_path / "d")])
    assert result.exit_code == 1 and "overloaded" in result.output
    assert json.loads((tmp_path / "d" / "manifest.json").read_text())["status"] == "failed"
    assert all(r.attempt.status == "failed" for r in SampleStore(tmp_path / "d" / "samples.jsonl").read().values())


def test_rubrics_difficulty_and_rl_export(data, tmp_path):
    schemes, measured, exported = tmp_path / "rubrics", tmp_path / "difficulty", tmp_path / "rl"
    result = invoke("rubrics", data, "-m", "rubric-writer", "--tries", 3, "--out", schemes)
    assert "2 valid marking schemes, 1 failed" in result.output
    results = {r["problem_id"]: r for r in lines(schemes / "rubrics.jsonl")}
    assert results["odd"]["status"] == "ok" and results["odd"]["tries"] == 2
    assert results["long"]["status"] == "failed" and results["long"]["tries"] == 3 and results["long"]["rubric"] is None
    assert "no JSON object" in results["long"]["error"]
    assert (schemes / "kept_ids.txt").read_text().split() == ["even", "odd"]
    even = lines(schemes / "problems.jsonl")[0]
    assert sum(c["points"] for c in even["criteria"]) == 7 and "Checking small cases only." in even["grading_guidelines"]

    invoke("difficulty", schemes, "-m", "policy", "-g", "policy-grader", "-k", 4, "--out", measured)
    stats = {r["problem_id"]: r for r in lines(measured / "difficulty.jsonl")}
    assert set(stats) == {"even", "odd"}  # the problem without a valid scheme went no further
    assert stats["even"]["kept"] is False and stats["even"]["reason"].startswith("always solved")
    assert stats["odd"]["scores"] == [7, 0, 7, 0] and stats["odd"]["mean"] == 3.5 and stats["odd"]["std"] == 3.5
    assert (measured / "kept_ids.txt").read_text().split() == ["odd"]

    invoke("export", measured, "--kind", "rl", "--out", exported)
    rl = load_from_disk(str(exported / "dataset"))
    assert len(rl) == 1
    row = rl[0]
    assert row["problem_id"] == "odd" and row["rewards"] == [1.0, 0.0, 1.0, 0.0] and row["num_rewards"] == 4
    assert row["reward_mean"] == 0.5 and row["reward_std"] == 0.5 and row["solution"] == PROBLEMS[1]["solution"]
    assert "Setup (3 points)" in row["rubrics"] and "Arithmetic slip (-1)" in row["rubrics"]
    reread = load_problems(str(exported / "dataset"))  # what an RL trainer reads back: problem, solution, scheme
    assert [(p.id, p.reference_solution) for p in reread] == [("odd", PROBLEMS[1]["solution"])]
    assert reread[0].grading_guidelines == row["rubrics"]
    card = (exported / "README.md").read_text()
    assert "valid marking schemes for 2 of 3 problems" in card and "dropped 1: always solved" in card


def test_difficulty_reasons_for_problems_without_spread():
    from qednano.grading.record import Grade
    from qednano.records.sample import SampleRecord
    from qednano.scaffolds.base import Attempt

    def record(index, score, status="graded"):
        attempt = Attempt(problem_id="p", sample_index=index, scaffold="direct", proof="x", status="ok")
        return SampleRecord(problem_id="p", sample_index=index, attempt=attempt, grade=Grade(status=status, score=score))

    assert measure("p", [record(0, 0.0), record(1, 0.0)], 2).reason == "never solved (all 2 scored 0)"
    assert measure("p", [record(0, 1.0), record(1, 1.0)], 2).reason == "no spread (all 2 scored 1)"
    thin = measure("p", [record(0, 7.0), record(1, None, "ungraded")], 2)
    assert not thin.kept and thin.ungraded == 1 and thin.reason == "only 1 of 2 rollouts validly graded"


def test_label_filters_and_records_unlabelled_problems(data, tmp_path):
    out = tmp_path / "label"
    invoke("label", data, "-m", "labeller", "--proofs-only", "--tries", 2, "--out", out)
    labels = {r["problem_id"]: r for r in lines(out / "labels.jsonl")}
    assert labels["even"]["kept"] and labels["even"]["labels"]["difficulty"] == 2
    assert labels["odd"]["reasons"] == ["computational, not a proof problem"]
    assert not labels["long"]["kept"] and labels["long"]["reasons"][0].startswith("not labelled: no valid answer in 2 tries")
    assert (out / "kept_ids.txt").read_text().split() == ["even"]


def test_export_drops_and_reports_decontamination_matches(data, tmp_path):
    invoke("distill", data, "-m", "teacher", "-k", 1, "--out", tmp_path / "d")
    invoke("grade", tmp_path / "d", "-g", "grader", "-g", "policy-grader", "--out", tmp_path / "g")  # a panel of two
    panel = {r["problem_id"]: r["grade"] for r in lines(tmp_path / "g" / "samples.jsonl")}
    assert len(panel["even"]["members"]) == 2 and panel["even"]["score"] == 3.5  # 7 and 0, averaged
    invoke("filter", tmp_path / "g", "--min-score", 0, "--out", tmp_path / "f")
    bench = tmp_path / "bench.jsonl"  # an evaluation set that holds one of our problems, reworded
    bench.write_text(json.dumps({"id": "B-1", "problem": "Show that the sum of two even integers is even."}) + "\n")
    decon = tmp_path / "decon"
    invoke("decontaminate", tmp_path / "f", "--against", bench, "--out", decon)  # parquet: rows hold empty `metadata` maps
    assert (decon / "train.parquet").is_file()
    assert {m["train_id"] for m in lines(decon / "matches.jsonl")} == {"even"}
    invoke("export", tmp_path / "f", "--decontamination", decon, "--out", tmp_path / "e")
    sft = load_from_disk(str(tmp_path / "e" / "dataset"))
    assert sft["problem_id"] == ["odd"]
    card = (tmp_path / "e" / "README.md").read_text()
    assert "1 training problems matched; 1 rows dropped here" in card and "bench.jsonl | exact | 1 |" in card
    assert "bench.jsonl` (1 problems)" in card


def test_bad_inputs_fail_naming_file_row_and_field(data, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(PROBLEMS[0]) + "\n" + json.dumps({**PROBLEMS[1], "problem": ""}) + "\n")
    result = runner.invoke(app, ["data", "distill", str(bad), "-m", "teacher", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "bad.jsonl line 2 (id 'odd'): field 'statement'" in result.output

    invoke("distill", data, "-m", "teacher", "-k", 1, "--out", tmp_path / "d")
    problems = tmp_path / "d" / "problems.jsonl"
    problems.write_text(problems.read_text() + json.dumps({"id": "x"}) + "\n")
    result = runner.invoke(app, ["data", "grade", str(tmp_path / "d"), "-g", "grader", "--out", str(tmp_path / "g")])
    assert result.exit_code == 2 and "problems.jsonl:4: not a Problem: field 'statement'" in result.output

    result = runner.invoke(app, ["data", "filter", str(tmp_path / "d"), "--out", str(tmp_path / "f")])
    assert result.exit_code == 2 and "written by 'data-distill'" in result.output

    result = runner.invoke(app, ["data", "distill", str(data), "-m", "policy", "--out", str(tmp_path / "d")])
    assert result.exit_code == 2 and "different teacher" in result.output


def test_push_to_hub_uploads_the_card_then_the_dataset_only_when_asked(data, tmp_path, monkeypatch):
    import datasets
    import huggingface_hub

    uploads = []
    monkeypatch.setattr(huggingface_hub, "create_repo", lambda repo, **kw: uploads.append(("repo", repo, kw["private"])))
    monkeypatch.setattr(huggingface_hub.DatasetCard, "push_to_hub", lambda card, repo: uploads.append(("card", repo, card.text[:3])))
    monkeypatch.setattr(datasets.Dataset, "push_to_hub", lambda ds, repo, private: uploads.append(("data", repo, len(ds))))
    invoke("distill", data, "-m", "teacher", "-k", 1, "--out", tmp_path / "d")
    invoke("grade", tmp_path / "d", "-g", "grader", "--out", tmp_path / "g")
    invoke("filter", tmp_path / "g", "--out", tmp_path / "f")
    invoke("export", tmp_path / "f", "--out", tmp_path / "local")
    assert uploads == []
    invoke("export", tmp_path / "f", "--push-to-hub", "me/proofs", "--out", tmp_path / "pushed")
    assert [u[0] for u in uploads] == ["repo", "card", "data"]
    assert uploads[0] == ("repo", "me/proofs", True) and uploads[2] == ("data", "me/proofs", 1)


def test_distill_spreads_calls_over_base_urls_and_keeps_server_reasoning(tmp_path, monkeypatch):
    """Two loopback OpenAI-compatible servers: calls go to both at once, thinking switched on; the
    server's reasoning field is kept apart from the proof."""
    import asyncio
    import threading

    from fault_server import FaultServer, reply

    from qednano.data.distill import DistillConfig, run_distill

    monkeypatch.setenv("QEDNANO_CACHE_DIR", str(tmp_path / "cache"))
    problems = tmp_path / "problems.jsonl"
    problems.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    usage = {"prompt_tokens": 50, "completion_tokens": 30, "total_tokens": 80, "completion_tokens_details": {"reasoning_tokens": 20}}

    def respond(body):
        return reply("Proof. By parity.", reasoning="Let me think.", usage=usage, delay_s=0.05)

    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    servers = [FaultServer(respond=respond) for _ in range(2)]
    for server in servers:
        asyncio.run_coroutine_threadsafe(server.__aenter__(), loop).result(10)
    try:
        teacher = "openai:fault-model@" + ",".join(server.url for server in servers)
        out, records = run_distill(DistillConfig(problems=str(problems), teacher=teacher, samples=4, sampling=Sampling(thinking=True)), tmp_path / "d", None)
    finally:
        for server in servers:
            asyncio.run_coroutine_threadsafe(server.__aexit__(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
    assert len(records) == 12 and all(r.attempt.status == "ok" for r in records)
    assert all(len(server.requests) >= 3 for server in servers)  # load-balanced over both URLs
    assert all(r.body["chat_template_kwargs"] == {"enable_thinking": True} for server in servers for r in server.requests)
    assert sum(server.max_in_flight for server in servers) > 2  # many samples in flight at once
    rows = load_dataset("parquet", data_files=str(out / "data" / "*.parquet"), split="train")
    assert set(rows["reasoning_content"]) == {"Let me think."} and set(rows["proof"]) == {"Proof. By parity."}
    assert set(rows["completion_tokens"]) == {30} and set(rows["reasoning_tokens"]) == {20}


def test_the_viewer_shows_a_graded_distillation_run(data, tmp_path):
    from fastapi.testclient import TestClient

    from qednano.viewer.app import create_app
    from qednano.viewer.rundirs import RunSet

    invoke("distill", data, "-m", "teacher", "-k", 1, "--out", tmp_path / "distill")
    invoke("grade", tmp_path / "distill", "-g", "grader", "--out", tmp_path / "graded")
    client = TestClient(create_app(RunSet([tmp_path / "graded"])))
    assert client.get("/run/graded").status_code == 200
    page = client.get("/run/graded/problem/even").text
    assert PROBLEMS[0]["problem"] in page and PROBLEMS[0]["solution"] in page and "7 / 7" in page
