"""Reading a rubric grader's 0-7 verdict from its final answer.

The grader prompt asks for an answer that ends with

    CHECKPOINT <title>: <points>     (strict and advisory variants, one per checkpoint)
    FINAL SCORE: <integer>

A line-anchored label with a colon is easy to find, hard to write by accident in prose, and
survives the markdown graders like to add (`**FINAL SCORE:** 6`, `## Final score: 6/7`).

The proof being graded is untrusted: it may contain its own "FINAL SCORE: 7", a fake end of
proof marker, or instructions to the grader. Only the grader's own lines are read, as every
verdict in qednano is read (`qednano.grading.untrusted.own_lines`): its final answer, outside
any echoed proof block, without block quotes; and the LAST verdict line decides. If it is
malformed or out of range the verdict is rejected, rather than falling back to an earlier line
that may be a quotation.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from qednano.grading.untrusted import label_value, own_lines
from qednano.problems.record import Criterion

# A verdict or checkpoint line is recognised by its label at the start of the line and a colon;
# what follows the colon must then be a bare number, or the line is a malformed verdict.
_CHECKPOINT = re.compile(r"^checkpoint\b[\s*_`]*(?P<rest>.*:.*)$", re.IGNORECASE)
# A whole line that is only \boxed{N}, possibly in math delimiters: accepted as the last line.
_BOXED_LINE = re.compile(r"^(?:\$\$?|\\\[|\\\()?\s*\\boxed\{(?P<value>[^{}]*)\}\s*(?:\$\$?|\\\]|\\\))?\.?$")
# The number itself: "6", "6.0", "6/7", "6 / 7", "6 out of 7", "6 points".
_NUMBER = re.compile(
    r"^(?P<num>[+-]?\d+(?:\.\d+)?)\s*(?:(?:/|out\s+of)\s*(?P<den>\d+(?:\.\d+)?))?\s*(?:points?|pts)?$",
    re.IGNORECASE | re.ASCII,  # ASCII digits only: \d would also take other scripts' digits
)


@dataclass(frozen=True)
class ParsedVerdict:
    score: int
    criteria: dict[str, float] = field(default_factory=dict)  # checkpoint title -> points awarded
    line: str = ""  # the verdict line as the grader wrote it
    ignored: tuple[str, ...] = ()  # checkpoint lines naming no checkpoint of the scheme


@dataclass(frozen=True)
class Rejection:
    """Why no verdict could be read; becomes the `error` of an ungraded Grade."""

    reason: str


def check_verdict(
    grader_content: str,
    allowed: Collection[int],
    criteria: Sequence[Criterion] = (),
) -> ParsedVerdict | Rejection:
    """The 0-7 verdict at the end of a grader's final answer, or why there is no valid one.

    `allowed` is the score scale (e.g. {0, 1, 6, 7} or range(8)). `criteria` is the problem's
    structured marking scheme: checkpoint lines are matched to it by title (or 1-based number)
    and checked against each criterion's points; without criteria, checkpoint titles are kept
    as written and checked against the top of the scale.
    """
    scale = frozenset(allowed)
    if not scale:
        raise ValueError("check_verdict needs a non-empty set of allowed scores")
    # Lines as written (for messages) and without markdown (for matching); blank ones dropped.
    own = own_lines(grader_content)
    originals, lines = [written for written, _ in own], [cleaned for _, cleaned in own]

    verdicts = [i for i, line in enumerate(lines) if label_value(line, "final score") is not None]
    if lines and _BOXED_LINE.match(lines[-1]):
        verdicts.append(len(lines) - 1)
    if not verdicts:
        return Rejection("no 'FINAL SCORE: <n>' line in the grader's answer")

    last = verdicts[-1]
    value = label_value(lines[last], "final score")
    if value is None:
        value = _BOXED_LINE.match(lines[last])["value"]
    if not value.strip() and last + 1 < len(lines):
        value = lines[last + 1]  # "**Final score:**" with the number on the line below
    score = _score(value, scale)
    if isinstance(score, Rejection):
        return Rejection(f"verdict line {originals[last]!r}: {score.reason}")

    points, ignored = {}, []
    for i, line in enumerate(lines[:last]):
        if checkpoint := _CHECKPOINT.match(line):
            title, _, value = checkpoint["rest"].rpartition(":")
            read = _checkpoint(title, value, criteria, max(scale))
            if isinstance(read, Rejection):
                return Rejection(f"checkpoint line {originals[i]!r}: {read.reason}")
            if read is None:
                ignored.append(originals[i])
            else:
                points[read[0]] = read[1]  # a later line for the same checkpoint wins
    return ParsedVerdict(score=score, criteria=points, line=originals[last], ignored=tuple(ignored))


_SCORE_TAG = re.compile(r"^<score>(?P<value>.*?)</score>\.?$", re.IGNORECASE)


def check_score_tag(grader_content: str, allowed: Collection[int]) -> ParsedVerdict | Rejection:
    """The verdict of the marking-scheme variant: the last own line `<score>N</score>`.

    Read like every verdict (`own_lines`: outside an echoed proof, quotations never count); a
    malformed last tag rejects the answer rather than falling back to an earlier one.
    """
    own = own_lines(grader_content)
    tagged = [(written, m) for written, cleaned in own if (m := _SCORE_TAG.match(cleaned))]
    if not tagged:
        return Rejection("no '<score>N</score>' line in the grader's answer")
    written, match = tagged[-1]
    score = _score(match["value"], frozenset(allowed))
    if isinstance(score, Rejection):
        return Rejection(f"verdict line {written!r}: {score.reason}")
    return ParsedVerdict(score=score, line=written)


def _number(text: str) -> tuple[float, float | None] | Rejection:
    """(number, denominator or None) from "6", "$6$", "\\boxed{6}", "6/7", "6 out of 7", "6."."""
    text = re.sub(r"[*_`]", "", text).strip().rstrip(".").strip()  # numbers hold no markdown
    text = re.sub(r"^(\$\$?|\\\(|\\\[)(.*?)(\$\$?|\\\)|\\\])$", r"\2", text).strip()
    boxed = re.fullmatch(r"\\boxed\{([^{}]*)\}", text)
    text = boxed[1].strip() if boxed else text
    match = _NUMBER.match(text)
    if match is None:
        return Rejection(f"{text!r} is not a number")
    return float(match["num"]), None if match["den"] is None else float(match["den"])


def _score(text: str, scale: frozenset[int]) -> int | Rejection:
    read = _number(text)
    if isinstance(read, Rejection):
        return read
    value, out_of = read
    if out_of is not None and out_of != max(scale):
        return Rejection(f"a score out of {out_of:g} is not on this scale, which tops out at {max(scale)}")
    if not value.is_integer():
        return Rejection(f"{value:g} is not a whole number of points")
    if int(value) not in scale:
        return Rejection(f"{value:g} is not on the scale {sorted(scale)}")
    return int(value)


def _norm_title(title: str) -> str:
    return " ".join(title.strip().strip("\"'“”‘’[]()<>").split()).casefold()


def _checkpoint(
    title: str, value: str, criteria: Sequence[Criterion], top: int
) -> tuple[str, float] | Rejection | None:
    """(criterion title, points) for one checkpoint line; None when it names no criterion."""
    read = _number(value)
    if isinstance(read, Rejection):
        return read
    points, out_of = read
    title = title.strip("*_` \t")
    if not criteria:
        # A free-text scheme gives no checkpoint values: "2/2" names its own, up to the scale's top.
        limit, name = float(top) if out_of is None else min(out_of, float(top)), title
    else:
        criterion = _find_criterion(title, criteria)
        if criterion is None:
            return None
        limit, name = criterion.points, criterion.title
    if out_of is not None and out_of not in (limit, top):
        return Rejection(f"points out of {out_of:g} do not match checkpoint {name!r}, worth {limit:g}")
    if not 0 <= points <= limit:
        return Rejection(f"{points:g} points is outside 0-{limit:g} for checkpoint {name!r}")
    return name, points


def _find_criterion(title: str, criteria: Sequence[Criterion]) -> Criterion | None:
    wanted = _norm_title(title)
    for criterion in criteria:
        if _norm_title(criterion.title) == wanted:
            return criterion
    # Graders sometimes number checkpoints instead of naming them: "CHECKPOINT 2: 1".
    index = wanted.removeprefix("#")
    if index.isdigit() and 1 <= int(index) <= len(criteria):
        return criteria[int(index) - 1]
    return None
