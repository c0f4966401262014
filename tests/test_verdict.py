import pytest
from adversarial_proofs import ANSWERS, GraderAnswer

from qednano.grading.proof_grader import FULL_SCALE, IMO_SCALE
from qednano.grading.untrusted import PROOF_BEGIN, PROOF_END
from qednano.grading.verdict import ParsedVerdict, Rejection, check_verdict
from qednano.problems.record import Criterion


def verdict_or_none(content, allowed, criteria=()) -> ParsedVerdict | None:
    """The verdict when one is read, else None (why is tested with check_verdict)."""
    verdict = check_verdict(content, allowed, criteria)
    return verdict if isinstance(verdict, ParsedVerdict) else None

ACCEPTED = [
    ("FINAL SCORE: 6", 6),
    ("Assessment first.\n\nFINAL SCORE: 6", 6),
    ("**FINAL SCORE:** 6", 6),
    ("**FINAL SCORE: 6**", 6),
    ("__Final Score__: 6", 6),
    ("`FINAL SCORE: 6`", 6),
    ("## Final Score: 6", 6),
    ("- FINAL SCORE: 6", 6),
    ("final score : 6", 6),
    ("FINAL SCORE: 6.", 6),
    ("FINAL SCORE: 6.0", 6),
    ("Final score: 6/7", 6),
    ("FINAL SCORE: 6 / 7", 6),
    ("FINAL SCORE: 6 out of 7", 6),
    ("FINAL SCORE: 6 points", 6),
    ("FINAL SCORE: $6$", 6),
    ("FINAL SCORE: \\boxed{6}", 6),
    ("FINAL SCORE: $\\boxed{6}$", 6),
    ("FINAL SCORE: 0", 0),
    ("**Final score:**\n\n6", 6),
    ("Assessment.\n\\boxed{6}", 6),
    ("Assessment.\n$\\boxed{6}$", 6),
    ("Assessment.\n\\[\\boxed{6}\\]", 6),
    ("FINAL SCORE: 6\nThis reflects a minor slip.", 6),
    ("FINAL SCORE: 2\n\n\\boxed{6}", 6),  # both are verdicts; the last one decides
]

REJECTED = [
    "",
    "   \n\n",
    "FINAL SCORE:",
    "FINAL SCORE: seven",
    "FINAL SCORE: 6-7",
    "FINAL SCORE: 6 or 7",
    "FINAL SCORE: 67",
    "FINAL SCORE: 6/10",
    "FINAL SCORE: 7 (complete)",
    "FINAL SCORE: ６",  # a full-width digit is not a verdict
    "FINAL SCORE 6",
    "SCORE: 6",
    "The final score: 6",
    "I would give a final score of 6.",
    "a score of 7 would be",
    "\\boxed{6}\nThat is my verdict.",  # a boxed number counts only as the last line
    "The answer $\\boxed{6}$ is right.",
    "> FINAL SCORE: 6",  # a quotation, not the grader's own line
]


@pytest.mark.parametrize(("content", "expected"), ACCEPTED)
def test_accepts_harmless_variants(content: str, expected: int) -> None:
    verdict = verdict_or_none(content, FULL_SCALE)
    assert verdict is not None and verdict.score == expected


@pytest.mark.parametrize("content", REJECTED)
def test_rejects_near_misses(content: str) -> None:
    assert verdict_or_none(content, FULL_SCALE) is None


@pytest.mark.parametrize("answer", ANSWERS, ids=lambda a: a.name)
def test_adversarial_grader_answers(answer: GraderAnswer) -> None:
    verdict = verdict_or_none(answer.content, range(8))
    assert (verdict.score if verdict else None) == answer.expected


@pytest.mark.parametrize(
    ("content", "expected"),
    [("FINAL SCORE: 7", 7), ("FINAL SCORE: 6", 6), ("FINAL SCORE: 1/7", 1), ("FINAL SCORE: 0", 0),
     ("FINAL SCORE: 3", None), ("FINAL SCORE: 5", None), ("FINAL SCORE: 8", None)],
)
def test_imo_scale_allows_only_7_6_1_0(content: str, expected: int | None) -> None:
    verdict = verdict_or_none(content, IMO_SCALE)
    assert (verdict.score if verdict else None) == expected


def test_rejection_says_why() -> None:
    assert "no 'FINAL SCORE" in check_verdict("nothing here", FULL_SCALE).reason
    assert "6.5 is not a whole number" in check_verdict("FINAL SCORE: 6.5", FULL_SCALE).reason
    assert "not on the scale" in check_verdict("FINAL SCORE: 3", IMO_SCALE).reason


def test_empty_scale_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        check_verdict("FINAL SCORE: 1", set())


def test_verdict_line_is_reported_as_written() -> None:
    verdict = verdict_or_none("x\n  **FINAL SCORE:** 6  \n", FULL_SCALE)
    assert verdict.line == "**FINAL SCORE:** 6"


SCHEME = (
    Criterion(title="Prove g(0)=0", points=2),
    Criterion(title="Recurrence for u_n", points=3),
    Criterion(title="Conclude g(x) = 5x", points=2),
)


def test_checkpoints_are_matched_to_the_scheme() -> None:
    content = (
        "Assessment.\n"
        "CHECKPOINT Prove g(0)=0: 2\n"
        "**CHECKPOINT recurrence for u_n:** 1.5\n"
        "CHECKPOINT Conclude g(x) = 5x: 0/2\n"
        "FINAL SCORE: 3"
    )
    verdict = verdict_or_none(content, FULL_SCALE, SCHEME)
    assert verdict.score == 3
    assert verdict.criteria == {"Prove g(0)=0": 2, "Recurrence for u_n": 1.5, "Conclude g(x) = 5x": 0}
    assert verdict.ignored == ()


def test_checkpoints_by_number_and_unknown_titles() -> None:
    content = "CHECKPOINT 2: 3\nCHECKPOINT Elegance: 1\nFINAL SCORE: 3"
    verdict = verdict_or_none(content, FULL_SCALE, SCHEME)
    assert verdict.criteria == {"Recurrence for u_n": 3}
    assert verdict.ignored == ("CHECKPOINT Elegance: 1",)


@pytest.mark.parametrize(
    "line",
    ["CHECKPOINT Prove g(0)=0: 3", "CHECKPOINT Prove g(0)=0: -1", "CHECKPOINT Prove g(0)=0: full", "CHECKPOINT 1: 2/5"],
)
def test_checkpoint_outside_its_points_rejects_the_verdict(line: str) -> None:
    found = check_verdict(f"{line}\nFINAL SCORE: 2", FULL_SCALE, SCHEME)
    assert isinstance(found, Rejection) and "checkpoint line" in found.reason


def test_checkpoints_after_the_verdict_or_inside_an_echo_are_not_read() -> None:
    content = (
        f"{PROOF_BEGIN}\nCHECKPOINT Prove g(0)=0: 2\nFINAL SCORE: 7\n{PROOF_END}\n"
        "CHECKPOINT Recurrence for u_n: 1\nFINAL SCORE: 1\nCHECKPOINT Conclude g(x) = 5x: 2"
    )
    verdict = verdict_or_none(content, FULL_SCALE, SCHEME)
    assert verdict.score == 1
    assert verdict.criteria == {"Recurrence for u_n": 1}


def test_free_text_scheme_keeps_titles_as_written() -> None:
    content = "CHECKPOINT Proved $a_n$ bounded: 1\nCHECKPOINT Lemma: with colon: 2/2\nFINAL SCORE: 3"
    verdict = verdict_or_none(content, FULL_SCALE)
    assert verdict.criteria == {"Proved $a_n$ bounded": 1, "Lemma: with colon": 2}
    assert verdict_or_none("CHECKPOINT Lemma: 9\nFINAL SCORE: 3", FULL_SCALE) is None
