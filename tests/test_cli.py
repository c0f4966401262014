"""The command line on scripted models (fast) and on the embedded model (slow)."""

import gc
import json
import os

import pytest
from typer.testing import CliRunner

from qednano.cli import app

runner = CliRunner()


def test_the_command_runs_the_cycle_collector_less_often_and_not_at_exit(monkeypatch):
    import qednano.cli

    seen = []

    def app():
        seen.append((gc.get_threshold(), gc.get_freeze_count(), os.environ.get("PYDANTIC_DISABLE_PLUGINS")))
        raise SystemExit(0)  # as typer ends a command

    monkeypatch.setattr(qednano.cli, "app", app)
    monkeypatch.setenv("PYDANTIC_DISABLE_PLUGINS", "x")  # so that the undo removes what run() sets
    monkeypatch.delenv("PYDANTIC_DISABLE_PLUGINS")
    before = gc.get_threshold()
    try:
        with pytest.raises(SystemExit):
            qednano.cli.run()
        frozen = gc.get_freeze_count()
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
    [(threshold, frozen_during, plugins)] = seen
    assert threshold[0] >= 100 * before[0]  # the default young threshold is 700
    assert frozen_during == 0 and frozen > 0  # frozen on the way out, for the teardown to skip
    assert plugins == "__all__"  # pydantic does not scan every distribution for plugins


def test_the_command_leaves_a_pydantic_plugins_setting_given(monkeypatch):
    import qednano.cli

    seen = []
    monkeypatch.setattr(qednano.cli, "app", lambda: seen.append(os.environ["PYDANTIC_DISABLE_PLUGINS"]))
    monkeypatch.setenv("PYDANTIC_DISABLE_PLUGINS", "")
    before = gc.get_threshold()
    try:
        qednano.cli.run()
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
    assert seen == [""]


def test_solve_prints_the_proof_and_caches_it(scripted_registry, tmp_path):
    result = runner.invoke(app, ["solve", "Show that 1 + 1 = 2.", "-m", "echo", "--max-tokens", "7"])
    assert result.exit_code == 0, result.output
    assert "Show that 1 + 1 = 2." in result.output  # the echo model returns its prompt
    [run] = (tmp_path / "runs").iterdir()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["config"]["sampling"] == {"max_tokens": 7}
    attempt = json.loads((run / "attempt.json").read_text())
    assert attempt["steps"][0]["messages"][0]["content"].rstrip().endswith("Show that 1 + 1 = 2.")
    again = runner.invoke(app, ["solve", "Show that 1 + 1 = 2.", "-m", "echo", "--max-tokens", "7"])
    assert "from cache" in again.output
    fresh = runner.invoke(app, ["solve", "Show that 1 + 1 = 2.", "-m", "echo", "--max-tokens", "7", "--sample", "1"])
    assert "from cache" not in fresh.output


def test_solve_scaffold_override_errors_name_the_file_and_the_field(scripted_registry):
    result = runner.invoke(app, ["solve", "Show x.", "-m", "echo", "--scaffold", "rc-tiny", "--set", "turns=0"])
    assert result.exit_code == 2
    assert "rc-tiny.yaml with overrides turns=0: scaffold 'rc': parameter 'turns'" in " ".join(result.output.split())
    result = runner.invoke(app, ["solve", "Show x.", "-m", "echo", "--scaffold", "rc", "--set", "turn=3"])
    assert result.exit_code == 2 and "rc.yaml with overrides turn=3: scaffold 'rc': unknown parameter 'turn'" in " ".join(
        result.output.split()
    )


def test_solve_reads_a_problem_file(scripted_registry, tmp_path):
    problem = tmp_path / "p.txt"
    problem.write_text("Prove there are infinitely many primes.")
    result = runner.invoke(app, ["solve", str(problem), "-m", "echo", "--no-cache"])
    assert result.exit_code == 0, result.output
    assert "infinitely many primes" in result.output


def test_unknown_model_is_one_clear_line(scripted_registry):
    result = runner.invoke(app, ["solve", "x", "-m", "no-such-model"])
    assert result.exit_code == 2
    assert "unknown model 'no-such-model'" in result.output


def test_missing_api_key_is_one_clear_line(scripted_registry, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result = runner.invoke(app, ["solve", "x", "-m", "gpt-5-grader"])
    assert result.exit_code == 2
    assert "OPENAI_API_KEY" in result.output


def test_models_lists_the_registry(scripted_registry):
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0
    assert "echo" in result.output and "smollm2" in result.output


@pytest.mark.slow
def test_solve_on_the_embedded_model():
    args = ["solve", "Prove that the sum of two even numbers is even.", "--max-tokens", "48", "--no-cache"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "smollm2" in result.output and " tokens" in result.output
    assert "no proof" not in result.output


def test_models_shows_long_names_whole_when_piped(scripted_registry):
    long = "a-model-with-a-very-long-registered-name-that-would-not-fit-in-eighty-columns-v2-instruct"
    (scripted_registry / "long.yaml").write_text(f"name: {long}\nbackend: scripted\nmodel: echo\n")
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0
    assert f"| {long} | scripted | echo |" in result.output


def test_text_with_colon_names_is_printed_as_written(capsys):
    from qednano.cli.common import console, errors

    console.print("Let :x: be the set of all :smile: values.")
    errors.print(":warning: stays")
    captured = capsys.readouterr()
    assert ":x:" in captured.out and ":smile:" in captured.out and "😄" not in captured.out
    assert ":warning: stays" in captured.err
