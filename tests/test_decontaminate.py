"""`qednano data decontaminate` and `qednano data dedup` end to end, on planted near-duplicates
of the IMO-Bench problems (read from ../shared/data/imobench, never copied here)."""

import json

import pandas as pd
import pytest
from conftest import IMOBENCH
from typer.testing import CliRunner

from qednano.cli import app
from qednano.data.matching import Corpus, MatchSettings, find_matches
from qednano.data.similarity import Hasher
from qednano.data.variants import VARIANTS
from qednano.problems.loaders import load_problems

runner = CliRunner()
needs_imobench = pytest.mark.skipif(not (IMOBENCH / "proofbench_v2.csv").is_file(), reason="IMO-Bench CSVs not present")

# Problems of our own, unlike any benchmark problem: they must survive decontamination.
CLEAN = [
    "A bag holds 3 red and 5 blue marbles. Two are drawn without replacement. What is the chance both are blue?",
    "Prove that the product of two odd integers is odd.",
    "How many diagonals does a convex polygon with 12 sides have?",
    "A train leaves at 9 and travels 240 km at 80 km per hour. When does it arrive?",
    "Show that there are infinitely many primes.",
    "Write 0.375 as a fraction in lowest terms.",
]


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def imobench(monkeypatch, tmp_path):
    monkeypatch.setenv("QEDNANO_DATA_DIR", str(IMOBENCH.parent))
    monkeypatch.chdir(tmp_path)
    return {name: load_problems(name) for name in ("imo-proofbench", "imo-answerbench")}


def planted_training_set(path, imobench):
    """Every IMO-Bench problem in every rewritten form, plus clean problems."""
    rows, truth = [], {}
    for bench, problems in imobench.items():
        for problem in problems:
            for variant, rewrite in VARIANTS.items():
                row_id = f"{problem.id}/{variant}"
                rows.append({"uid": row_id, "question": rewrite(problem.statement), "proof": "..."})
                truth[row_id] = (bench, problem.id)
    rows += [{"uid": f"clean-{i}", "question": text, "proof": "..."} for i, text in enumerate(CLEAN)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return truth


@needs_imobench
def test_every_planted_near_duplicate_is_found_and_dropped(imobench, tmp_path):
    truth = planted_training_set(tmp_path / "train.jsonl", imobench)
    result = runner.invoke(app, [
        "data", "decontaminate", "train.jsonl", "--against", "imo-proofbench", "--against", "imo-answerbench",
        "--column", "id=uid", "--column", "statement=question", "--out", "run",
    ])
    assert result.exit_code == 0, result.output
    matches = read_jsonl(tmp_path / "run" / "matches.jsonl")
    found = {(m["train_id"], m["against"], m["against_id"]) for m in matches}
    missed = [row_id for row_id, (bench, pid) in truth.items() if (row_id, bench, pid) not in found]
    assert missed == [], f"{len(missed)} planted rows not found, e.g. {missed[:5]}"
    assert not any(m["train_id"].startswith("clean-") for m in matches)
    assert set(matches[0]) >= {"train_id", "against_id", "against", "method", "similarity", "train_text", "against_text"}
    kept = pd.read_parquet(tmp_path / "run" / "train.parquet")
    assert sorted(kept["uid"]) == sorted(f"clean-{i}" for i in range(len(CLEAN)))
    assert list(kept.columns) == ["uid", "question", "proof"]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    for bench in imobench:
        mine = [m for m in matches if m["against"] == bench]
        assert report["against"][bench]["pairs"] == len(mine)
        assert report["against"][bench]["train_rows"] >= len(imobench[bench]) * len(VARIANTS)
        assert sum(report["against"][bench]["by_method"].values()) == len(mine)
    assert report["matched_rows"] == len(truth) and report["written_rows"] == len(CLEAN)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert (manifest["command"], manifest["status"]) == ("data-decontaminate", "finished")


@needs_imobench
def test_false_positives_among_the_460_distinct_imobench_problems_are_rare(imobench):
    texts = [p.statement for problems in imobench.values() for p in problems]
    assert len(set(texts)) == 460
    corpus = Corpus.build(texts, Hasher(3))
    pairs = find_matches(corpus, corpus, MatchSettings(), same=True)
    flagged = {p.query for p in pairs} | {p.reference for p in pairs}
    assert len(flagged) / len(texts) <= 0.02  # measured 6 of 460 (1.3%) in November 2026


@needs_imobench
def test_flag_keeps_every_row_and_names_its_matches(imobench, tmp_path):
    problem = imobench["imo-proofbench"][3]
    rows = [{"id": "a", "problem": VARIANTS["all"](problem.statement)}, {"id": "b", "problem": CLEAN[1]}]
    pd.DataFrame(rows).to_parquet(tmp_path / "train.parquet")
    result = runner.invoke(app, ["data", "decontaminate", "train.parquet", "--against", "imo-proofbench", "--flag", "--format", "jsonl", "--out", "run"])
    assert result.exit_code == 0, result.output
    written = read_jsonl(tmp_path / "run" / "train.jsonl")
    assert [(r["id"], r["contaminated_by"]) for r in written] == [("a", [f"imo-proofbench:{problem.id}"]), ("b", [])]


def test_dedup_keeps_the_first_statement_of_each_problem(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = "Let $n$ be a positive integer. Prove that $n^5 - n$ is divisible by $30$."
    rows = [
        {"id": "p1", "problem": base},
        {"id": "q1", "problem": CLEAN[0]},
        {"id": "p2", "problem": VARIANTS["reworded"](base)},
        {"id": "q2", "problem": CLEAN[0]},
        {"id": "p3", "problem": VARIANTS["all"](base)},
        {"id": "r1", "problem": CLEAN[2]},
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "train.csv", index=False)
    result = runner.invoke(app, ["data", "dedup", "train.csv", "--out", "run"])
    assert result.exit_code == 0, result.output
    matches = read_jsonl(tmp_path / "run" / "matches.jsonl")
    assert {(m["train_id"], m["against_id"]) for m in matches} == {("p2", "p1"), ("p3", "p1"), ("p3", "p2"), ("q2", "q1")}
    assert next(m for m in matches if m["train_id"] == "q2")["method"] == "exact"
    assert list(pd.read_parquet(tmp_path / "run" / "train.parquet")["id"]) == ["p1", "q1", "r1"]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["command"] == "data-dedup"
    # The viewer reads the run through the matches.jsonl contract and shows each pair.
    from fastapi.testclient import TestClient

    from qednano.viewer.app import create_app
    from qednano.viewer.rundirs import RunSet

    html = TestClient(create_app(RunSet([tmp_path / "run"]))).get("/run/run").text
    assert 'id="match-count">4<' in html and "p3" in html


def test_a_malformed_row_names_file_row_and_field(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = [{"id": "a", "problem": CLEAN[0]}, {"id": "b", "problem": CLEAN[1]}, {"id": "c", "problem": None}]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = runner.invoke(app, ["data", "dedup", "train.jsonl", "--out", "run"])
    assert result.exit_code == 2
    assert "train.jsonl line 3: field 'statement' (column 'problem') is missing" in result.output
    rows[2] = {"id": "a", "problem": CLEAN[2]}
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = runner.invoke(app, ["data", "dedup", "train.jsonl", "--out", "run"])
    assert result.exit_code == 2 and "line 3" in result.output and "repeats 'a' from line 1" in result.output
    result = runner.invoke(app, ["data", "dedup", "train.jsonl", "--column", "statement=question", "--out", "run"])
    assert result.exit_code == 2 and "'question', which does not exist" in result.output


def test_an_unreachable_hub_benchmark_fails_at_once_and_a_local_file_works(tmp_path, monkeypatch):
    """proofbench has no local copy and lives on the Hub: offline, the run must stop with an
    error that says how to pass the file instead; the same problems as a local file work."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    bench = [
        {"problem_id": "pb-1", "problem": "Prove that for every positive integer $n$, $n^5 - n$ is divisible by $30$.", "grading_scheme": "..."},
        {"problem_id": "pb-2", "problem": "Find all primes $p$ such that $p^2 + 2$ is also prime.", "grading_scheme": "..."},
    ]
    (tmp_path / "proofbench.jsonl").write_text("".join(json.dumps(r) + "\n" for r in bench))
    rows = [{"id": "t1", "problem": VARIANTS["all"](bench[1]["problem"])}, {"id": "t2", "problem": CLEAN[4]}]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    offline = runner.invoke(app, ["data", "decontaminate", "train.jsonl", "--against", "proofbench", "--out", "run"])
    assert offline.exit_code == 2
    assert "proofbench: no local copy" in offline.output and "lm-provers/ProofBench" in offline.output and "--against FILE" in offline.output
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    hub_train = runner.invoke(app, ["data", "dedup", "someone/problems", "--out", "run3"])
    assert hub_train.exit_code == 2 and "someone/problems: the dataset is on the Hugging Face Hub" in hub_train.output
    local = runner.invoke(app, ["data", "decontaminate", "train.jsonl", "--against", "proofbench.jsonl", "--out", "run2"])
    assert local.exit_code == 0, local.output
    matches = read_jsonl(tmp_path / "run2" / "matches.jsonl")
    assert [(m["train_id"], m["against"], m["against_id"]) for m in matches] == [("t1", "proofbench.jsonl", "pb-2")]


def test_a_data_run_directory_is_read_through_its_problems_file(tmp_path, monkeypatch):
    from qednano.problems.record import Problem

    monkeypatch.chdir(tmp_path)
    stage = tmp_path / "distill-run"
    stage.mkdir()
    (stage / "manifest.json").write_text("{}")
    problems = [Problem(id="x1", statement=CLEAN[1]), Problem(id="x2", statement=VARIANTS["latex"](CLEAN[1])), Problem(id="x3", statement=CLEAN[2])]
    (stage / "problems.jsonl").write_text("".join(p.model_dump_json() + "\n" for p in problems))
    result = runner.invoke(app, ["data", "dedup", str(stage), "--out", "run", "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    assert [row["id"] for row in read_jsonl(tmp_path / "run" / "train.jsonl")] == ["x1", "x3"]
