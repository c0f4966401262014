"""Short answers compared as mathematics with math-verify, in worker processes with hard deadlines.

math-verify reads 1/2 = 0.5 = \\dfrac{1}{2}, {3,2,1} = {1,2,3}, "x=3" = "3". `verify(gold, target)`
is asymmetric, so the reference always goes first. Its timeouts use `signal.alarm`, which only
works on a process's main thread, so every check runs in a worker process (`HardTimeoutPool`);
the pool also kills a worker that overruns the hard per-item deadline, since an alarm cannot
interrupt every hang. A check that could not decide is a status, never a silent False.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Literal

from qednano.grading.answer_forms import normalize, rounded
from qednano.grading.boxed import as_math, final_answer, prose_words
from qednano.grading.record import AnswerVerdict

PARSE_TIMEOUT_S = 5  # math-verify's own alarm, per parse and per comparison
VERIFY_TIMEOUT_S = 5
HARD_TIMEOUT_S = 30.0  # the pool's deadline per item: above the alarms, which should fire first


def check_in_process(gold: str, response: str, allow_decimal: bool = False) -> AnswerVerdict:
    """Compare a response's final answer with the reference using math-verify (worker side).

    Must run on a process's main thread. Both answers are first brought to the forms math-verify
    compares as intended (`answer_forms`), then boxed before parsing, so that they are read the
    same way: bare "2026, 2030" would parse as its last number, boxed as a set. A decimal that
    only approximates an exact reference is wrong unless `allow_decimal` (the problem asks for one).
    """
    # Imported here, in the workers (preloaded by their forkserver): math-verify brings sympy and
    # latex2sympy, seconds of import that a process which checks no answer should not pay.
    from math_verify import parse, verify
    from math_verify.errors import TimeoutException

    candidate = final_answer(response)
    if candidate is None:
        return AnswerVerdict(status="unparsed", detail="the response has no \\boxed{} final answer")
    gold_form, candidate_form = normalize(as_math(gold), as_math(candidate))
    for role, answer in (("reference", gold_form), ("response", candidate_form)):
        if words := prose_words(answer):
            detail = f"the {role} answer is partly words ({' '.join(words[:4])}); math-verify would drop them"
            return AnswerVerdict(status="unparsed", extracted=candidate, detail=detail, reference_unreadable=role == "reference")
    try:
        gold_parsed = parse(f"\\boxed{{{gold_form}}}", parsing_timeout=PARSE_TIMEOUT_S, raise_on_error=True)
        target = parse(f"\\boxed{{{candidate_form}}}", parsing_timeout=PARSE_TIMEOUT_S, raise_on_error=True)
        if not gold_parsed or not target:
            role = "reference" if not gold_parsed else "response"
            detail = f"math-verify could not parse the {role} answer"
            return AnswerVerdict(status="unparsed", extracted=candidate, detail=detail, reference_unreadable=not gold_parsed)
        same = verify(gold_parsed, target, timeout_seconds=VERIFY_TIMEOUT_S, raise_on_error=True)
    except TimeoutException as err:
        return AnswerVerdict(status="timeout", extracted=candidate, detail=f"math-verify: {err}")
    if same and not allow_decimal and rounded(gold_parsed[0], candidate_form):
        same = False  # a rounded decimal for an exact value
    return AnswerVerdict(correct=bool(same), extracted=candidate, method="math-verify", status="checked")




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
        import pebble  # here, not at the top: a run that checks no answer need not load it

        self.fn = fn
        self.timeout_s = timeout_s
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__, "math_verify"])
        self._pool = pebble.ProcessPool(max_workers=max_workers or min(4, os.cpu_count() or 1), context=context)

    def map(self, items: Sequence[tuple]) -> list[Outcome]:
        """`fn(*args)` for every args tuple, in order, each as an Outcome."""
        futures = [self._pool.schedule(self.fn, args=args, timeout=self.timeout_s) for args in items]
        return [self._outcome(future) for future in futures]

    def _outcome(self, future: Future) -> Outcome:
        import pebble

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
    pairs: Sequence[tuple[str, str] | tuple[str, str, bool]], max_workers: int | None = None, timeout_s: float | None = None
) -> list[AnswerVerdict]:
    """Check many (reference answer, response[, allow_decimal]) with math-verify, in worker processes.

    With no settings the shared pool is used; otherwise a pool is made for this batch.
    """
    if max_workers is None and timeout_s is None:
        return [_verdict(o) for o in shared_pool().map(pairs)]
    pool = HardTimeoutPool(check_in_process, max_workers, timeout_s or HARD_TIMEOUT_S)
    try:
        return [_verdict(o) for o in pool.map(pairs)]
    finally:
        pool.close()


def check_answer(gold: str, response: str, allow_decimal: bool = False) -> AnswerVerdict:
    """Check one response's final answer against the reference answer with math-verify."""
    return check_answers([(gold, response, allow_decimal)])[0]
