"""Replacement prompt folders: named files stand in for ours, checked for their placeholders."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qednano.cli import app
from qednano.evaluate.commands import EvalConfig, eval_scaffold
from qednano.llm.model import Model
from qednano.llm.scripted import ScriptedBackend
from qednano.llm.types import Messages, Sampling
from qednano.problems.record import Problem
from qednano.prompts import OPTIONAL, PromptError, Prompts, placeholders, shipped, shipped_text
from qednano.scaffolds.registry import ScaffoldConfigError, build_scaffold, load_scaffold

PROBLEM = Problem(id="p", statement="Prove STATEMENT-Q.")


def folder(tmp_path: Path, **files: str) -> Path:
    where = tmp_path / "my-prompts"
    where.mkdir(exist_ok=True)
    for name, text in files.items():
        (where / f"{name}.txt").write_text(text)
    return where


def recording() -> tuple[Model, list[Messages]]:
    seen: list[Messages] = []

    def reply(messages: Messages, sampling: Sampling) -> str:
        seen.append(messages)
        return "VERDICT: 1\nWINNER: A\nSUMMARY" if "MINE" not in messages[-1]["content"] else "PROOF"

    return Model("rec", ScriptedBackend(reply)), seen


def test_prompt_names_are_unique_across_the_package():
    names = shipped()  # raises on a name used twice: a folder of replacements is flat
    assert {"solve", "rc_continue", "rc_summarize", "aggregate", "compare", "verify", "refine"} <= set(names)
    assert {"grade_reference", "answer_judge", "untrusted"} <= set(names)  # grader prompts too


async def test_a_folder_replaces_the_prompts_it_holds_and_keeps_ours_for_the_rest(tmp_path):
    mine = folder(tmp_path, solve="MINE: prove this.\n{problem}\n")
    m, seen = recording()
    rc = build_scaffold("rc", {"turns": 2, "prompts": str(mine)}, m)
    await rc.solve(PROBLEM)
    assert seen[0][-1]["content"] == "MINE: prove this.\nProve STATEMENT-Q.\n"
    assert seen[1][-1]["content"].startswith(shipped_text("rc_summarize")[:40])  # not replaced


async def test_nested_generators_inherit_the_folder_unless_they_name_their_own(tmp_path):
    mine = folder(tmp_path, solve="MINE {problem}")
    m, seen = recording()
    rsa = build_scaffold("rsa", {"population": 2, "subset": 1, "rounds": 0, "prompts": str(mine)}, m)
    await rsa.solve(PROBLEM)
    assert sum(msgs[-1]["content"] == "MINE Prove STATEMENT-Q." for msgs in seen) == 2
    other = build_scaffold("rsa", {"prompts": str(mine), "generator": {"scaffold": "direct", "params": {"prompts": None}}}, m)
    assert other.generator.prompts.folder is None


async def test_a_replacement_may_leave_out_the_optional_helper_text(tmp_path):
    assert OPTIONAL <= placeholders(shipped_text("aggregate"))
    mine = folder(tmp_path, aggregate="MINE merge for {problem}:\n{candidates}")
    text = Prompts(mine).fill("aggregate", problem="P", count=2, untrusted="NOTE", candidates="C1 C2")
    assert text == "MINE merge for P:\nC1 C2"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"solve": "Solve it."}, "solve.txt: placeholder {problem} is missing; this prompt needs {problem}"),
        ({"rc_continue": "{problem}\n{curr_summary}"}, "rc_continue.txt: unknown placeholder {curr_summary}; this prompt takes {problem}, {summary}"),
        ({"verify": "{problem} {proof} \\boxed{score}"}, "verify.txt: unknown placeholder {score}"),
        ({"compare": "{problem} {proof_a} {proof_b} a } alone"}, "compare.txt: Single '}'"),
        ({"refine": "{problem} {proof} {report} {}"}, "refine.txt: empty placeholder {}"),
        ({"sovle": "{problem}"}, "sovle.txt: not a prompt qednano uses"),
        # a verifier or judge must be asked for the verdict line the scaffold reads
        ({"verify": "{problem} {proof} Score it in a box."}, "verify.txt: placeholder {verdict} is missing"),
        ({"compare_answer": "{problem} {proof_a} {proof_b}"}, "compare_answer.txt: placeholder {winner} is missing"),
    ],
)
def test_bad_replacements_name_the_file_and_the_placeholder(tmp_path, files, message):
    mine = folder(tmp_path, **files)
    m, _ = recording()
    with pytest.raises(ScaffoldConfigError, match=re.escape(message)):
        build_scaffold("rc", {"prompts": str(mine)}, m)


def test_a_missing_or_empty_folder_is_an_error(tmp_path):
    with pytest.raises(PromptError, match="does not exist"):
        Prompts(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PromptError, match="holds no NAME.txt prompt files"):
        Prompts(tmp_path / "empty")


def test_a_config_files_folder_is_read_from_beside_the_file(tmp_path):
    folder(tmp_path, solve="MINE {problem}")
    (tmp_path / "mine.yaml").write_text("scaffold: direct\nparams: {prompts: my-prompts}\n")
    m, _ = recording()
    scaffold = load_scaffold(str(tmp_path / "mine.yaml"), m)
    assert scaffold.prompts.folder == tmp_path / "my-prompts"


def test_eval_passes_its_folder_and_task_to_the_scaffold(tmp_path):
    mine = folder(tmp_path, solve_answer="MINE {problem}")
    m, _ = recording()
    config = EvalConfig(bench="x.jsonl", model="m", scaffold="rsa", prompts=str(mine))
    rsa = eval_scaffold(config, "answer", m, None)
    assert rsa.prompts.folder == mine and rsa.generator.prompts.folder == mine
    assert rsa.config.task == rsa.generator.config.task == "answer"
    assert rsa.generator.prompts.text("solve") == "MINE {problem}"


def test_solve_takes_a_prompts_folder(scripted_registry, tmp_path):
    mine = folder(tmp_path, solve="MINE-WORDING {problem}")
    result = CliRunner().invoke(app, ["solve", "Show x.", "-m", "echo", "--prompts", str(mine), "--no-cache"])
    assert result.exit_code == 0, result.output
    assert "MINE-WORDING Show x." in result.output  # the echo model repeats its prompt
    bad = folder(tmp_path, verify="no placeholders")
    result = CliRunner().invoke(app, ["solve", "Show x.", "-m", "echo", "--prompts", str(bad), "--no-cache"])
    assert result.exit_code != 0 and "verify.txt: placeholder {problem} is missing" in result.output


def test_the_prompts_command_lists_placeholders_and_checks_a_folder(tmp_path):
    result = CliRunner().invoke(app, ["prompts"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "rc_summarize " in line)
    assert "{problem} {reasoning} {summary}" in row
    good = folder(tmp_path, solve="MINE {problem}")
    result = CliRunner().invoke(app, ["prompts", str(good)], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "1 prompt(s) replaced" in result.output
    (good / "verify.txt").write_text("{problem} {proof}")
    result = CliRunner().invoke(app, ["prompts", str(good)])
    assert result.exit_code == 2 and "verify.txt: placeholder {verdict} is missing" in result.output
