"""The headline says what the mean leaves out, and the strict mean matches the reference's stats.

The QED-Nano reference's `eval/scripts/stats.py`, given several graded files of one benchmark
(one file per run), fills a missing score with 0, takes each run's mean, and reports the mean of
the run means and their standard deviation with n - 1. The expected numbers below are worked
out by hand that way from the files written here.
"""

import json
import statistics

import pytest
from rich.console import Console

from qednano.evaluate.imported import read_graded
from qednano.reports import report
from qednano.reports.report import build_report

# Three runs over four problems; None is a row the grader left without a score.
RUNS = [
    {"A-1": 7, "A-2": 0, "B-1": 3, "B-2": None},
    {"A-1": 7, "A-2": 1, "B-1": None, "B-2": 6},
    {"A-1": 6, "A-2": 0, "B-1": 2, "B-2": 7},
]


def graded_row(problem_id, score):
    return {
        "problem_id": problem_id,
        "problem": f"Prove statement {problem_id}.",
        "solution": "A reference proof.",
        "grading_guidelines": "(Partial) 1 point for the key lemma.",
        "model_solution": "My proof.",
        "score": score,
        "cost_run": {"input_tokens": 10, "output_tokens": 100, "cost": 0.0},
        "grade_cost": {"input_tokens": 50, "output_tokens": 20, "cost": 0.0},
    }


def write_runs(folder, runs):
    """The runs one after another in one file: rows of a problem become samples 0, 1, 2."""
    path = folder / "graded.jsonl"
    path.write_text("".join(json.dumps(graded_row(pid, score)) + "\n" for run in runs for pid, score in run.items()))
    return path


def test_strict_mean_and_std_match_the_reference_multi_run_stats(tmp_path):
    records = read_graded(write_runs(tmp_path, RUNS))
    rep = build_report(records, {"config": {"bench": "graded.jsonl"}})
    run_means = [(7 + 0 + 3 + 0) / 4, (7 + 1 + 0 + 6) / 4, (6 + 0 + 2 + 7) / 4]  # 2.5, 3.5, 3.75
    assert rep.strict_mean_points == pytest.approx(statistics.fmean(run_means))  # 3.25
    assert rep.std_over_runs == pytest.approx(statistics.stdev(run_means))  # 0.6614
    # The main mean leaves the two unscored rows out (and says so beside it).
    scored = {"A-1": [7, 7, 6], "A-2": [0, 1, 0], "B-1": [3, 2], "B-2": [6, 7]}
    assert rep.mean_points == pytest.approx(statistics.fmean(statistics.fmean(v) for v in scored.values()))
    assert rep.counts.ungraded == 2


def test_single_run_mean_matches_the_reference_overall(tmp_path):
    """One file: the reference's Overall is the mean of the scored rows (pandas skips missing)."""
    rep = build_report(read_graded(write_runs(tmp_path, RUNS[:1])), {})
    assert rep.mean_points == pytest.approx((7 + 0 + 3) / 3)
    assert rep.strict_mean_points == pytest.approx((7 + 0 + 3 + 0) / 4)


def test_the_headline_shows_what_is_left_out_and_warns(tmp_path):
    rep = build_report(read_graded(write_runs(tmp_path, RUNS)), {"config": {"bench": "graded.jsonl"}})
    text = report.render_markdown(rep)
    assert "(2 ungraded, 0 failed, 0 pending left out)" in text
    assert "| strict mean (points) | 3.25 (failed, ungraded, pending count 0) |" in text
    assert "warning: 2 of 12 samples are not in the mean" in text
    console = Console(record=True, width=200)
    report.render_terminal(rep, console)
    assert "warning: 2 of 12 samples are not in the mean" in console.export_text()


def test_no_warning_when_everything_is_scored(tmp_path):
    full = [{pid: (score or 0) for pid, score in run.items()} for run in RUNS]
    text = report.render_markdown(build_report(read_graded(write_runs(tmp_path, full)), {}))
    assert "warning" not in text and "pending left out" not in text
