"""Starting the CLI, and resuming a finished eval, import none of the heavy dependencies.

Each takes from a tenth of a second to seconds to import (datasets and the openai SDK about a
second each on these machines); `qednano --help` and re-running a finished eval, which reads
samples.jsonl and makes no call, need none of them. Each check runs in a fresh interpreter,
since this test process has imported everything already.
"""

import json
import subprocess
import sys
import textwrap

HEAVY = (
    "datasets", "pyarrow", "pandas", "scipy", "openai", "httpx2", "math_verify", "latex2sympy2_extended", "sympy",
    "transformers", "torch", "trl", "onnxruntime_genai", "fastapi", "uvicorn", "matplotlib", "datasketch",
)

# `qednano --help` needs only typer and rich: not even our records and configs (pydantic models,
# slow to build; typer itself imports pydantic), YAML or the cache.
NOT_FOR_HELP = (*HEAVY, "numpy", "yaml", "sqlite3", "qednano.llm.types", "qednano.records.sample")

# Scaffolds an eval with the default scaffold (direct) has no use for: each is imported when used.
OTHER_SCAFFOLDS = tuple(f"qednano.scaffolds.{name}" for name in ("reasoning_cache", "rsa", "verify_refine", "self_check", "tournament"))

# Scripted models for the eval runs: a prover, and a grader that writes the verdict line.
SCRIPTS = textwrap.dedent(
    """
    from qednano.llm.scripted import BUILTIN_SCRIPTS

    BUILTIN_SCRIPTS["prover"] = lambda messages, sampling: "Proof. Both numbers are odd, so the product is odd."
    BUILTIN_SCRIPTS["grader"] = lambda messages, sampling: "The proof is complete.\\nFINAL SCORE: 7"
    """
)
# Runs the CLI with its arguments, then prints which of the modules named in argv[1] it imported.
RUN_CLI = textwrap.dedent(
    """
    import json, sys
    from qednano.cli import app

    watched = json.loads(sys.argv[1])
    try:
        app(sys.argv[2:])
    except SystemExit as done:
        if done.code:
            raise
    print(json.dumps(sorted(name for name in watched if name in sys.modules)))
    """
)


def heavy_imports(*args: str, watched: tuple[str, ...] = HEAVY, scripts: bool = True) -> list[str]:
    """The `watched` modules a fresh `qednano ARGS` process had imported when it finished."""
    code = (SCRIPTS if scripts else "") + RUN_CLI
    done = subprocess.run([sys.executable, "-c", code, json.dumps(watched), *args], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_help_imports_no_heavy_dependency(scripted_registry):
    for args in (["--help"], ["eval", "--help"], ["data", "--help"]):
        assert heavy_imports(*args, watched=NOT_FOR_HELP, scripts=False) == [], args


def test_resuming_a_finished_eval_imports_no_heavy_dependency(scripted_registry, tmp_path):
    for name in ("prover", "grader"):
        (scripted_registry / f"{name}.yaml").write_text(f"name: {name}\nbackend: scripted\nmodel: {name}\n")
    run = tmp_path / "run"
    args = ("eval", "--bench", "imo-proofbench", "-m", "prover", "-g", "grader", "--limit", "3", "-n", "2", "--out", str(run))
    heavy_imports(*args)
    records = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 6 and all(r["grade"]["score"] == 7 for r in records)

    # The same names, now served over HTTP by a server that is not there: every sample is
    # finished, so the resume makes no call, and neither connects nor imports the openai SDK.
    for name in ("prover", "grader"):
        (scripted_registry / f"{name}.yaml").write_text(
            f"name: {name}\nbackend: openai\nmodel: {name}\nbase_urls: [http://127.0.0.1:9/v1]\n")
    report = (run / "report.json").read_text()
    # The report is reused, not computed again; other scaffolds are not imported.
    assert heavy_imports(*args, watched=(*HEAVY, "numpy", *OTHER_SCAFFOLDS)) == []
    assert (run / "report.json").read_text() == report
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["resumes"] == 1 and manifest["status"] == "finished"
    assert all(totals["calls"] == 0 for totals in manifest["invocations"][-1]["totals"]["models"].values())
    assert [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()] == records


def test_a_resume_recomputes_the_report_when_a_sample_changed(scripted_registry, tmp_path):
    for name in ("prover", "grader"):
        (scripted_registry / f"{name}.yaml").write_text(f"name: {name}\nbackend: scripted\nmodel: {name}\n")
    run = tmp_path / "run"
    args = ("eval", "--bench", "imo-proofbench", "-m", "prover", "-g", "grader", "--limit", "2", "--out", str(run))
    heavy_imports(*args)
    assert json.loads((run / "report.json").read_text())["mean_points"] == 7
    # A later line for one sample (as a re-grade appends) scores it 0: the report must follow.
    first = json.loads((run / "samples.jsonl").read_text().splitlines()[0])
    first["grade"]["score"] = 0.0
    with (run / "samples.jsonl").open("a") as samples:
        samples.write(json.dumps(first) + "\n")
    heavy_imports(*args)
    assert json.loads((run / "report.json").read_text())["mean_points"] == 3.5
