import asyncio
import statistics

import pytest

from qednano.grading.panel import Panel, PanelGrade
from qednano.grading.proof_grader import RubricGrader
from qednano.grading.record import Grade
from qednano.llm.model import Model
from qednano.llm.scripted import ScriptedBackend
from qednano.llm.types import Completion, Prices, Usage
from qednano.problems.record import Problem

PROBLEM = Problem(id="p", statement="Prove it.", reference_solution="Like this.", grading_guidelines="(Partial) 1. A lemma.")
PROOF = "A proof."


class FixedGrader:
    """A ProofGrader that returns a fixed score (None: ungraded) and records how it was called."""

    def __init__(self, name: str, score: float | None, criteria: dict[str, float] | None = None):
        self.name = name
        self.score = score
        self.criteria = criteria or {}
        self.sample_indices: list[int] = []
        self.in_flight = 0
        self.most_in_flight = 0

    async def grade(self, problem: Problem, proof: str, sample_index: int = 0) -> Grade:
        self.sample_indices.append(sample_index)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(0.01)
        self.in_flight -= 1
        call = Completion(model=self.name, content="...", cost_usd=0.5, sample_index=sample_index)
        if self.score is None:
            return Grade(status="ungraded", grader=self.name, error="no verdict", calls=[call])
        return Grade(status="graded", score=self.score, criteria=self.criteria, grader=self.name, calls=[call])


def members(*scores: float | None) -> list[FixedGrader]:
    return [FixedGrader(f"g{i}", s) for i, s in enumerate(scores)]


@pytest.mark.parametrize(
    ("aggregate", "expected"),
    [("mean", (6 + 3 + 1) / 3), ("median", 3), ("min", 1)],
)
async def test_aggregates_leave_out_the_ungraded_member(aggregate: str, expected: float) -> None:
    panel = Panel(members(6, 3, None, 1), aggregate=aggregate)
    grade = await panel.grade(PROBLEM, PROOF)
    assert grade.status == "graded"
    assert grade.score == pytest.approx(expected)
    assert grade.spread == 5
    assert grade.std == pytest.approx(statistics.pstdev([6, 3, 1]))
    assert [m.status for m in grade.members] == ["graded", "graded", "ungraded", "graded"]


async def test_median_of_an_even_count_is_the_middle_mean() -> None:
    grade = await Panel(members(7, 6, 1, 0), aggregate="median").grade(PROBLEM, PROOF)
    assert grade.score == 3.5


async def test_all_ungraded_is_ungraded_with_member_errors() -> None:
    grade = await Panel(members(None, None)).grade(PROBLEM, PROOF)
    assert grade.status == "ungraded" and grade.score is None and grade.fraction is None
    assert "g0: no verdict" in grade.error and "g1: no verdict" in grade.error
    assert grade.spread is None and grade.std is None


async def test_members_run_concurrently_with_their_own_sample_indices() -> None:
    graders = members(7, 6)
    panel = Panel(graders, samples_per_grader=3)
    grade = await panel.grade(PROBLEM, PROOF, sample_index=2)
    assert len(grade.members) == 6
    assert graders[0].sample_indices == [6, 7, 8] and graders[1].sample_indices == [6, 7, 8]
    assert graders[0].most_in_flight == 3  # all samples were in flight at once


async def test_panel_cost_is_the_sum_of_member_calls() -> None:
    grade = await Panel(members(7, None, 5), samples_per_grader=2).grade(PROBLEM, PROOF)
    assert len(grade.calls) == 6 and grade.cost_usd == pytest.approx(3.0)


async def test_empty_proof_is_no_proof_without_asking_members() -> None:
    graders = members(7)
    grade = await Panel(graders).grade(PROBLEM, "  ")
    assert grade.status == "no_proof" and grade.score == 0 and graders[0].sample_indices == []


async def test_criteria_are_aggregated_per_checkpoint() -> None:
    graders = [FixedGrader("a", 4, {"Lemma": 2, "End": 2}), FixedGrader("b", 2, {"Lemma": 1}), FixedGrader("c", None)]
    grade = await Panel(graders, aggregate="min").grade(PROBLEM, PROOF)
    assert grade.criteria == {"End": 2, "Lemma": 1}


async def test_assessment_summarises_members_and_disagreement() -> None:
    grade = await Panel(members(7, None, 1)).grade(PROBLEM, PROOF)
    lines = grade.assessment.splitlines()
    assert lines[0] == "panel mean over 2 of 3 members: 4 (spread 6, std 3.00)"
    assert lines[1:] == ["- g0: 7", "- g1: ungraded", "- g2: 1"]


async def test_panel_grade_serialises_members_and_disagreement() -> None:
    grade = await Panel(members(7, 5)).grade(PROBLEM, PROOF)
    again = PanelGrade.model_validate_json(grade.model_dump_json())
    assert [m.score for m in again.members] == [7, 5]
    assert grade.model_dump()["spread"] == 2 and grade.model_dump()["std"] == 1


def test_mixed_scales_are_refused() -> None:
    panel = Panel(members(1))
    a = Grade(status="graded", score=1, max_score=7)
    b = Grade(status="graded", score=1, max_score=1)
    with pytest.raises(ValueError, match="mixes score scales"):
        panel.combine([a, b])


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one grader"):
        Panel([])
    with pytest.raises(ValueError, match="samples_per_grader"):
        Panel(members(1), samples_per_grader=0)
    with pytest.raises(ValueError, match="choose one of mean, median, min"):
        Panel(members(1), aggregate="max")


def test_name_lists_members() -> None:
    assert Panel(members(1, 2), samples_per_grader=2, aggregate="min").name == "panel-min(g0x2, g1x2)"


async def test_panel_of_rubric_graders_on_scripted_models() -> None:
    def judge(score: str):
        return lambda messages, sampling: Completion(model="m", content=f"ok\nFINAL SCORE: {score}", usage=Usage())

    six = RubricGrader(Model("a", ScriptedBackend(judge("6"))), "reference")
    broken = RubricGrader(Model("b", ScriptedBackend(judge("banana")), prices=Prices()), "reference", max_reasks=1)
    seven = RubricGrader(Model("c", ScriptedBackend(judge("7"))), "reference")
    grade = await Panel([six, broken, seven], aggregate="mean").grade(PROBLEM, PROOF)
    assert grade.status == "graded" and grade.score == 6.5
    assert [m.status for m in grade.members] == ["graded", "ungraded", "graded"]
    assert len(grade.calls) == 1 + 2 + 1


async def test_disagreement_survives_samples_jsonl(tmp_path):
    from qednano.records.sample import SampleRecord
    from qednano.records.store import SampleStore
    from qednano.scaffolds.base import Attempt

    grade = await Panel(members(6, 3, 1)).grade(PROBLEM, PROOF)
    attempt = Attempt(problem_id="p", sample_index=0, scaffold="direct", proof=PROOF, status="ok")
    store = SampleStore(tmp_path / "samples.jsonl")
    store.append(SampleRecord.start(PROBLEM, attempt).model_copy(update={"grade": grade}))
    read = store.read()[("p", 0)].grade
    assert (read.spread, read.std) == (5, pytest.approx(statistics.pstdev([6, 3, 1])))
    assert [m.score for m in read.members] == [6, 3, 1]
