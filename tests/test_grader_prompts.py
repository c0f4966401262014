"""Grader prompts replaced by a prompts folder: the rubric grader, its re-asks, the answer judge and
the untrusted-data note, through build_grader, the scaffolds and the grading commands."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qednano.cli import app
from qednano.grading.build import GradingConfig, build_grader
from qednano.grading.proof_grader import grading_messages
from qednano.llm.model import Model
from qednano.llm.scripted import BUILTIN_SCRIPTS, ScriptedBackend
from qednano.llm.types import Messages, Sampling
from qednano.problems.record import Problem
from qednano.prompts import PromptError, Prompts, shipped_text
from qednano.scaffolds.base import Attempt
from qednano.scaffolds.registry import build_scaffold
from qednano.scaffolds.rsa import aggregate_messages
from qednano.scaffolds.tournament import compare_messages
from qednano.scaffolds.verify_refine import refine_messages, verify_messages

runner = CliRunner()
PROBLEM = Problem(id="p1", statement="Prove STATEMENT-Q.", reference_solution="REF-SOL.", grading_guidelines="(Partial) GUIDE.")
MY_GRADER = "MY GRADER. {problem}\nRef: {reference_solution}\nGuide: {guidelines}\n{proof}\n{verdict}\n"
NOTE_START = shipped_text("untrusted")[:40]


def folder(tmp_path: Path, **files: str) -> Path:
    where = tmp_path / "my-prompts"
    where.mkdir(exist_ok=True)
    for name, text in files.items():
        (where / f"{name}.txt").write_text(text)
    return where


def recording(answer) -> tuple[Model, list[Messages]]:
    seen: list[Messages] = []

    def reply(messages: Messages, sampling: Sampling) -> str:
        seen.append(messages)
        return answer(messages)

    return Model("rec", ScriptedBackend(reply)), seen


async def test_replaced_grader_prompts_reach_the_grader_model_and_its_re_asks(tmp_path):
    mine = folder(tmp_path, grade_reference=MY_GRADER, verdict_reminder="MY REMINDER ({reason})\n{form}")
    model, seen = recording(lambda messages: "Looks fine." if len(messages) == 1 else "FINAL SCORE: 6")
    grader = build_grader("proof", GradingConfig(variant="reference", prompts=str(mine)), [model])
    grade = await grader.grade(PROBLEM, "My proof.")
    assert (grade.status, grade.score) == ("graded", 6)
    first = seen[0][0]["content"]
    assert first.startswith("MY GRADER. Prove STATEMENT-Q.\nRef: REF-SOL.\nGuide: (Partial) GUIDE.\n<<<BEGIN UNTRUSTED PROOF>>>")
    assert NOTE_START not in first  # the replacement left the optional note out
    assert seen[1][-1]["content"].startswith("MY REMINDER (")
    assert "FINAL SCORE: <one of 0, 1, 6 or 7>" in seen[1][-1]["content"]  # {form} is still ours


async def test_every_member_of_a_panel_reads_the_folder(tmp_path):
    mine = folder(tmp_path, grade_no_reference="MINE {problem} {proof} {verdict}")
    models = [recording(lambda m: "FINAL SCORE: 3") for _ in range(2)]
    config = GradingConfig(variant="no_reference", prompts=str(mine), grader_samples=2)
    panel = build_grader("proof", config, [model for model, _ in models])
    grade = await panel.grade(PROBLEM, "My proof.")
    assert grade.score == 3
    assert [m[0]["content"].startswith("MINE Prove") for _, seen in models for m in seen] == [True] * 4


async def test_the_answer_judge_reads_the_folder(tmp_path):
    mine = folder(tmp_path, answer_judge="MY JUDGE {problem} / {reference}\n{begin}\n{candidate}\n{end}")
    judge, seen = recording(lambda m: "VERDICT: EQUIVALENT")
    grader = build_grader("answer", GradingConfig(prompts=str(mine)), [judge])
    problem = Problem(id="a", statement="Which n work?", short_answer=r"n \text{ odd}")
    grade = await grader.grade(problem, r"Thus \boxed{\text{all odd } n}")  # words: math-verify cannot decide
    assert (grade.status, grade.score) == ("graded", 1.0)
    assert seen[0][0]["content"].startswith("MY JUDGE Which n work? / n \\text{ odd}\n<<<CANDIDATE ANSWER>>>")


def test_the_untrusted_note_is_replaced_for_graders_and_scaffolds_alike(tmp_path):
    mine = Prompts(folder(tmp_path, untrusted="MY NOTE ON MARKED PROOFS."))
    proof = Attempt(problem_id="p1", sample_index=0, scaffold="direct", proof="x", status="ok")
    texts = [
        grading_messages(PROBLEM, "x", "reference", mine),
        verify_messages(PROBLEM, "x", mine),
        refine_messages(PROBLEM, "x", ["report"], mine),
        compare_messages(PROBLEM, "x", "y", mine),
        aggregate_messages(PROBLEM, [proof, proof], mine),
    ]
    assert all("MY NOTE ON MARKED PROOFS." in t[0]["content"] and NOTE_START not in t[0]["content"] for t in texts)
    assert NOTE_START in verify_messages(PROBLEM, "x")[0]["content"]  # ours without a folder


async def test_best_of_n_self_grades_with_the_scaffolds_folder(tmp_path):
    mine = folder(tmp_path, grade_no_reference="MY SELF-GRADE {problem} {proof} {verdict}")
    model, seen = recording(lambda m: "FINAL SCORE: 5\nWINNER: A" if "MY SELF-GRADE" in m[-1]["content"] else "A proof.")
    scaffold = build_scaffold("best_of_n", {"n": 2, "prompts": str(mine)}, model)
    await scaffold.solve(PROBLEM)
    assert sum(m[-1]["content"].startswith("MY SELF-GRADE Prove") for m in seen) == 2


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"grade_strict": "{problem} {proof}"}, "grade_strict.txt: placeholder {marking_scheme} is missing"),
        ({"verdict_reminder": "Give the verdict as {form}."}, "verdict_reminder.txt: placeholder {reason} is missing"),
        ({"answer_judge": "{problem} {reference} {candidate}"}, "answer_judge.txt: placeholder {begin} is missing"),
        ({"grade_reference": MY_GRADER + "{score}"}, "grade_reference.txt: unknown placeholder {score}"),
    ],
)
def test_a_grader_prompt_missing_a_placeholder_names_the_file_and_the_placeholder(tmp_path, files, message):
    mine = folder(tmp_path, **files)
    with pytest.raises(PromptError, match=re.escape(message)):
        build_grader("proof", GradingConfig(prompts=str(mine)), [recording(str)[0]])


# ---------------------------------------------------------------- the commands


def marker(messages, sampling):
    """7 for a proof graded with our wording of the reference prompt, 1 with the user's."""
    return "FINAL SCORE: 1" if messages[0]["content"].startswith("MY GRADER") else "FINAL SCORE: 7"


@pytest.fixture
def graders(scripted_registry, monkeypatch):
    for name, reply in {"marker": marker, "prover": lambda m, s: "Proof. By induction."}.items():
        monkeypatch.setitem(BUILTIN_SCRIPTS, name, reply)
        (scripted_registry / f"{name}.yaml").write_text(f"name: {name}\nbackend: scripted\nmodel: {name}\n")
    return scripted_registry


def generations(path: Path) -> Path:
    row = {"problem_idx": "p1", "problem": PROBLEM.statement, "model_solution": "A proof.", "solution": "REF-SOL.",
           "grading_guidelines": "(Partial) GUIDE.", "answer": ""}
    path.write_text(json.dumps(row) + "\n")
    return path


def scores(run: Path) -> list[float]:
    return [json.loads(line)["grade"]["score"] for line in (run / "samples.jsonl").read_text().splitlines()]


def test_grade_takes_a_prompts_folder_records_its_hashes_and_refuses_other_wording(graders, tmp_path):
    mine, file, out = folder(tmp_path, grade_reference=MY_GRADER), generations(tmp_path / "gen.jsonl"), tmp_path / "run"
    result = runner.invoke(app, ["grade", str(file), "-g", "marker", "--prompts", str(mine), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert scores(out) == [1]  # the user's wording reached the grader
    config = json.loads((out / "manifest.json").read_text())["config"]
    assert config["prompts"] == str(mine) and list(config["prompt_files"]) == ["grade_reference"]
    (mine / "grade_reference.txt").write_text("REWORDED " + MY_GRADER)
    again = runner.invoke(app, ["grade", str(file), "-g", "marker", "--prompts", str(mine), "--out", str(out)])
    assert again.exit_code == 2 and "different prompt_files" in again.output
    (mine / "grade_reference.txt").write_text("{problem} {proof}")
    bad = runner.invoke(app, ["grade", str(file), "-g", "marker", "--prompts", str(mine), "--out", str(tmp_path / "r2")])
    assert bad.exit_code == 2 and "grade_reference.txt: placeholder {guidelines} is missing" in bad.output


def test_grader_bench_takes_a_prompts_folder(graders, tmp_path):
    data = tmp_path / "gb.csv"
    header = ["Grading ID", "Problem ID", "Problem", "Solution", "Grading guidelines", "Response", "Points"]
    row = ["G1", "p1", PROBLEM.statement, "REF-SOL.", "(Partial) GUIDE.", "A proof.", "7"]
    with data.open("w", newline="") as handle:
        csv.writer(handle).writerows([header, row])
    mine, out = folder(tmp_path, grade_reference=MY_GRADER), tmp_path / "gb"
    result = runner.invoke(app, ["grader-bench", str(data), "-g", "marker", "--prompts", str(mine), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "ratings.jsonl").read_text())["grader"] == 1
    assert "grade_reference" in json.loads((out / "manifest.json").read_text())["config"]["prompt_files"]


def test_eval_uses_the_folder_for_scaffold_and_grader_and_refuses_a_resume_with_other_grader_wording(graders, tmp_path):
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"id": "p1", "problem": PROBLEM.statement, "solution": "REF-SOL.",
                                 "grading_guidelines": "(Partial) GUIDE."}) + "\n")
    mine, out = folder(tmp_path, grade_reference=MY_GRADER, solve="MY SOLVE {problem}"), tmp_path / "run"
    args = ["eval", "--bench", str(bench), "-m", "prover", "-g", "marker", "--prompts", str(mine), "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    record = json.loads((out / "samples.jsonl").read_text())
    assert record["attempt"]["steps"][0]["messages"][-1]["content"] == "MY SOLVE Prove STATEMENT-Q."
    assert record["grade"]["score"] == 1
    assert sorted(json.loads((out / "manifest.json").read_text())["config"]["prompt_files"]) == ["grade_reference", "solve"]
    (mine / "grade_reference.txt").write_text("REWORDED " + MY_GRADER)
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "different prompt_files" in again.output


def test_data_difficulty_and_data_grade_take_a_prompts_folder(graders, tmp_path):
    problems = tmp_path / "problems.jsonl"
    problems.write_text(json.dumps({"id": "p1", "problem": PROBLEM.statement}) + "\n")  # no reference: no_reference grading
    mine = folder(tmp_path, grade_no_reference="MY GRADER {problem}\n{proof}\n{verdict}", solve="MY SOLVE {problem}")
    measured, regraded, ours = tmp_path / "difficulty", tmp_path / "graded", tmp_path / "ours"
    for args in (["difficulty", problems, "-m", "prover", "-g", "marker", "-k", 2, "--prompts", mine, "--out", measured],
                 ["grade", measured, "-g", "marker", "--prompts", mine, "--out", regraded],
                 ["grade", measured, "-g", "marker", "--out", ours]):
        result = runner.invoke(app, ["data", *map(str, args)])
        assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (measured / "samples.jsonl").read_text().splitlines()]
    assert {r["attempt"]["steps"][0]["messages"][-1]["content"] for r in records} == {"MY SOLVE Prove STATEMENT-Q."}
    assert scores(measured) == scores(regraded) == [1, 1] and scores(ours) == [7, 7]
    for run in (measured, regraded):
        assert sorted(json.loads((run / "manifest.json").read_text())["config"]["prompt_files"]) == ["grade_no_reference", "solve"]
