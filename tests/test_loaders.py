"""Benchmark loaders: the real IMO-Bench files, Hugging Face layouts, and files that must fail."""

import csv
import json
import os
import re
from pathlib import Path

import datasets.config
import pytest
from conftest import IMOBENCH
from datasets import Dataset, DatasetDict

from qednano.problems.layouts import HUB_LAYOUTS, IMOBENCH_CATEGORIES, IMOBENCH_LEVELS
from qednano.problems.loaders import ProblemLoadError, load_problems, load_rated_responses
from qednano.problems.rows import parse_year

PROOFBENCH_CSV = IMOBENCH / "proofbench_v2.csv"
ANSWERBENCH_CSV = IMOBENCH / "answerbench_v2.csv"

needs_data = pytest.mark.skipif(not PROOFBENCH_CSV.is_file(), reason="IMO-Bench CSVs not present")


@pytest.fixture(autouse=True)
def private_datasets_cache(tmp_path, monkeypatch):
    """Keep the arrow files `datasets` builds from test files out of the user's cache."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")


# ---------------------------------------------------------------------------- the real files


@needs_data
def test_imo_proofbench_loads_all_60_problems_with_solution_and_guidelines():
    problems = load_problems(str(PROOFBENCH_CSV))
    assert len(problems) == 60
    assert len({p.id for p in problems}) == 60
    assert all(p.reference_solution and p.grading_guidelines for p in problems)
    assert {p.category for p in problems} <= set(IMOBENCH_CATEGORIES)
    assert {p.level for p in problems} <= set(IMOBENCH_LEVELS)
    first = problems[0]
    assert (first.id, first.source, first.year) == ("PB-Basic-001", "(Modified) IMO 2019, P1", 2019)
    assert first.short_answer.startswith("$f(x) = 0$")
    # Blank short answers in the file (a single space) are empty, not " ".
    assert any(p.short_answer == "" for p in problems)


@needs_data
def test_imo_answerbench_loads_all_400_problems_with_answers_and_subcategory():
    problems = load_problems(str(ANSWERBENCH_CSV))
    assert len(problems) == 400
    assert len({p.id for p in problems}) == 400
    assert all(p.short_answer for p in problems)
    assert {p.category for p in problems} == set(IMOBENCH_CATEGORIES)
    fixed = next(p for p in problems if p.id == "imo-bench-algebra-036")
    assert fixed.short_answer == r"$Y(x)=A+\frac{B}{x}-x$"
    assert fixed.metadata == {"subcategory": "Functional Equation"}
    assert fixed.year == 2002


@needs_data
def test_short_names_resolve_to_the_local_csv_in_the_data_dir(tmp_path, monkeypatch):
    folder = tmp_path / "data" / "imobench"
    folder.mkdir(parents=True)
    lines = PROOFBENCH_CSV.read_text(encoding="utf-8")
    # A copy cut to the first 3 records, to tell it apart from the full file.
    rows = list(csv.reader(lines.splitlines(keepends=True)))
    with (folder / "proofbench_v2.csv").open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows[:4])
    monkeypatch.setenv("QEDNANO_DATA_DIR", os.pathsep.join([str(tmp_path / "data"), str(IMOBENCH.parent)]))
    assert [p.id for p in load_problems("imo-proofbench")] == ["PB-Basic-001", "PB-Basic-002", "PB-Basic-003"]
    assert len(load_problems("imo-answerbench", limit=5)) == 5  # falls through to the shared copy


@pytest.mark.parametrize(
    ("source", "year"),
    [("IMO 2020", 2020), ("(Modified) USAMO 2001 P1", 2001), ("Mathley 2011-2012", 2011), ("Estonian MC 16/17", None),
     ("Novel Problem", None), ("Problem 12345", None)],
)
def test_parse_year(source, year):
    assert parse_year(source) == year


# ---------------------------------------------------------------------------- shifted rows


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@needs_data
def test_unbalanced_quote_in_answerbench_names_the_row_and_the_shifted_field(tmp_path):
    # Upstream's bug at imo-bench-algebra-036: the problem's closing quote is missing, so the
    # answer lands in the problem and the category in the answer column.
    text = ANSWERBENCH_CSV.read_text(encoding="utf-8")
    broken = text.replace('\\frac{b}{a}\n\\]\n","$Y(x)', '\\frac{b}{a}\n\\]\n,"$Y(x)')
    assert broken != text
    path = write(tmp_path / "answerbench_broken.csv", broken)
    with pytest.raises(ProblemLoadError) as caught:
        load_problems(str(path))
    message = str(caught.value)
    start = broken[: broken.index("imo-bench-algebra-036")].count("\n") + 1  # as a text editor numbers it
    assert f"answerbench_broken.csv lines {start}-" in message and "(id 'imo-bench-algebra-036')" in message
    assert "field 'short_answer' (column 'Short Answer') holds 'Algebra', a category name" in message
    assert "Fix:" in message


@needs_data
def test_stray_quote_that_swallows_the_next_rows_is_caught_at_its_row(tmp_path):
    text = ANSWERBENCH_CSV.read_text(encoding="utf-8")
    broken = text.replace(",$X(y)=1+(u-1) \\bar{y}$,", ',"$X(y)=1+(u-1) \\bar{y}$,')
    path = write(tmp_path / "stray.csv", broken)
    start = broken[: broken.index("imo-bench-algebra-037")].count("\n") + 1
    with pytest.raises(ProblemLoadError, match=rf"stray\.csv lines {start}-\d+ \(id 'imo-bench-algebra-037'\).*field 'category'"):
        load_problems(str(path))


def test_a_row_with_too_few_fields_is_reported_with_the_missing_column(tmp_path):
    path = write(tmp_path / "short.csv", "id,problem,answer,source\np1,Find x.,3,IMO 2001\np2,Find y.,4\n")
    with pytest.raises(ProblemLoadError, match=r"short\.csv line 3 \(id 'p2'\): has 3 fields but the header has 4 .*'source'"):
        load_problems(str(path))


def test_category_outside_the_imobench_set_is_a_shifted_row(tmp_path):
    header = "Problem ID,Problem,Short Answer,Category,Subcategory,Source\n"
    path = write(tmp_path / "ab.csv", header + "q1,Find x.,3,Algebra,Sequence,IMO 2001\nq2,Find y.,4,Sequence,Algebra,IMO 2002\n")
    with pytest.raises(ProblemLoadError, match=r"ab\.csv line 3 \(id 'q2'\).*field 'category' \(column 'Category'\) holds 'Sequence'"):
        load_problems(str(path))


def test_level_outside_the_imobench_set_is_a_shifted_row(tmp_path):
    header = "Problem ID,Problem,Solution,Grading guidelines,Category,Level,Short Answer,Source\n"
    path = write(tmp_path / "pb.csv", header + "PB-1,Show x.,Proof.,(Partial) 1.,Algebra,Algebra,,IMO 2001\n")
    with pytest.raises(ProblemLoadError, match=r"field 'level' \(column 'Level'\) holds 'Algebra'"):
        load_problems(str(path))


# ---------------------------------------------------------------------------- bad rows


def test_missing_statement_names_file_row_id_and_field(tmp_path):
    path = write(tmp_path / "p.csv", 'id,problem,answer\na1,"Find x.",3\na2,"   ",4\n')
    with pytest.raises(ProblemLoadError) as caught:
        load_problems(str(path))
    assert "p.csv line 3 (id 'a2'): field 'statement' (column 'problem') is empty" in str(caught.value)


def test_missing_id_is_an_error(tmp_path):
    path = write(tmp_path / "p.csv", "id,problem\n,Find x.\n")
    with pytest.raises(ProblemLoadError, match=r"p\.csv line 2: field 'id' is empty"):
        load_problems(str(path))


def test_duplicate_ids_name_both_rows(tmp_path):
    path = write(tmp_path / "p.csv", "id,problem\na,Find x.\nb,Find y.\na,Find z.\n")
    with pytest.raises(ProblemLoadError, match=r"p\.csv line 4 \(id 'a'\).*repeats the id of line 2"):
        load_problems(str(path))


def test_non_numeric_rubric_points_name_the_criterion(tmp_path):
    rubric = [{"title": "Setup", "points": 2, "desc": "d"}, {"title": "Finish", "points": "three", "desc": "e"}]
    with (tmp_path / "r.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "problem", "rubric"])
        writer.writerow(["r1", "Prove it.", json.dumps(rubric)])
    with pytest.raises(ProblemLoadError) as caught:
        load_problems(str(tmp_path / "r.csv"))
    message = str(caught.value)
    assert "r.csv line 2 (id 'r1')" in message
    assert "field 'rubric'" in message and "criterion 2 ('Finish') has points 'three'" in message


@pytest.mark.parametrize("bad", ['[{"title": "A", "points": 1', '[{"title": "A", "points": -1}]', '[{"title": "A"}]'])
def test_broken_rubrics_fail(tmp_path, bad):
    with (tmp_path / "r.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([["id", "problem", "marking_scheme"], ["r1", "Prove it.", bad]])
    with pytest.raises(ProblemLoadError, match=r"r\.csv line 2 \(id 'r1'\).*field 'rubric' \(column 'marking_scheme'\)"):
        load_problems(str(tmp_path / "r.csv"))


def test_structured_rubric_becomes_criteria_and_plain_text_becomes_guidelines(tmp_path):
    rubric = [{"title": "Setup", "max_points": "2", "grading_scheme_desc": "Sets up."}, {"title": "Finish", "points": 5}]
    with (tmp_path / "r.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerows([["id", "problem", "rubric"], ["r1", "Prove it.", json.dumps(rubric)], ["r2", "Prove that.", "[Partial] 1 point for x"]])
    first, second = load_problems(str(tmp_path / "r.csv"))
    assert [(c.title, c.points, c.description) for c in first.criteria] == [("Setup", 2.0, "Sets up."), ("Finish", 5.0, "")]
    assert second.criteria == () and second.grading_guidelines == "[Partial] 1 point for x"


# ---------------------------------------------------------------------------- column maps and formats


def test_jsonl_with_a_column_mapping(tmp_path):
    rows = [
        {"problem_idx": 7, "question_text": "Compute 1+1.", "final": "2", "comp": "HMMT 2021", "tags": "easy"},
        {"problem_idx": 8, "question_text": "Compute 2+2.", "final": "4", "comp": "folklore", "tags": "easy"},
    ]
    path = write(tmp_path / "mine.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    columns = {"id": "problem_idx", "statement": "question_text", "short_answer": "final", "source": "comp", "metadata": {"tags": "tags"}}
    problems = load_problems(str(path), columns=columns)
    assert [(p.id, p.statement, p.short_answer, p.year, p.metadata) for p in problems] == [
        ("7", "Compute 1+1.", "2", 2021, {"tags": "easy"}),
        ("8", "Compute 2+2.", "4", None, {"tags": "easy"}),
    ]


def test_parquet_with_a_column_mapping_and_limit(tmp_path):
    path = tmp_path / "mine.parquet"
    Dataset.from_list([{"uid": f"u{i}", "text": f"Problem {i}.", "sol": f"Proof {i}."} for i in range(5)]).to_parquet(str(path))
    problems = load_problems(str(path), columns={"id": "uid", "statement": "text", "reference_solution": "sol"}, limit=3)
    assert [(p.id, p.reference_solution) for p in problems] == [("u0", "Proof 0."), ("u1", "Proof 1."), ("u2", "Proof 2.")]


def test_mapping_errors_name_the_field_and_the_columns(tmp_path):
    path = write(tmp_path / "m.jsonl", json.dumps({"uid": "a", "text": "Find x."}) + "\n")
    with pytest.raises(ProblemLoadError, match=r"'statment'.*Known fields"):
        load_problems(str(path), columns={"statment": "text"})
    with pytest.raises(ProblemLoadError, match=r"field 'statement' is mapped to column 'body', which does not exist; columns are \['uid', 'text'\]"):
        load_problems(str(path), columns={"id": "uid", "statement": "body"})
    with pytest.raises(ProblemLoadError, match=r"no column for the problem statement"):
        load_problems(str(path), columns={"id": "uid"})


def test_unknown_source_is_explained():
    with pytest.raises(ProblemLoadError, match=r"not a benchmark name \(imo-proofbench, imo-answerbench, proofbench\)"):
        load_problems("no such thing.csv")


# ---------------------------------------------------------------------------- Hugging Face layouts

IMO_PROOF_HUB_ROWS = [
    {"problem_id": "PB-Basic-001", "problem": "Determine all f.", "solution": "Take x=0.", "grading_guidelines": "(Partial) 1.",
     "answer": "f=0", "category": "Algebra", "level": "IMO-easy", "source": "(Modified) IMO 2019, P1"},
    {"problem_id": "PB-Basic-002", "problem": "Show that x.", "solution": "Clearly.", "grading_guidelines": "(Almost) 1.",
     "answer": "", "category": "Number theory", "level": "pre-IMO", "source": "Novel Problem"},
]


def test_imoproofbench_layout_reads_a_saved_dataset_folder(tmp_path):
    DatasetDict({"train": Dataset.from_list(IMO_PROOF_HUB_ROWS)}).save_to_disk(str(tmp_path / "saved"))
    columns = HUB_LAYOUTS["lm-provers/IMOProofBench"].columns
    problems = load_problems(str(tmp_path / "saved"), split="train", columns=columns)
    assert [(p.id, p.reference_solution, p.grading_guidelines, p.level, p.year) for p in problems] == [
        ("PB-Basic-001", "Take x=0.", "(Partial) 1.", "IMO-easy", 2019),
        ("PB-Basic-002", "Clearly.", "(Almost) 1.", "pre-IMO", None),
    ]


@pytest.fixture
def fake_hub(monkeypatch):
    """`load_dataset(name, split=...)` answered from in-memory datasets, recording each call."""
    tables: dict[str, Dataset] = {}
    calls: list[tuple] = []

    def fake_load_dataset(name, *args, split=None, **kwargs):
        calls.append((name, split))
        return tables[name]

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    return tables, calls


def test_hub_names_use_their_layout_and_checks(fake_hub):
    tables, calls = fake_hub
    tables["lm-provers/IMOProofBench"] = Dataset.from_list(IMO_PROOF_HUB_ROWS)
    problems = load_problems("lm-provers/IMOProofBench")
    assert calls == [("lm-provers/IMOProofBench", "train")]
    assert [p.category for p in problems] == ["Algebra", "Number theory"]
    # The IMO-Bench checks apply to the hub copy too: a proof problem needs its guidelines.
    shifted = [dict(IMO_PROOF_HUB_ROWS[0], grading_guidelines="")]
    tables["lm-provers/IMOProofBench"] = Dataset.from_list(shifted)
    with pytest.raises(ProblemLoadError, match=r"lm-provers/IMOProofBench \[train\] row 1 .*field 'grading_guidelines'"):
        load_problems("lm-provers/IMOProofBench")


def test_an_unreachable_hub_dataset_is_a_load_error(monkeypatch):
    def offline(name, *args, split=None, **kwargs):
        raise ConnectionError(f"Couldn't reach {name!r} on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(ProblemLoadError, match=r"lm-provers/ProofBench: cannot load split 'train'.*QEDNANO_DATA_DIR"):
        load_problems("proofbench")


def test_final_answer_layout_accepts_either_id_name(fake_hub):
    tables, _ = fake_hub
    tables["lm-provers/IMOBench-FinalAnswer"] = Dataset.from_list(
        [{"question_id": "imo-bench-algebra-001", "problem": "Find n.", "answer": "3", "category": "Algebra",
          "subcategory": "Sequence", "source": "IMO Shortlist 2016"}]
    )
    (problem,) = load_problems("lm-provers/IMOBench-FinalAnswer")
    assert (problem.id, problem.short_answer, problem.metadata, problem.year) == (
        "imo-bench-algebra-001", "3", {"subcategory": "Sequence"}, 2016)


def test_proofbench_layout_reads_a_structured_grading_scheme(fake_hub):
    tables, calls = fake_hub
    scheme = [{"title": "Lemma", "points": 3, "desc": "Proves the lemma."}, {"title": "Rest", "points": 4, "desc": "Concludes."}]
    tables["lm-provers/ProofBench"] = Dataset.from_list(
        [{"problem_id": "USAMO-2024-1", "problem": "Prove P.", "solution": "Because.", "grading_scheme": scheme}]
    )
    (problem,) = load_problems("proofbench", split="24_25")
    assert calls == [("lm-provers/ProofBench", "24_25")]
    assert [(c.title, c.points) for c in problem.criteria] == [("Lemma", 3.0), ("Rest", 4.0)]
    assert "- Lemma (3 points): Proves the lemma." in problem.marking_scheme_text()


def rated_row(problem_id, generator, rating, problem="Prove that 2 is prime."):
    return {
        "problem_id": problem_id, "problem": problem, "generator": generator, "model_solution": f"Proof by {generator}.",
        "reference_solution": "It has no divisors.", "expert_rating": rating, "marking_scheme": "Full marks for a proof.",
        "generation_prompt": "Solve.", "metadata": {"contest": "USAMO", "contest_year": "2024"}, "response_number": 0,
    }


def test_rated_responses_share_one_problem_per_id(fake_hub):
    tables, _ = fake_hub
    tables["wenjiema02/ProofBench"] = Dataset.from_list(
        [rated_row("P1", "o3", 7), rated_row("P1", "gemini", 2), rated_row("P2", "o3", 0, problem="Prove Q.")]
    )
    rated = load_rated_responses()
    assert [(r.problem.id, r.generator, r.points, r.response) for r in rated] == [
        ("P1", "o3", 7.0, "Proof by o3."), ("P1", "gemini", 2.0, "Proof by gemini."), ("P2", "o3", 0.0, "Proof by o3."),
    ]
    assert rated[0].problem is rated[1].problem
    assert (rated[0].problem.source, rated[0].problem.year) == ("USAMO", 2024)
    assert rated[0].problem.grading_guidelines == "Full marks for a proof."
    assert len({r.response_id for r in rated}) == 3
    # As problems, the same rows give one problem per id.
    assert [p.id for p in load_problems("wenjiema02/ProofBench")] == ["P1", "P2"]


@pytest.mark.parametrize(("rating", "pattern"), [(9, r"is 9, not a number from 0 to 7"), (None, r"is missing")])
def test_bad_ratings_name_the_row(fake_hub, rating, pattern):
    tables, _ = fake_hub
    tables["wenjiema02/ProofBench"] = Dataset.from_list([rated_row("P1", "o3", 7), rated_row("P1", "o4", rating)])
    with pytest.raises(ProblemLoadError, match=r"row 2 \(id 'P1'\): field 'human_points' \(column 'expert_rating'\) " + pattern):
        load_rated_responses()


def test_rated_rows_with_one_id_and_two_statements_fail(fake_hub):
    tables, _ = fake_hub
    tables["wenjiema02/ProofBench"] = Dataset.from_list([rated_row("P1", "o3", 7), rated_row("P1", "o4", 1, problem="Other.")])
    with pytest.raises(ProblemLoadError, match=re.escape("row 2 (id 'P1'): field 'statement' (column 'problem') differs from row 1")):
        load_rated_responses()


# ---- IMO-GradingBench CSV: human-graded responses -------------------------------------------

GB_HEADER = ["Grading ID", "Problem ID", "Problem", "Solution", "Grading guidelines", "Response", "Points", "Reward", "Problem Source"]


def write_grading_bench(path, rows, header=GB_HEADER):
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_grading_bench_reads_problems_responses_and_points(tmp_path):
    response = 'Suppose "n" is odd,\nthen n^2 = 1 (mod 8).'
    statement, solution, guide = "Prove that n^2 is 1 mod 8.", "Expand (2k+1)^2.", "(Partial) 1. parity"
    path = write_grading_bench(tmp_path / "gb.csv", [
        ["GB-1", "PB-7", statement, solution, guide, response, "6", "almost", "IMO 2000"],
        ["GB-2", "PB-7", statement, solution, guide, "No idea.", "0", "incorrect", "IMO 2000"],
    ])
    first, second = load_rated_responses(str(path))
    assert first.problem is second.problem and first.problem.id == "PB-7"
    assert (first.problem.reference_solution, first.problem.grading_guidelines) == (solution, guide)
    assert (first.problem.source, first.problem.year, first.problem.metadata) == ("IMO 2000", 2000, {"grading_id": "GB-1"})
    assert (first.response, first.points) == (response, 6.0)
    assert (second.response, second.points) == ("No idea.", 0.0)


def test_grading_bench_without_problem_id_groups_by_statement(tmp_path):
    header = ["Problem", "Solution", "Grading guidelines", "Response", "Points"]
    rows = [["P one", "s", "g", "r1", "7"], ["P one", "s", "g", "r2", "1"], ["P two", "s", "g", "r3", "0"]]
    a, b, c = load_rated_responses(str(write_grading_bench(tmp_path / "gb.csv", rows, header)))
    assert a.problem.id == b.problem.id != c.problem.id
    assert a.problem.id.startswith("p-")


@pytest.mark.parametrize(
    ("points", "problem", "message"),
    [
        ("seven", "P", r"gb\.csv line 3 \(id 'PB-1'\).*field 'human_points' \(column 'Points'\) is 'seven'"),
        ("9", "P", r"line 3 \(id 'PB-1'\).*field 'human_points' \(column 'Points'\) is '9', not a number from 0 to 7"),
        ("", "P", r"line 3 \(id 'PB-1'\).*field 'human_points' \(column 'Points'\) is empty, not a number"),
        ("3", "", r"line 3 \(id 'PB-1'\).*field 'statement' \(column 'Problem'\) is empty"),
    ],
)
def test_grading_bench_errors_name_row_and_field(tmp_path, points, problem, message):
    good = ["GB-1", "PB-1", "P", "s", "g", "r", "7", "correct", "src"]
    bad = ["GB-2", "PB-1", problem, "s", "g", "r", points, "correct", "src"]
    with pytest.raises(ProblemLoadError, match=message):
        load_rated_responses(str(write_grading_bench(tmp_path / "gb.csv", [good, bad])))


def test_grading_bench_without_guidelines_fails_on_the_first_row(tmp_path):
    path = write_grading_bench(tmp_path / "gb.csv", [["P", "s", "r", "7"]], ["Problem", "Solution", "Response", "Points"])
    with pytest.raises(ProblemLoadError, match=r"gb\.csv line 2 .*field 'grading_guidelines' is missing"):
        load_rated_responses(str(path))


def test_grading_bench_ragged_row(tmp_path):
    path = tmp_path / "gb.csv"
    path.write_text("Problem,Solution,Grading guidelines,Response,Points\nP,s,g,r,7\nP,s,g\n")
    with pytest.raises(ProblemLoadError, match="gb.csv line 3 .*has 3 fields but the header has 5"):
        load_rated_responses(str(path))


# ---- where a bad record is: lines as a text editor numbers them, rows where there are no lines ----


def test_malformed_json_line_is_named_by_its_line(tmp_path):
    path = write(tmp_path / "bad.jsonl", '{"id": "a", "problem": "P1"}\n{"id": "b", "problem": \n{"id": "c", "problem": "P3"}\n')
    with pytest.raises(ProblemLoadError, match=r"bad\.jsonl line 2: not valid JSON \(Expecting value, column 24\)"):
        load_problems(str(path))


def test_json_lines_count_blank_lines_as_an_editor_does(tmp_path):
    path = write(tmp_path / "p.jsonl", '{"id": "a", "problem": "P1"}\n\n\n{"id": "b", "problem": " "}\n')
    with pytest.raises(ProblemLoadError) as caught:
        load_problems(str(path))
    assert str(caught.value).startswith(f"{path} line 4 (id 'b'): field 'statement' (column 'problem') is empty.")


def test_an_absent_field_is_missing_and_a_blank_one_is_empty(tmp_path):
    absent = write(tmp_path / "absent.jsonl", '{"id": "a", "problem": "P1"}\n{"id": "b"}\n')
    with pytest.raises(ProblemLoadError, match=r"absent\.jsonl line 2 \(id 'b'\): field 'statement' \(column 'problem'\) is missing\."):
        load_problems(str(absent))
    null = write(tmp_path / "null.jsonl", '{"id": "a", "problem": null}\n')
    with pytest.raises(ProblemLoadError, match=r"null\.jsonl line 1 \(id 'a'\): field 'statement' .* is missing\."):
        load_problems(str(null))
    short = write(tmp_path / "short.csv", "id,problem,answer\na,P1,3\nb,,4\n")
    with pytest.raises(ProblemLoadError, match=r"short\.csv line 3 \(id 'b'\): field 'statement' .* is empty\."):
        load_problems(str(short))
    rated = write(tmp_path / "rated.jsonl", '{"id": "a", "problem": "P", "proof": "r", "points": 7}\n{"id": "a", "problem": "P", "proof": "s"}\n')
    with pytest.raises(ProblemLoadError, match=r"rated\.jsonl line 2 \(id 'a'\): field 'human_points' \(column 'points'\) is missing, not"):
        load_rated_responses(str(rated), columns={"response": "proof", "human_points": "points"})


def test_a_csv_record_spanning_lines_is_named_once_by_its_lines(tmp_path):
    path = write(tmp_path / "m.csv", 'id,problem\na,"Line one\nline two"\nb,  \n')
    with pytest.raises(ProblemLoadError) as caught:
        load_problems(str(path))
    message = str(caught.value)
    assert message.startswith(f"{path} line 4 (id 'b'):") and "row" not in message
    spanning = write(tmp_path / "n.csv", 'id,problem,answer\na,"Line one\nline two",Algebra\n')
    with pytest.raises(ProblemLoadError, match=r"n\.csv lines 2-3 \(id 'a'\): field 'short_answer'"):
        load_problems(str(spanning))


def test_records_of_a_json_array_are_rows(tmp_path):
    path = write(tmp_path / "p.json", json.dumps([{"id": "a", "problem": "P1"}, {"id": "b", "problem": ""}], indent=2))
    with pytest.raises(ProblemLoadError, match=r"p\.json row 2 \(id 'b'\): field 'statement' .* is empty"):
        load_problems(str(path))
    assert [p.id for p in load_problems(str(path), limit=1)] == ["a"]


def test_loading_prints_nothing(tmp_path, capfd):
    rows = [{"id": "a", "problem": "P1"}, {"id": "b", "problem": "P2"}]
    Dataset.from_list(rows).to_parquet(str(tmp_path / "p.parquet"))
    write(tmp_path / "p.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    capfd.readouterr()
    for name in ("p.parquet", "p.jsonl"):
        assert [p.id for p in load_problems(str(tmp_path / name))] == ["a", "b"]
    assert capfd.readouterr() == ("", "")


# ------------------------------------------------------------------------ rubrics (issue 12)

RUBRIC = [{"title": "Setup", "points": 3, "desc": "Sets up."}, {"title": "Finish", "points": 4, "desc": "Ends."}]


def rubric_file(tmp_path, rubric_text):
    path = tmp_path / "usamo.jsonl"
    path.write_text(json.dumps({"id": "u1", "problem": "Prove it.", "rubric": rubric_text}) + "\n")
    return path


@pytest.mark.parametrize("indent", [None, 2, "\t"])
def test_json_rubrics_are_parsed_however_laid_out(tmp_path, indent):
    [problem] = load_problems(str(rubric_file(tmp_path, json.dumps(RUBRIC, indent=indent))))
    assert [(c.title, c.points) for c in problem.criteria] == [("Setup", 3), ("Finish", 4)]
    assert problem.grading_guidelines == ""


def test_a_rubric_summing_to_another_maximum_is_an_error_or_rescaled(tmp_path):
    doubled = [{**c, "points": 2 * c["points"]} for c in RUBRIC]
    path = rubric_file(tmp_path, json.dumps(doubled, indent=2))
    with pytest.raises(ProblemLoadError, match=r"usamo.jsonl line 1 \(id 'u1'\): field 'rubric' has points summing to 14, not the maximum score 7"):
        load_problems(str(path))
    [problem] = load_problems(str(path), rescale_rubrics=True)
    assert [c.points for c in problem.criteria] == [3, 4]
