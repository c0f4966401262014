import json

import pytest
from rich.console import Console
from typer.testing import CliRunner

from qednano.cli import app
from qednano.grading.panel import PanelGrade
from qednano.grading.record import Grade
from qednano.llm.types import Completion, Usage
from qednano.records.sample import SampleRecord
from qednano.records.store import load_run
from qednano.reports import compare, render
from qednano.reports.metrics import bootstrap_ci
from qednano.reports.report import GroupScore, Report, build_report
from qednano.scaffolds.base import Attempt, Step

MANIFEST = {"command": "qednano evaluate ...", "status": "interrupted", "config": {"bench": "proofbench", "model": "qed-nano-4b"}}
GRADE_CALL = Completion(model="grader", usage=Usage(prompt_tokens=1000, completion_tokens=500), cost_usd=0.002)


def sample(
    problem: str,
    index: int,
    score: float | None = None,
    *,
    attempt: str = "ok",  # ok / failed / no_proof
    grade: str | None = "graded",  # graded / ungraded / no_proof / None (pending)
    finish: str = "stop",
    reasoning: int = 100,
    completion: int = 150,
    category: str = "",
    level: str = "",
    max_score: float = 7.0,
) -> SampleRecord:
    """A record with known tokens and costs: 20 prompt tokens and $0.01 per generation,
    one $0.002 grader call (1000 + 500 tokens) per graded or ungraded sample."""
    if attempt == "failed":
        done = Completion.failure("prover", "http_500", "server error")
    else:
        usage = Usage(prompt_tokens=20, completion_tokens=completion, reasoning_tokens=reasoning)
        done = Completion(model="prover", content="proof", finish_reason=finish, usage=usage, cost_usd=0.01)
    step = Step(role="generate", messages=[{"role": "user", "content": "prove"}], completion=done)
    record_attempt = Attempt(
        problem_id=problem,
        sample_index=index,
        scaffold="direct",
        proof="proof" if attempt == "ok" else "",
        status=attempt,
        finish_reason=done.finish_reason,
        steps=[step],
    )
    record_grade = None
    if grade == "no_proof":
        record_grade = Grade(status="no_proof", score=0.0, max_score=max_score)
    elif grade is not None:
        record_grade = Grade(status=grade, score=score, max_score=max_score, calls=[GRADE_CALL])
    return SampleRecord(
        problem_id=problem,
        sample_index=index,
        category=category,
        level=level,
        attempt=record_attempt,
        grade=record_grade,
    )


def run_records() -> list[SampleRecord]:
    """Scored points: p1 [7, 3, 0], p2 [0, 7], p3 [7, 7]; plus one failed, one ungraded,
    one pending sample, and two truncated ones (the no-proof one and the ungraded one)."""
    p1 = {"category": "Algebra", "level": "easy"}
    p2 = {"category": "Geometry", "level": "hard"}
    p3 = {"category": "Algebra", "level": "hard"}
    return [
        sample("p1", 0, 7, **p1),
        sample("p1", 1, 3, **p1),
        sample("p1", 2, attempt="failed", grade=None, **p1),
        sample("p1", 3, attempt="no_proof", grade="no_proof", finish="length", reasoning=400, completion=400, **p1),
        sample("p2", 0, 0, **p2),
        sample("p2", 1, grade="ungraded", finish="length", **p2),
        sample("p2", 2, 7, **p2),
        sample("p2", 3, grade=None, **p2),
        sample("p3", 0, 7, **p3),
        sample("p3", 1, 7, **p3),
    ]


def test_scores_match_hand_computation():
    rep = build_report(run_records(), MANIFEST)
    assert (rep.bench, rep.model, rep.max_score, rep.pass_threshold) == ("proofbench", "qed-nano-4b", 7.0, 7.0)
    assert (rep.problems, rep.problems_seen) == (3, 3)
    # per-problem means 10/3, 7/2, 7 -> (10/3 + 7/2 + 7) / 3 = 83/18
    assert rep.mean_points == pytest.approx(83 / 18)
    assert rep.mean_percent == pytest.approx(100 * 83 / 18 / 7)
    assert rep.ci_points == pytest.approx(bootstrap_ci([10 / 3, 3.5, 7.0], n_boot=10_000, seed=0))
    assert rep.ci_points[0] <= rep.mean_points <= rep.ci_points[1]


def test_at_k_hand_values_and_ks_above_the_smallest_count_are_dropped():
    rep = build_report(run_records(), MANIFEST)
    # p2 and p3 have only 2 scored samples, so k=4 and k=8 are left out.
    assert [m.k for m in rep.at_k] == [1, 2]
    assert rep.ks_left_out == [4, 8]
    assert "k = 4, 8 left out" in render.render_markdown(rep)
    one, two = rep.at_k
    assert one.pass_at_k == pytest.approx((1 / 3 + 1 / 2 + 1) / 3)
    # p1: 1 - C(2,2)/C(3,2) = 2/3; p2 and p3 always pass with 2 draws.
    assert two.pass_at_k == pytest.approx((2 / 3 + 1 + 1) / 3)
    assert one.mean_at_k == two.mean_at_k == pytest.approx(83 / 18)
    # p1 draws {0,3}->3, {0,7}->7, {3,7}->7 = 17/3; p2 and p3 -> 7
    assert two.best_at_k == pytest.approx((17 / 3 + 7 + 7) / 3)
    assert one.best_at_k == pytest.approx(83 / 18)


def test_pass_threshold_is_a_parameter():
    rep = build_report(run_records(), MANIFEST, pass_threshold=3)
    assert rep.pass_threshold == 3
    assert rep.at_k[0].pass_at_k == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)


def test_counts_split_every_sample_once():
    counts = build_report(run_records(), MANIFEST).counts
    assert counts.model_dump() == {
        "samples": 10,
        "scored": 7,
        "graded": 6,
        "ungraded": 1,
        "no_proof": 1,
        "failed": 1,
        "pending": 1,
        "truncated": 2,
        "unanswered": 0,
    }
    assert counts.graded + counts.ungraded + counts.no_proof + counts.failed + counts.pending == counts.samples


def test_tokens_and_costs_kept_apart():
    rep = build_report(run_records(), MANIFEST)
    # 9 generations that did not fail: eight of 100 reasoning / 150 completion, one of 400 / 400
    assert rep.tokens.mean_reasoning == pytest.approx((8 * 100 + 400) / 9)
    assert rep.tokens.mean_proof == pytest.approx((8 * 50 + 0) / 9)
    assert rep.tokens.generation_prompt == 9 * 20
    assert rep.tokens.generation_completion == 8 * 150 + 400
    # grader calls: 6 graded + 1 ungraded (a no-proof grade makes no call)
    assert (rep.tokens.grading_prompt, rep.tokens.grading_completion) == (7000, 3500)
    assert rep.tokens.total == 180 + 1600 + 7000 + 3500
    assert rep.cost.generation_usd == pytest.approx(0.09)
    assert rep.cost.grading_usd == pytest.approx(0.014)


def test_breakdowns_by_category_and_level():
    rep = build_report(run_records(), MANIFEST)
    assert set(rep.breakdown) == {"category", "level"}  # no problem has a source
    algebra, geometry = rep.breakdown["category"]
    assert (algebra.value, algebra.problems, algebra.samples) == ("Algebra", 2, 5)
    assert algebra.mean == pytest.approx((10 / 3 + 7) / 2)
    assert (geometry.value, geometry.mean, geometry.problems, geometry.samples) == ("Geometry", 3.5, 1, 2)
    easy, hard = rep.breakdown["level"]
    assert (easy.value, easy.mean) == ("easy", pytest.approx(10 / 3))
    assert (hard.value, hard.mean) == ("hard", pytest.approx(5.25))


def test_answer_runs_pass_at_one_point():
    records = [sample("a1", i, s, max_score=1.0) for i, s in enumerate([1, 0, 0, 1])]
    rep = build_report(records, {}, ks=(1, 2, 4, 8))
    assert (rep.max_score, rep.pass_threshold, rep.bench, rep.model) == (1.0, 1.0, None, None)
    assert [m.k for m in rep.at_k] == [1, 2, 4]
    assert rep.at_k[0].pass_at_k == pytest.approx(0.5)
    assert rep.mean_percent == pytest.approx(50.0)


def test_mixed_scales_and_duplicates_are_refused():
    with pytest.raises(ValueError, match="different max scores"):
        build_report([sample("p", 0, 7), sample("q", 0, 1, max_score=1.0)], {})
    with pytest.raises(ValueError, match="appears twice"):
        build_report([sample("p", 0, 7), sample("p", 0, 3)], {})


def test_nothing_scored_gives_no_mean_not_zero():
    rep = build_report([sample("p", 0, attempt="failed", grade=None), sample("p", 1, grade="ungraded")], MANIFEST)
    assert rep.mean_points is None and rep.ci_points is None and rep.at_k == []
    assert (rep.counts.failed, rep.counts.ungraded, rep.problems, rep.problems_seen) == (1, 1, 0, 1)
    assert "| mean (points) | - of 7 (1 ungraded, 1 failed, 0 pending left out) |" in render.render_markdown(rep)


def test_renderings_show_the_numbers():
    rep = build_report(run_records(), MANIFEST)
    text = render.render_markdown(rep)
    assert text.startswith("# qed-nano-4b on proofbench")
    assert "| mean (points) | 4.61 of 7 (1 ungraded, 1 failed, 1 pending left out) |" in text
    assert "| run status | interrupted |" in text
    assert "| 2 | 0.889 | 4.61 | 6.56 |" in text
    assert "| Geometry | 3.50 | 50.0 | 1 | 2 |" in text
    console = Console(record=True, width=160)
    render.render_terminal(rep, console)
    screen = console.export_text()
    assert "qed-nano-4b on proofbench" in screen and "pass@k" in screen and "Geometry" in screen
    assert Report.model_validate_json(rep.model_dump_json()) == rep
    assert json.loads(rep.model_dump_json())["tokens"]["total"] == rep.tokens.total


def write_run(tmp_path, records, manifest=MANIFEST):
    (tmp_path / "samples.jsonl").write_text("".join(r.model_dump_json() + "\n" for r in records))
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))


def test_load_run_round_trip(tmp_path):
    write_run(tmp_path, run_records())
    with (tmp_path / "samples.jsonl").open("a") as f:
        f.write("\n")  # a trailing blank line is fine
    records, manifest = load_run(tmp_path)
    assert records == run_records()
    assert manifest == MANIFEST
    (tmp_path / "manifest.json").unlink()
    assert load_run(tmp_path)[1] == {}


def test_load_run_names_file_and_line(tmp_path):
    good = sample("p", 0, 7).model_dump_json()
    path = tmp_path / "samples.jsonl"
    path.write_text(good + "\n{not json\n")
    with pytest.raises(ValueError, match=r"samples\.jsonl:2: not valid JSON"):
        load_run(tmp_path)
    path.write_text(good + "\n" + json.dumps({"problem_id": "q", "sample_index": 0}) + "\n")
    with pytest.raises(ValueError, match=r"samples\.jsonl:2: not a SampleRecord: field 'attempt'"):
        load_run(tmp_path)
    regraded = sample("p", 0, 3).model_dump_json()
    path.write_text(good + "\n" + regraded + "\n")  # a resumed run appends; the latest line wins
    assert [r.score for r in load_run(tmp_path)[0]] == [3]
    with pytest.raises(FileNotFoundError, match="samples.jsonl"):
        load_run(tmp_path / "elsewhere")


# ---- comparing two runs ---------------------------------------------------------------------


def two_runs():
    a = [sample("p1", 0, 7), sample("p1", 1, 7), sample("p2", 0, 0), sample("p2", 1, 7), sample("p3", 0, 7), sample("p4", 0, 3)]
    b = [sample("p1", 0, 0), sample("p1", 1, 0), sample("p2", 0, 0), sample("p2", 1, 0), sample("p3", 0, 7), sample("p5", 0, 1)]
    b.append(sample("p4", 0, attempt="failed", grade=None))  # p4 is in b but never scored there
    return a, b


def test_compare_runs_hand_values():
    a, b = two_runs()
    result = compare.compare_runs(a, b, a_name="rl", b_name="sft")
    assert result.problems == 3
    assert (result.only_in_a, result.only_in_b, result.dropped) == (["p4"], ["p5"], 2)
    assert result.mean_a == pytest.approx((7 + 3.5 + 7) / 3)
    assert result.mean_b == pytest.approx(7 / 3)
    assert result.difference == pytest.approx(3.5)  # differences 7, 3.5, 0
    # Sign flips of (7, 3.5, 0) give sums +-10.5 and +-3.5, each twice: observed 10.5 is in
    # the top 2 of 8, so p = 2 * 2/8.
    assert result.p_value == pytest.approx(0.5)
    assert result.ci == pytest.approx(bootstrap_ci([7.0, 3.5, 0.0], n_boot=10_000, seed=0))
    assert (result.a_wins, result.b_wins, result.ties) == (2, 0, 1)


def test_compare_runs_renders_and_handles_no_overlap():
    a, b = two_runs()
    text = compare.render_markdown(compare.compare_runs(a, b, a_name="rl", b_name="sft"))
    assert "| difference rl - sft | +3.50 |" in text
    assert "| sign-flip p-value | 0.5000 |" in text
    console = Console(record=True, width=120)
    compare.render_terminal(compare.compare_runs(a, b), console)
    assert "problems compared" in console.export_text()
    apart = compare.compare_runs([sample("x", 0, 7)], [sample("y", 0, 7)])
    assert apart.problems == 0 and apart.difference is None and apart.p_value is None


def test_compare_runs_refuses_different_scales():
    with pytest.raises(ValueError, match="one scale"):
        compare.compare_runs([sample("p", 0, 7)], [sample("p", 0, 1, max_score=1.0)])


async def test_unanswered_short_answers_count_against_the_mean_and_are_counted():
    """Four answers, two right, one unboxed, one with words: 50%, with 2 unanswered counted."""
    from qednano.grading.answer import grade_answer
    from qednano.problems.record import Problem

    problem = Problem(id="a1", statement="Compute 3 + 4.", short_answer="7")
    responses = [r"\boxed{7}", r"\boxed{7}", "It is seven.\nDone.", r"\boxed{7 \text{ or } 8}"]
    records = [
        sample("a1", i, max_score=1.0).model_copy(update={"grade": await grade_answer(problem, response)})
        for i, response in enumerate(responses)
    ]
    rep = build_report(records, MANIFEST)
    assert (rep.mean_percent, rep.counts.unanswered, rep.counts.ungraded) == (50.0, 2, 0)


# ---------------------------------------------------------------------------- panel disagreement


def panel_sample(index: int, *scores: float | None) -> SampleRecord:
    """A sample graded by a panel whose members gave `scores` (None: that member gave no verdict)."""
    members = [
        Grade(status="graded", score=s, grader=f"g{i}") if s is not None else Grade(status="ungraded", grader=f"g{i}")
        for i, s in enumerate(scores)
    ]
    graded = [s for s in scores if s is not None]
    grade = PanelGrade(status="graded", score=sum(graded) / len(graded), members=members)  # fills spread and std
    return sample("p1", index, 0).model_copy(update={"grade": grade})


def test_a_panels_disagreement_is_reported_in_every_form(tmp_path):
    records = [
        panel_sample(0, 7, 7),  # agree
        panel_sample(1, 7, 4),  # 3 apart: disagree
        panel_sample(2, 1, 2),  # 1 apart
        panel_sample(3, 6, None),  # one verdict: nothing to disagree about
        sample("p1", 4, 5),  # a single grader's grade
    ]
    write_run(tmp_path, records, MANIFEST)
    result = CliRunner().invoke(app, ["report", str(tmp_path), "--markdown", str(tmp_path / "r.md"), "--json", str(tmp_path / "r.json")],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    panel = json.loads((tmp_path / "r.json").read_text())[0]["panel"]
    assert panel["samples"] == 3 and panel["disagreeing"] == 1 and panel["largest_spread"] == 3
    assert panel["mean_spread"] == pytest.approx(4 / 3) and panel["mean_std"] == pytest.approx((0 + 1.5 + 0.5) / 3)
    markdown = (tmp_path / "r.md").read_text()
    assert "## Panel disagreement" in markdown and "| members 2+ points apart | 1 (33.3%) |" in markdown
    assert "| mean spread (max - min, points) | 1.33 |" in markdown
    assert "panel disagreement" in result.output and "1 (33.3%)" in result.output


def test_a_run_without_a_panel_shows_no_disagreement():
    built = build_report(run_records(), MANIFEST)
    assert built.panel is None and "anel" not in render.render_markdown(built)


def test_a_breakdown_of_many_groups_is_left_to_the_markdown_report():
    rep = build_report(run_records(), MANIFEST)
    many = [GroupScore(value=f"contest {n}", mean=7.0, problems=1, samples=1) for n in range(render.TERMINAL_GROUPS + 1)]
    rep = rep.model_copy(update={"breakdown": {**rep.breakdown, "source": many}})
    console = Console(record=True, width=160)
    render.render_terminal(rep, console)
    screen = console.export_text()
    assert "Geometry" in screen and "contest 3" not in screen
    assert f"by source: {render.TERMINAL_GROUPS + 1} groups, in report.md" in screen
    assert "| contest 3 | 7.00 |" in render.render_markdown(rep)
