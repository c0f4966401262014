"""The LLM judge of short answers, for what math-verify cannot read: answers with words in them
("odd $n$", "all powers of 2") and answers it cannot parse at all.

The candidate answer is untrusted text (it may hold its own "VERDICT: EQUIVALENT"): the prompt
fences it between marker lines, which are removed from the candidate itself, and the verdict is
read from the judge's own last `VERDICT:` line, as every verdict is read
(`qednano.grading.untrusted.last_labelled`).
"""

from __future__ import annotations

import re

from qednano.grading.record import AnswerVerdict
from qednano.grading.untrusted import last_labelled
from qednano.llm.model import Model
from qednano.problems.record import Problem
from qednano.prompts import SHIPPED, Prompts

CANDIDATE_BEGIN = "<<<CANDIDATE ANSWER>>>"
CANDIDATE_END = "<<<END CANDIDATE ANSWER>>>"

_JUDGEMENT = re.compile(r"(not\s+equivalent|equivalent)", re.IGNORECASE)


def read_judgement(content: str) -> bool | None:
    """True/False from the last `VERDICT: ...` line of the judge's own text, else None."""
    match = _JUDGEMENT.fullmatch(last_labelled(content, "verdict", [(CANDIDATE_BEGIN, CANDIDATE_END)]) or "")
    return None if match is None else not match.group(1).lower().startswith("not")


def judge_messages(problem: Problem, candidate: str, prompts: Prompts = SHIPPED) -> list[dict[str, str]]:
    prompt = prompts.fill(
        "answer_judge",
        problem=problem.statement,
        reference=problem.short_answer,
        candidate=candidate.replace(CANDIDATE_BEGIN, "").replace(CANDIDATE_END, ""),
        begin=CANDIDATE_BEGIN,
        end=CANDIDATE_END,
    )
    return [{"role": "user", "content": prompt}]


async def judge_answer(
    model: Model, problem: Problem, response_answer: str, sample_index: int = 0, prompts: Prompts = SHIPPED
) -> AnswerVerdict:
    """Ask an LLM whether `response_answer` is equivalent to the problem's reference answer."""
    if not problem.short_answer.strip():
        raise ValueError(f"problem {problem.id!r} has no short answer to judge against")
    done = await model.complete(judge_messages(problem, response_answer, prompts), sample_index=sample_index)
    base = {"extracted": response_answer, "method": "llm-judge", "judge_call": done}
    if not done.ok:
        return AnswerVerdict(status="failed", detail=f"judge call failed: {done.error}", **base)
    same = read_judgement(done.content)
    if same is None:
        detail = "the judge's final answer has no line 'VERDICT: EQUIVALENT' or 'VERDICT: NOT EQUIVALENT'"
        return AnswerVerdict(status="unparsed", detail=detail, **base)
    return AnswerVerdict(correct=same, status="checked", **base)
