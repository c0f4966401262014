"""eval, grade, report and scaling end to end through the CLI, on scripted models (offline, fast)."""

import json
import re

import pytest
from typer.testing import CliRunner

from qednano.cli import app
from qednano.llm.scripted import BUILTIN_SCRIPTS
from qednano.llm.types import Completion
from qednano.problems.loaders import load_problems

runner = CliRunner()
SECOND_STATEMENT = load_problems("imo-proofbench", limit=2)[1].statement.strip()[:80]
ANSWERS = {p.statement.strip(): p.short_answer for p in load_problems("imo-answerbench", limit=4)}


def prover(messages, sampling):
    return f"<think>scratch work</think>Proof. A careful argument of sample seed {sampling.seed}."


def grader(messages, sampling):
    """Gives 7 to proofs of PB-Basic-001, 1 to the others; garbles its first answer on PB-Basic-002."""
    prompt = messages[0]["content"]
    if SECOND_STATEMENT in prompt and len(messages) == 1:
        return "The argument has a gap."  # no verdict: the grader is asked again
    return "Assessment.\nFINAL SCORE: 7" if "f(f(y))" in prompt else "Assessment.\nFINAL SCORE: 1"


def answerer(messages, sampling):
    """Right on the first two AnswerBench problems, wrong on the rest."""
    statement = messages[-1]["content"].split("Problem:\n", 1)[1].strip()
    answer = ANSWERS[statement]
    right = list(ANSWERS).index(statement) < 2
    return f"So the answer is \\boxed{{{answer if right else '-12345'}}}."


@pytest.fixture
def scripts(scripted_registry, monkeypatch):
    for name, reply in {"prover": prover, "grader": grader, "answerer": answerer}.items():
        monkeypatch.setitem(BUILTIN_SCRIPTS, name, reply)
        (scripted_registry / f"{name}.yaml").write_text(f"name: {name}\nbackend: scripted\nmodel: {name}\n")
    return scripted_registry


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def test_eval_proofbench_grades_reports_and_resumes(scripts, tmp_path):
    out = tmp_path / "run"
    problems = load_problems("imo-proofbench", limit=2)
    # grader() keys on the statement; check the fixture problem really holds that text
    assert "f(f(y))" in problems[0].reference_solution + problems[0].grading_guidelines + problems[0].statement
    invoke("eval", "--bench", "imo-proofbench", "-m", "prover", "-g", "grader", "--limit", 2, "-n", 2, "--out", out)
    report = json.loads((out / "report.json").read_text())
    assert report["counts"]["graded"] == 4
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["config"]["samples"] == 2
    assert manifest["totals"]["models"]["prover"]["calls"] == 4
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 4 and all(r["attempt"]["proof"].startswith("Proof.") for r in records)
    assert all("scratch work" not in r["attempt"]["proof"] for r in records)  # the grader sees no reasoning
    assert [r["grade"]["score"] for r in records] == [7, 7, 1, 1]
    assert report["mean_points"] == pytest.approx(4.0)
    assert manifest["totals"]["models"]["grader"]["calls"] == 6  # PB-Basic-002's two follow-ups
    assert (out / "report.md").read_text().startswith("#")

    invoke("eval", "--bench", "imo-proofbench", "-m", "prover", "-g", "grader", "--limit", 2, "-n", 2, "--out", out)
    again = json.loads((out / "manifest.json").read_text())
    latest = again["invocations"][-1]["totals"]["models"]
    assert latest["prover"]["calls"] == 0 and latest["grader"]["calls"] == 0  # all replayed from the cache
    assert again["totals"]["models"]["prover"]["calls"] == 4  # the run's totals still count the first pass
    assert again["resumes"] == 1


def test_eval_refuses_to_resume_a_different_run(scripts, tmp_path):
    out = tmp_path / "run"
    invoke("eval", "--bench", "imo-proofbench", "-m", "prover", "-g", "grader", "--limit", 1, "--out", out)
    result = runner.invoke(app, ["eval", "--bench", "imo-proofbench", "-m", "echo", "-g", "grader", "--limit", "1", "--out", str(out)])
    assert result.exit_code == 2 and "different model" in result.output


def test_eval_answerbench_checks_boxed_answers(scripts, tmp_path):
    out = tmp_path / "answers"
    invoke("eval", "--bench", "imo-answerbench", "-m", "answerer", "--limit", 4, "--out", out)
    report = json.loads((out / "report.json").read_text())
    assert report["max_score"] == 1.0 and report["mean_points"] == pytest.approx(0.5)


def test_eval_answerbench_asks_for_a_boxed_answer_even_with_scaffold_params(scripts, tmp_path, monkeypatch):
    prompts = []

    def recording(messages, sampling):
        prompts.append(messages[-1]["content"])
        return answerer(messages, sampling)

    monkeypatch.setitem(BUILTIN_SCRIPTS, "answerer", recording)
    invoke("eval", "--bench", "imo-answerbench", "-m", "answerer", "--limit", 2, "--set", "max_tokens=64", "--out", tmp_path / "a")
    assert len(prompts) == 2 and all("\\boxed{answer}" in prompt for prompt in prompts)


def reference_rows():
    problems = load_problems("imo-proofbench", limit=3)
    rows = []
    for p, solution in zip(problems, ["A proof.", "<think>hmm</think>Another proof.", "<think>never closed"], strict=False):
        rows.append({"problem_idx": p.id, "problem": p.statement, "model_solution": solution, "solution": p.reference_solution,
                     "grading_guidelines": p.grading_guidelines, "answer": p.short_answer,
                     "cost_run": {"input_tokens": 10, "output_tokens": 20, "cost": 0.5}})
    return rows


def test_grade_a_reference_format_file_and_report_it_like_the_harness(scripts, tmp_path):
    generations = tmp_path / "gen.jsonl"
    generations.write_text("".join(json.dumps(r) + "\n" for r in reference_rows()))
    invoke("grade", generations, "-g", "grader", "--out", tmp_path / "graded")
    graded = [json.loads(line) for line in (tmp_path / "graded" / "graded.jsonl").read_text().splitlines()]
    assert [g["score"] for g in graded] == [7.0, 1.0, 0.0]  # unclosed reasoning: no proof, 0 points
    assert graded[0]["grade_cost"]["input_tokens"] > 0 and set(graded[0]) >= {"grade", "schema_0", "model_solution"}

    # The harness's mean of a graded file: the mean of its non-empty `score` column.
    graded[1]["score"] = None
    (tmp_path / "mixed.jsonl").write_text("".join(json.dumps(g) + "\n" for g in graded))
    result = invoke("report", tmp_path / "mixed.jsonl", "--json", tmp_path / "r.json")
    harness_mean = (7.0 + 0.0) / 2
    assert json.loads((tmp_path / "r.json").read_text())[0]["mean_points"] == pytest.approx(harness_mean)
    assert "ungraded" in result.output

    # The same --out with another grading prompt would mix two graders' grades: refused.
    again = runner.invoke(app, ["grade", str(generations), "-g", "grader", "--variant", "strict", "--out", str(tmp_path / "graded")])
    assert again.exit_code == 2 and "different variant" in again.output


def test_grade_with_thinking_opened_in_the_prompt_finds_no_proof_without_the_close(scripts, tmp_path):
    """A plain `vllm serve` of a template that opens <think> returns only its close, or none when cut off."""
    rows = reference_rows()
    rows[0]["model_solution"] = "Still weighing f(f(y)) against f(x) when the tokens ran"  # cut off while thinking
    rows[1]["model_solution"] = "Worked it out.</think>Another proof."
    generations = tmp_path / "gen.jsonl"
    generations.write_text("".join(json.dumps(r) + "\n" for r in rows))

    invoke("grade", generations, "-g", "grader", "--out", tmp_path / "plain")  # the file alone cannot tell
    plain = [json.loads(line) for line in (tmp_path / "plain" / "graded.jsonl").read_text().splitlines()]
    assert [g["score"] for g in plain] == [7.0, 1.0, 0.0]

    out = tmp_path / "opened"
    invoke("grade", generations, "-g", "grader", "--thinking-in-prompt", "--out", out)
    graded = [json.loads(line) for line in (out / "graded.jsonl").read_text().splitlines()]
    assert [g["score"] for g in graded] == [0.0, 1.0, 0.0]
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    first = records[0]["attempt"]
    assert (first["status"], first["proof"], first["finish_reason"]) == ("no_proof", "", "length")
    counts = json.loads((out / "report.json").read_text())["counts"]
    assert (counts["no_proof"], counts["truncated"], counts["graded"]) == (2, 2, 1)
    assert json.loads((out / "manifest.json").read_text())["config"]["thinking_in_prompt"] is True

    # Resuming without the flag would mix two readings of the same responses: refused.
    again = runner.invoke(app, ["grade", str(generations), "-g", "grader", "--out", str(out)])
    assert again.exit_code == 2 and "different thinking_in_prompt" in again.output


def test_compare_two_runs(scripts, tmp_path):
    for name in ("a", "b"):
        invoke("eval", "--bench", "imo-proofbench", "-m", "prover", "-g", "grader", "--limit", 3, "--out", tmp_path / name)
    invoke("report", tmp_path / "a", tmp_path / "b", "--compare", "--markdown", tmp_path / "c.md")
    text = (tmp_path / "c.md").read_text()
    # identical runs: three shared problems, no difference, nothing to reject
    assert "| problems compared | 3 |" in text and "| difference a - b | +0.00 |" in text
    assert "| sign-flip p-value | 1.0000 |" in text


def test_scaling_report_over_turn_counts(scripts, tmp_path):
    runs = []
    for turns in (1, 2):
        out = tmp_path / f"rc{turns}"
        invoke("eval", "--bench", "imo-proofbench", "-m", "prover", "-g", "grader", "--limit", 2,
               "--scaffold", "rc", "--turns", turns, "--out", out)
        runs.append(out)
    invoke("scaling", *runs, "--out", tmp_path / "scaling")
    assert (tmp_path / "scaling" / "scaling.png").stat().st_size > 1000
    table = (tmp_path / "scaling" / "scaling.md").read_text()
    assert re.search(r"rc \(turns=1\)", table) and re.search(r"rc \(turns=2\)", table)
    same = runner.invoke(app, ["scaling", str(runs[0]), str(runs[0]), "--out", str(tmp_path / "x")])
    assert same.exit_code == 2 and "distinct labels" in same.output


def grading_bench_csv(path):
    import csv

    problem = load_problems("imo-proofbench", limit=1)[0]
    header = ["Grading ID", "Problem ID", "Problem", "Solution", "Grading guidelines", "Response", "Points"]
    rows = [
        ["G1", problem.id, problem.statement, problem.reference_solution, problem.grading_guidelines, "A full proof.", "7"],
        ["G2", problem.id, problem.statement, problem.reference_solution, problem.grading_guidelines, "A weak proof.", "1"],
        ["G3", "other", "Prove that 1 < 2.", "Obvious.", "(Partial) none", "A try.", "0"],
    ]
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    return path


def test_grader_bench_measures_agreement_with_humans(scripts, tmp_path):
    data = grading_bench_csv(tmp_path / "gb.csv")
    invoke("grader-bench", data, "-g", "grader", "--out", tmp_path / "gb")
    report = json.loads((tmp_path / "gb" / "agreement.json").read_text())
    # grader(): 7 for the first problem's proofs (human 7 and 1), 1 for the other (human 0)
    assert report["rows"] == 3 and report["ungraded"] == 0
    assert report["mae"] == pytest.approx((0 + 6 + 1) / 3)
    assert report["exact_accuracy"] == pytest.approx(1 / 3)
    ratings = [json.loads(line) for line in (tmp_path / "gb" / "ratings.jsonl").read_text().splitlines()]
    assert [(r["human"], r["grader"]) for r in ratings] == [(7.0, 7.0), (1.0, 7.0), (0.0, 1.0)]


def test_grader_bench_bad_points_name_the_row(scripts, tmp_path):
    data = grading_bench_csv(tmp_path / "gb.csv")
    data.write_text(data.read_text().replace(",1\n", ",one\n"))
    result = runner.invoke(app, ["grader-bench", str(data), "-g", "grader", "--out", str(tmp_path / "x")])
    text = data.read_text()
    first = text[: text.index("G2,")].count("\n") + 1  # record G2 as a text editor numbers its lines
    last = text[: text.index("G3,")].count("\n")
    assert result.exit_code == 2 and f"gb.csv lines {first}-{last} " in result.output and "Points" in result.output


def test_eval_on_any_file_with_a_column_map(scripts, tmp_path):
    data = tmp_path / "mine.jsonl"
    rows = [{"uid": f"q{i}", "question": f"Prove statement {i}.", "ref": "Because."} for i in range(3)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run"
    invoke("eval", "--bench", data, "-m", "prover", "-g", "grader", "--column", "id=uid", "--column", "statement=question",
           "--column", "reference_solution=ref", "--out", out)
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert [r["problem_id"] for r in records] == ["q0", "q1", "q2"] and all(r["grade"]["score"] == 1 for r in records)
    bad = runner.invoke(app, ["eval", "--bench", str(data), "-m", "prover", "--column", "statement=nope", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "nope" in bad.output


def test_grade_a_file_without_ids_groups_rows_by_statement(scripts, tmp_path):
    rows = [{k: v for k, v in row.items() if k != "problem_idx"} for row in reference_rows()[:2]]
    rows.append({**rows[0], "model_solution": "A second proof of the first problem."})
    generations = tmp_path / "gen.jsonl"
    generations.write_text("".join(json.dumps(r) + "\n" for r in rows))
    invoke("grade", generations, "-g", "grader", "--out", tmp_path / "graded")
    records = [json.loads(line) for line in (tmp_path / "graded" / "samples.jsonl").read_text().splitlines()]
    keys = [(r["problem_id"], r["sample_index"]) for r in records]
    assert keys[0][0] == keys[2][0] != keys[1][0] and [k[1] for k in keys] == [0, 0, 1]
    graded = [json.loads(line) for line in (tmp_path / "graded" / "graded.jsonl").read_text().splitlines()]
    assert "problem_idx" not in graded[0] and [g["score"] for g in graded] == [7.0, 1.0, 7.0]


def test_an_ungraded_run_can_be_graded_later_in_place(scripts, tmp_path):
    out = tmp_path / "run"
    first = invoke("eval", "--bench", "imo-proofbench", "-m", "prover", "--limit", 2, "--out", out)
    assert "not graded" in first.output
    assert json.loads((out / "report.json").read_text())["counts"]["pending"] == 2
    invoke("eval", "--bench", "imo-proofbench", "-m", "prover", "-g", "grader", "--limit", 2, "--out", out)
    manifest = json.loads((out / "manifest.json").read_text())
    second = manifest["invocations"][1]["totals"]["models"]
    assert second["prover"]["calls"] == 0 and second["grader"]["calls"] > 0  # generations kept, only grading ran
    assert manifest["totals"]["models"]["prover"]["calls"] == 2  # the whole run's totals
    assert json.loads((out / "report.json").read_text())["counts"]["graded"] == 2


def test_a_panel_of_samples_of_one_grader(scripts, tmp_path, monkeypatch):
    scores = iter([1, 4, 7] * 10)
    monkeypatch.setitem(BUILTIN_SCRIPTS, "grader", lambda messages, sampling: f"Ok.\nFINAL SCORE: {next(scores)}")
    out = tmp_path / "panel"
    invoke("eval", "--bench", "imo-proofbench", "-m", "prover", "-g", "grader", "--limit", 2, "--grader-samples", 3,
           "--aggregate", "median", "--concurrency", 1, "--variant", "strict", "--out", out)
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    for record in records:
        grade = record["grade"]
        assert [m["score"] for m in grade["members"]] == [1, 4, 7] and grade["score"] == 4
        assert len(grade["calls"]) == 3  # every member's call is counted for cost


@pytest.fixture
def down_grader(scripts, monkeypatch):
    """A grader whose every call is rejected, as with a revoked key."""
    rejected = Completion.failure("down", "auth", "http://grader/v1: HTTP 401: invalid key [redacted]")
    monkeypatch.setitem(BUILTIN_SCRIPTS, "down", lambda messages, sampling: rejected)
    (scripts / "down.yaml").write_text("name: down\nbackend: scripted\nmodel: down\n")


def test_grading_with_a_grader_that_is_down_fails_loudly(down_grader, tmp_path):
    generations = tmp_path / "gen.jsonl"
    generations.write_text("".join(json.dumps(r) + "\n" for r in reference_rows()[:2]))
    result = runner.invoke(app, ["grade", str(generations), "-g", "down", "--out", str(tmp_path / "graded"),
                                 "--max-failures", "5"])
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "every sample failed" in text and "grading auth" in text and "invalid key [redacted]" in text
    report = json.loads((tmp_path / "graded" / "report.json").read_text())
    assert report["failures"]["kinds"][0]["kind"] == "auth" and report["failures"]["failed"] == 2


def test_grader_bench_with_a_grader_that_is_down_stops_early(down_grader, tmp_path):
    data = grading_bench_csv(tmp_path / "gb.csv")
    result = runner.invoke(app, ["grader-bench", str(data), "-g", "down", "--out", str(tmp_path / "gb"),
                                 "--max-failures", "0", "--concurrency", "1"])
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "stopped early: 1 samples failed" in text and "grading auth" in text
    assert not (tmp_path / "gb" / "agreement.json").exists()


def test_eval_answerbench_runs_any_scaffold_in_answer_mode_with_the_users_prompts(scripts, tmp_path, monkeypatch):
    asked = []

    def solver(messages, sampling):
        prompt = messages[-1]["content"]
        asked.append(prompt)
        if "Rewrite my notes" in prompt:
            return "I found the answer."
        statement = next(s for s in ANSWERS if s in prompt)
        return f"So the answer is \\boxed{{{ANSWERS[statement]}}}."

    monkeypatch.setitem(BUILTIN_SCRIPTS, "answerer", solver)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "solve_answer.txt").write_text("MY WORDING. Box the answer.\n{problem}\n")
    out = tmp_path / "rc-answers"
    invoke("eval", "--bench", "imo-answerbench", "-m", "answerer", "--limit", 2, "--scaffold", "rc", "--turns", 2,
           "--prompts", mine, "--out", out)
    assert len(asked) == 6 and sum(p.startswith("MY WORDING.") for p in asked) == 2  # turn 1 of each problem
    assert sum("\\boxed{answer}" in p for p in asked) == 2  # turn 2: our answer-mode continue prompt
    report = json.loads((out / "report.json").read_text())
    assert report["max_score"] == 1.0 and report["mean_points"] == pytest.approx(1.0)
    manifest = json.loads((out / "manifest.json").read_text())
    assert list(manifest["config"]["prompt_files"]) == ["solve_answer"]

    (mine / "solve_answer.txt").write_text("OTHER WORDING.\n{problem}\n")
    result = runner.invoke(app, ["eval", "--bench", "imo-answerbench", "-m", "answerer", "--limit", "2", "--scaffold", "rc",
                                 "--turns", "2", "--prompts", str(mine), "--out", str(out)])
    assert result.exit_code == 2 and "different prompt_files" in result.output


# ---------------------------------------------------------------- issue 12: decided from the data


def answer_file(path):
    """An answer benchmark whose name says nothing about answers."""
    rows = [{"id": f"h{i}", "problem": statement, "answer": answer} for i, (statement, answer) in enumerate(ANSWERS.items())]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_the_task_comes_from_the_problems_not_the_file_name(scripts, tmp_path):
    data = answer_file(tmp_path / "hmmt_feb_2025.jsonl")
    result = invoke("eval", "--bench", data, "-m", "answerer", "--out", tmp_path / "run")
    assert "task: answer (all 4 problems have a short answer and no marking scheme)" in " ".join(result.output.split())
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert (report["max_score"], report["mean_points"]) == (1.0, 0.5)
    generations = tmp_path / "gen.jsonl"
    rows = [{"problem_idx": f"h{i}", "problem": s, "answer": a, "model_solution": f"\\boxed{{{a}}}"} for i, (s, a) in enumerate(ANSWERS.items())]
    generations.write_text("".join(json.dumps(r) + "\n" for r in rows))
    graded = invoke("grade", generations, "--out", tmp_path / "graded")
    assert "task: answer" in graded.output
    assert json.loads((tmp_path / "graded" / "report.json").read_text())["mean_points"] == 1.0


def usamo_file(path):
    rubric = [{"title": "Setup", "points": 3, "desc": "Sets up."}, {"title": "Finish", "points": 4, "desc": "Ends."}]
    rows = [{"id": "usamo-1", "problem": "Prove it.", "rubric": json.dumps(rubric, indent=2)}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_variant_the_problems_cannot_take_is_refused_before_any_call(scripts, tmp_path):
    data = usamo_file(tmp_path / "usamo.jsonl")
    result = runner.invoke(app, ["eval", "--bench", str(data), "-m", "prover", "-g", "grader", "--variant", "reference",
                                 "--out", str(tmp_path / "x")])
    assert result.exit_code == 2, result.output
    assert "problem 'usamo-1' has no reference_solution and grading_guidelines" in " ".join(result.output.split())
    assert not (tmp_path / "x" / "samples.jsonl").exists()


def test_grader_bench_takes_a_column_map(scripts, tmp_path):
    problem = load_problems("imo-proofbench", limit=1)[0]
    rows = [{"id": problem.id, "problem": problem.statement, "solution": problem.reference_solution,
             "grading_guidelines": problem.grading_guidelines, "proof": f"Proof {i}.", "rating": points}
            for i, points in enumerate((7, 1))]
    data = tmp_path / "rated.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    missing = runner.invoke(app, ["grader-bench", str(data), "-g", "grader", "--column", "response=proof", "--out", str(tmp_path / "x")])
    assert missing.exit_code == 2 and "--column human_points=COLUMN" in " ".join(missing.output.split())
    invoke("grader-bench", data, "-g", "grader", "--column", "response=proof", "--column", "human_points=rating", "--out", tmp_path / "gb")
    assert json.loads((tmp_path / "gb" / "agreement.json").read_text())["rows"] == 2


def test_grading_written_attempts_shows_no_generate_bar(scripts, tmp_path, monkeypatch):
    from qednano.records import pipeline

    shown = []
    real = pipeline.progress_bar

    def spy():
        bar = real()
        add = bar.add_task
        bar.add_task = lambda description, **kw: shown.append((description, kw.get("visible", True))) or add(description, **kw)
        return bar

    monkeypatch.setattr(pipeline, "progress_bar", spy)
    invoke("grader-bench", grading_bench_csv(tmp_path / "gb.csv"), "-g", "grader", "--out", tmp_path / "gb")
    assert ("generate", False) in shown and ("grade", True) in shown
