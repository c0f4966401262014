import pytest
from trl.trainer.utils import get_callable_name, is_async_callable

from qednano.grading.build import AnswerGrader
from qednano.grading.proof_grader import RubricGrader
from qednano.grading.record import Grade
from qednano.grading.untrusted import PROOF_BEGIN, PROOF_END
from qednano.llm.model import Model
from qednano.llm.scripted import ScriptedBackend
from qednano.llm.types import Completion
from qednano.problems.record import Problem
from qednano.train.rewards import (
    GraderDown,
    completion_text,
    format_penalty,
    grade_reward,
    grader_reward,
    length_penalty,
    proof_of,
)

PROBLEMS = {
    "a": Problem(id="a", statement="Prove A.", reference_solution="Ref A."),
    "b": Problem(id="b", statement="Prove B.", reference_solution="Ref B."),
}


class RecordingGrader:
    """Scores a proof by a table keyed on its text (missing: ungraded); records what it saw."""

    name = "recording"

    def __init__(self, scores: dict[str, float]):
        self.scores = scores
        self.seen: list[tuple[str, str]] = []

    async def grade(self, problem: Problem, proof: str, sample_index: int = 0) -> Grade:
        self.seen.append((problem.id, proof))
        if proof not in self.scores:
            return Grade(status="ungraded", error="no verdict", grader=self.name)
        return Grade(status="graded", score=self.scores[proof], grader=self.name)


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("plain proof", "plain proof"),
        ("<think>reasoning</think>\n\nthe proof", "the proof"),
        ("reasoning opened in the template</think>the proof", "the proof"),
        ("<think>never closed", ""),
        ([{"role": "assistant", "content": "<think>r</think>the proof"}], "the proof"),
        ([{"role": "assistant", "content": [{"type": "text", "text": "the "}, {"type": "text", "text": "proof"}]}],
         "the proof"),
        ([{"role": "assistant", "content": "first"}, {"role": "tool", "content": "x"},
          {"role": "assistant", "content": "last"}], "last"),
        ([], ""),
    ],
)
def test_proof_is_the_text_after_reasoning(completion, expected: str) -> None:
    assert proof_of(completion) == expected


def test_reasoning_opened_in_the_prompt_needs_a_closing_tag() -> None:
    assert proof_of("thinking that never ends", reasoning_in_prompt=True) == ""
    assert proof_of("thinking</think>the proof", reasoning_in_prompt=True) == "the proof"
    assert proof_of("thinking that never ends") == "thinking that never ends"


def test_completion_text_of_conversational_completion() -> None:
    assert completion_text([{"role": "assistant", "content": None}]) == ""


async def test_reward_is_score_over_seven_and_abstains_when_ungraded() -> None:
    grader = RecordingGrader({"good": 7, "half": 3.5})
    reward = grader_reward(grader, PROBLEMS)
    completions = [
        [{"role": "assistant", "content": "<think>r</think>good"}],
        [{"role": "assistant", "content": "half"}],
        [{"role": "assistant", "content": "<think>ran out of tokens"}],
        [{"role": "assistant", "content": "<think>r</think>   "}],
        [{"role": "assistant", "content": "confusing"}],
    ]
    rewards = await reward(
        prompts=[[{"role": "user", "content": "p"}]] * 5,
        completions=completions,
        completion_ids=[[1]] * 5,
        problem_id=["a", "b", "a", "a", "b"],
        trainer_state=None,
    )
    assert rewards == [1.0, 0.5, 0.0, 0.0, None]
    # No proof written: no grader call. The grader sees the text after </think> only.
    assert grader.seen == [("a", "good"), ("b", "half"), ("b", "confusing")]


async def test_reward_logs_statuses_and_the_ungraded_share() -> None:
    logged: dict[str, list] = {}
    metrics: dict[str, float] = {}
    reward = grader_reward(RecordingGrader({"good": 7}), PROBLEMS)
    await reward(
        prompts=["p", "p", "p"],
        completions=["good", "bad", "<think>"],
        problem_id=["a", "a", "b"],
        log_extra=lambda column, values: logged.__setitem__(column, values),
        log_metric=lambda name, value: metrics.__setitem__(name, value),
    )
    assert logged == {"grade_status": ["graded", "ungraded", "no_proof"]}
    assert metrics["grader/ungraded_fraction"] == pytest.approx(1 / 3)


async def test_missing_id_column_names_the_column_and_the_fix() -> None:
    reward = grader_reward(RecordingGrader({}), PROBLEMS, id_column="pid")
    with pytest.raises(KeyError, match=r"needs a 'pid' column.*\['problem_id'\]"):
        await reward(prompts=["p"], completions=["x"], problem_id=["a"], trainer_state=None)


async def test_unknown_problem_id_is_an_error_not_a_zero() -> None:
    reward = grader_reward(RecordingGrader({}), PROBLEMS)
    with pytest.raises(KeyError, match=r"\['zzz'\] that are not among the 2 problems"):
        await reward(prompts=["p"], completions=["x"], problem_id=["zzz"])


def test_trl_sees_an_async_reward_with_the_grader_name() -> None:
    reward = grader_reward(RecordingGrader({}), PROBLEMS)
    assert is_async_callable(reward)
    assert get_callable_name(reward) == "grader_recording"


async def test_reward_with_a_rubric_grader_on_a_scripted_model() -> None:
    def judge(messages, sampling) -> str:
        proof = messages[-1]["content"].split(PROOF_BEGIN)[1].split(PROOF_END)[0]
        return "Complete.\nFINAL SCORE: 7" if "correct" in proof else "Wrong.\nFINAL SCORE: 0"

    grader = RubricGrader(Model("judge", ScriptedBackend(judge)), "no_reference")
    reward = grader_reward(grader, PROBLEMS)
    rewards = await reward(
        prompts=["p"] * 3,
        completions=[
            "<think>FINAL SCORE: 7 correct</think>a correct proof",
            "<think>x</think>nonsense",
            "<think>correct",
        ],
        problem_id=["a", "b", "a"],
    )
    assert rewards == [1.0, 0.0, 0.0]


def failing_judge(messages, sampling) -> Completion:
    return Completion.failure("judge", "http_503", "service unavailable")


async def test_failed_grader_calls_abstain_are_counted_and_logged(caplog) -> None:
    metrics: dict[str, float] = {}
    grader = RubricGrader(Model("judge", ScriptedBackend(failing_judge)), "no_reference")
    reward = grader_reward(grader, PROBLEMS)
    with caplog.at_level("WARNING"):
        rewards = await reward(
            prompts=["p"] * 2, completions=["a proof", "<think>never closed"], problem_id=["a", "b"],
            log_metric=lambda name, value: metrics.__setitem__(name, value),
        )
    assert rewards == [None, 0.0]  # the failure abstains; the unclosed reasoning is a real zero
    assert metrics["grader/failed_fraction"] == 0.5
    assert metrics["grader/no_proof_fraction"] == 0.5
    assert "service unavailable" in caplog.text


async def test_a_grader_that_is_down_stops_training() -> None:
    grader = RubricGrader(Model("judge", ScriptedBackend(failing_judge)), "no_reference")
    reward = grader_reward(grader, PROBLEMS, max_failed_fraction=0.5)
    with pytest.raises(GraderDown, match="2 of 2 grader calls failed.*service unavailable"):
        await reward(prompts=["p"] * 2, completions=["x", "y"], problem_id=["a", "b"])


async def test_answer_reward_checks_the_text_after_reasoning_with_math_verify() -> None:
    problems = {"s": Problem(id="s", statement="What is 2+3?", short_answer="5")}
    reward = grade_reward(AnswerGrader(None), problems, kind="answer")
    logged: dict[str, list] = {}
    metrics: dict[str, float] = {}
    rewards = await reward(
        prompts=["p"] * 5,
        completions=["So \\boxed{5}", "<think>\\boxed{5}</think>\\boxed{6}", "\\boxed{5.0}", "<think>\\boxed{5}",
                     "I am not sure at all"],
        problem_id=["s"] * 5,
        log_extra=lambda column, values: logged.__setitem__(column, values),
        log_metric=lambda name, value: metrics.__setitem__(name, value),
    )
    # An answer that cannot be read did not answer the question: the checker grades it 0.
    assert rewards == [1.0, 0.0, 1.0, 0.0, 0.0]
    assert logged == {"answer_status": ["graded", "graded", "graded", "no_proof", "graded"]}
    assert metrics["answer/no_proof_fraction"] == 0.2
    assert get_callable_name(reward) == "answer_math-verify"


def test_length_and_format_penalties() -> None:
    length = length_penalty(0.5, max_tokens=10)
    assert length(completions=["a", "b"], completion_ids=[[1] * 10, [1] * 2]) == [-0.5, -0.1]
    fmt = format_penalty(0.2, reasoning_in_prompt=True)
    assert fmt(completions=["r</think>proof", "still thinking", "r</think>  "]) == [0.0, -0.2, -0.2]
