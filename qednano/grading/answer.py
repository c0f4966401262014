"""The short-answer checker: is the final answer of a response the reference answer?

Two judges, in order:

1. math-verify compares the answers as mathematics (1/2 = 0.5 = \\dfrac{1}{2}, {3,2,1} = {1,2,3},
   "x=3" = "3"). `verify(gold, target)` is asymmetric, so the reference always goes first. Its
   timeouts use `signal.alarm`, which only works on a process's main thread, so every check runs
   in a worker process (`HardTimeoutPool`); the pool also kills a worker that overruns the hard
   per-item deadline, since an alarm cannot interrupt every hang.
2. An LLM judge (`judge_answer`) for what math-verify cannot read: answers with words in them
   ("odd $n$", "all powers of 2"), where math-verify would compare only the formula and drop
   the condition, and answers it cannot parse at all.

A check that could not decide is a status (unparsed, timeout, failed) with `correct=None`, never
a silent `False`: the report counts it instead of scoring it as wrong.
"""

from __future__ import annotations

import asyncio
import atexit
import multiprocessing
import os
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Literal

import pebble
from math_verify import parse, verify
from math_verify.errors import TimeoutException
from pydantic import BaseModel

from qednano.grading.record import Grade
from qednano.grading.untrusted import last_labelled
from qednano.llm.model import Model
from qednano.llm.types import Completion
from qednano.problems.record import Problem
from qednano.prompts import fill, load_prompt

Method = Literal["math-verify", "llm-judge", "none"]
# checked: a verdict was reached. unparsed: no answer could be read (or it has words math-verify
# would drop). timeout: the check overran its deadline. failed: the checker or judge call broke.
CheckStatus = Literal["checked", "unparsed", "timeout", "failed"]


class AnswerVerdict(BaseModel):
    correct: bool | None = None  # None whenever status is not "checked"
    extracted: str | None = None  # the candidate answer that was compared
    method: Method = "none"
    status: CheckStatus
    detail: str = ""  # why it was not checked
    judge_call: Completion | None = None  # the LLM judge's call, for cost and audit


# ---------------------------------------------------------------------------- final answers

BOX_COMMANDS = ("\\boxed", "\\fbox")


def last_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{...}` (or `\\fbox{...}`) in `text`, else None.

    Braces are counted, so nested braces are kept (`\\boxed{\\frac{1}{2}}`), and escaped ones
    (`\\{`, `\\}`) do not count. `\\boxed 5` (no braces) takes the token after the space. If the
    last box is never closed (a truncated answer) the result is None, not an earlier box: the
    answer the model meant to give is the one that was cut off. An empty box is no answer.
    """
    last: str | None = None
    position = 0
    while (start := _next_box_command(text, position)) is not None:
        content, position = _box_argument(text, start)
        last = content
    return last


def _next_box_command(text: str, position: int) -> int | None:
    """Index just after the next box command at or after `position`."""
    found = [(i, command) for command in BOX_COMMANDS if (i := text.find(command, position)) >= 0]
    while found:
        index, command = min(found)
        end = index + len(command)
        # `\boxedfoo` is another control word, not a box.
        if end >= len(text) or not text[end].isalpha():
            return end
        found = [(i, c) for c in BOX_COMMANDS if (i := text.find(c, index + 1)) >= 0]
    return None


def _box_argument(text: str, start: int) -> tuple[str | None, int]:
    """(content, index after it) of the box argument that starts at `start`."""
    i = start
    while i < len(text) and text[i] in " \t":
        i += 1
    if i < len(text) and text[i] == "{":
        depth = 0
        j = i
        while j < len(text):
            char = text[j]
            if char == "\\":
                j += 2  # an escaped character (\{, \}, \\) never opens or closes a group
                continue
            if char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
                if depth == 0:
                    return text[i + 1 : j].strip() or None, j + 1
            j += 1
        return None, len(text)  # never closed
    # `\boxed 5`: one bare token, up to whitespace or the end of math mode.
    match = re.match(r"[^\s$]+", text[i:])
    if match is None:
        return None, i
    return match.group().rstrip(".,;") or None, i + match.end()


def final_answer(response: str) -> str | None:
    """The answer a response commits to: its last box; a one-line response is its own answer."""
    boxed = last_boxed(response)
    if boxed is not None:
        return boxed
    text = response.strip()
    return text if text and "\n" not in text else None


_DELIMITERS = re.compile(r"\$|\\\(|\\\)|\\\[|\\\]")
_MATH_SPANS = re.compile(r"\$\$.*?\$\$|\$.*?\$|\\\(.*?\\\)|\\\[.*?\\\]", re.DOTALL)
_TEXT_ARGUMENT = re.compile(r"\\(?:text|textrm|textbf|mbox)\s*\{([^{}]*)\}")
_COMMAND = re.compile(r"\\[A-Za-z]+")


def as_math(answer: str) -> str:
    """An answer as bare LaTeX: math delimiters and a trailing full stop removed."""
    return _DELIMITERS.sub("", answer).strip().rstrip(".").strip()


def prose_words(answer: str) -> list[str]:
    """Words (two letters or more) written as text in an answer: outside math, or in \\text{}.

    math-verify reads "odd $n$" as `n` and "$f(x)=x$ for some $a>0$" as `a>0`: it keeps a
    formula and drops the words around it, so such answers go to the judge instead. An answer
    with no math delimiters at all is read whole (letters there are text or single variables).
    """
    has_delimiters = _DELIMITERS.search(answer) is not None
    outside = _MATH_SPANS.sub(" ", answer) if has_delimiters else answer
    text = " ".join([_COMMAND.sub(" ", outside), *_TEXT_ARGUMENT.findall(answer)])
    return re.findall(r"[A-Za-z]{2,}", text)


# ---------------------------------------------------------------------------- math-verify

PARSE_TIMEOUT_S = 5  # math-verify's own alarm, per parse and per comparison
VERIFY_TIMEOUT_S = 5
HARD_TIMEOUT_S = 30.0  # the pool's deadline per item: above the alarms, which should fire first


def check_in_process(gold: str, response: str) -> AnswerVerdict:
    """Compare a response's final answer with the reference using math-verify (worker side).

    Must run on a process's main thread. Both answers are boxed before parsing, so that they are
    read the same way: bare "2026, 2030" would parse as its last number, boxed as a set.
    """
    candidate = final_answer(response)
    if candidate is None:
        return AnswerVerdict(status="unparsed", detail="the response has no \\boxed{} final answer")
    for role, answer in (("reference", gold), ("response", candidate)):
        if words := prose_words(answer):
            detail = f"the {role} answer is partly words ({' '.join(words[:4])}); math-verify would drop them"
            return AnswerVerdict(status="unparsed", extracted=candidate, detail=detail)
    try:
        gold_parsed = parse(f"\\boxed{{{as_math(gold)}}}", parsing_timeout=PARSE_TIMEOUT_S, raise_on_error=True)
        target = parse(f"\\boxed{{{as_math(candidate)}}}", parsing_timeout=PARSE_TIMEOUT_S, raise_on_error=True)
        if not gold_parsed or not target:
            role = "reference" if not gold_parsed else "response"
            detail = f"math-verify could not parse the {role} answer"
            return AnswerVerdict(status="unparsed", extracted=candidate, detail=detail)
        same = verify(gold_parsed, target, timeout_seconds=VERIFY_TIMEOUT_S, raise_on_error=True)
    except TimeoutException as err:
        return AnswerVerdict(status="timeout", extracted=candidate, detail=f"math-verify: {err}")
    return AnswerVerdict(correct=bool(same), extracted=candidate, method="math-verify", status="checked")


# ---------------------------------------------------------------------------- the worker pool


@dataclass(frozen=True)
class Outcome:
    status: Literal["done", "timeout", "failed"]
    value: Any = None
    error: str = ""


class HardTimeoutPool:
    """Worker processes that give every item `timeout_s` of wall time from when a worker starts it.

    pebble's process pool does the hard part: it kills a worker whose item overruns and starts a
    new one, so one pathological answer cannot stall a batch. Workers come from a forkserver
    (forking a process that runs threads is unsafe) that preloads math-verify; as with any
    non-fork start method, a script that uses the pool must guard its top level with
    `if __name__ == "__main__":`. Safe to share between threads.
    """

    def __init__(self, fn: Callable[..., Any], max_workers: int | None = None, timeout_s: float = HARD_TIMEOUT_S):
        self.fn = fn
        self.timeout_s = timeout_s
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        self._pool = pebble.ProcessPool(max_workers=max_workers or min(4, os.cpu_count() or 1), context=context)

    def run(self, items: Sequence[tuple]) -> list[Outcome]:
        """`fn(*args)` for every args tuple, in order, each as an Outcome."""
        futures = [self._pool.schedule(self.fn, args=args, timeout=self.timeout_s) for args in items]
        return [self._outcome(future) for future in futures]

    def _outcome(self, future: Future) -> Outcome:
        try:
            return Outcome("done", future.result())
        except TimeoutError:
            return Outcome("timeout", error=f"no result after {self.timeout_s:g} s")
        except pebble.ProcessExpired as err:
            return Outcome("failed", error=f"the worker process died while checking this item ({err})")
        # The function's own exception, raised in the worker: recorded on this item, not raised.
        except Exception as err:  # noqa: BLE001
            return Outcome("failed", error=f"{type(err).__name__}: {err}")

    def close(self) -> None:
        self._pool.stop()
        self._pool.join()


_shared_pool: HardTimeoutPool | None = None
_shared_lock = threading.Lock()


def shared_pool() -> HardTimeoutPool:
    """The process-wide math-verify pool used by `check_answer` and `grade_answer`."""
    global _shared_pool
    with _shared_lock:
        if _shared_pool is None:
            _shared_pool = HardTimeoutPool(check_in_process)
            atexit.register(_shared_pool.close)
        return _shared_pool


def _verdict(outcome: Outcome) -> AnswerVerdict:
    if outcome.status == "done":
        return outcome.value
    return AnswerVerdict(status=outcome.status, detail=outcome.error)


def check_answers(
    pairs: Sequence[tuple[str, str]], max_workers: int | None = None, timeout_s: float | None = None
) -> list[AnswerVerdict]:
    """Check many (reference answer, response) pairs with math-verify, in worker processes.

    With no settings the shared pool is used; otherwise a pool is made for this batch.
    """
    if max_workers is None and timeout_s is None:
        return [_verdict(o) for o in shared_pool().run(pairs)]
    pool = HardTimeoutPool(check_in_process, max_workers, timeout_s or HARD_TIMEOUT_S)
    try:
        return [_verdict(o) for o in pool.run(pairs)]
    finally:
        pool.close()


def check_answer(gold: str, response: str) -> AnswerVerdict:
    """Check one response's final answer against the reference answer with math-verify."""
    return check_answers([(gold, response)])[0]


# ---------------------------------------------------------------------------- the LLM judge

# The candidate answer is untrusted text (it may hold its own "VERDICT: EQUIVALENT"): the prompt
# fences it with these markers, which are removed from the candidate itself.
CANDIDATE_BEGIN = "<<<CANDIDATE ANSWER>>>"
CANDIDATE_END = "<<<END CANDIDATE ANSWER>>>"

# The judge's verdict: the value on its own last "VERDICT:" line, read as every verdict is read
# (`qednano.grading.untrusted.last_labelled`), with the candidate's block as the echoed block.
_JUDGEMENT = re.compile(r"(not\s+equivalent|equivalent)", re.IGNORECASE)


def read_judgement(content: str) -> bool | None:
    """True/False from the last `VERDICT: ...` line of the judge's own text, else None."""
    match = _JUDGEMENT.fullmatch(last_labelled(content, "verdict", [(CANDIDATE_BEGIN, CANDIDATE_END)]) or "")
    return None if match is None else not match.group(1).lower().startswith("not")


def judge_messages(problem: Problem, candidate: str) -> list[dict[str, str]]:
    prompt = fill(
        load_prompt(__file__, "answer_judge"),
        problem=problem.statement,
        reference=problem.short_answer,
        candidate=candidate.replace(CANDIDATE_BEGIN, "").replace(CANDIDATE_END, ""),
        begin=CANDIDATE_BEGIN,
        end=CANDIDATE_END,
    )
    return [{"role": "user", "content": prompt}]


async def judge_answer(model: Model, problem: Problem, response_answer: str, sample_index: int = 0) -> AnswerVerdict:
    """Ask an LLM whether `response_answer` is equivalent to the problem's reference answer."""
    if not problem.short_answer.strip():
        raise ValueError(f"problem {problem.id!r} has no short answer to judge against")
    done = await model.complete(judge_messages(problem, response_answer), sample_index=sample_index)
    base = {"extracted": response_answer, "method": "llm-judge", "judge_call": done}
    if not done.ok:
        return AnswerVerdict(status="failed", detail=f"judge call failed: {done.error}", **base)
    same = read_judgement(done.content)
    if same is None:
        detail = "the judge's final answer has no line 'VERDICT: EQUIVALENT' or 'VERDICT: NOT EQUIVALENT'"
        return AnswerVerdict(status="unparsed", detail=detail, **base)
    return AnswerVerdict(correct=same, status="checked", **base)


# The judge reads the final answer only; a response with no box is sent whole, cut to its end
# (where the answer is), so a long unboxed derivation cannot flood the judge's context.
JUDGE_MAX_CHARS = 4000


async def grade_answer(problem: Problem, response: str, judge: Model | None = None, sample_index: int = 0) -> Grade:
    """Grade a short-answer response 1/0: math-verify first, then the LLM judge whenever math-verify
    could not decide (unparsed, timed out or failed). Without a judge such a response is ungraded."""
    if not problem.short_answer.strip():
        raise ValueError(f"problem {problem.id!r} has no short answer; grade it with a proof grader")
    if not response.strip():
        return Grade(status="no_proof", score=0.0, max_score=1.0, grader="math-verify")
    checked = await asyncio.to_thread(check_answer, problem.short_answer, response)
    if checked.status == "checked":
        return _grade(checked, "math-verify")
    if judge is None:
        return Grade(status="ungraded", max_score=1.0, grader="math-verify", error=f"{checked.status}: {checked.detail}")
    candidate = checked.extracted or last_boxed(response) or response.strip()[-JUDGE_MAX_CHARS:]
    judged = await judge_answer(judge, problem, candidate, sample_index=sample_index)
    return _grade(judged, f"{judge.name}/answer-judge", fallback_reason=f"math-verify {checked.status}: {checked.detail}")


def _grade(verdict: AnswerVerdict, grader: str, fallback_reason: str = "") -> Grade:
    calls = [verdict.judge_call] if verdict.judge_call is not None else []
    if verdict.status != "checked":
        error = f"{verdict.status}: {verdict.detail}"
        return Grade(status="ungraded", max_score=1.0, grader=grader, error=error, calls=calls)
    if verdict.judge_call is not None:
        assessment = verdict.judge_call.content
    else:
        assessment = f"extracted answer: {verdict.extracted}"
    if fallback_reason:
        assessment = f"[{fallback_reason}]\n{assessment}"
    score = 1.0 if verdict.correct else 0.0
    return Grade(status="graded", score=score, max_score=1.0, grader=grader, assessment=assessment, calls=calls)
