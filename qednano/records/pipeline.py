"""Generate → grade over a list of problems, resumable at sample granularity.

Each (problem, sample) pair is one unit of work: the scaffold writes an attempt, which is
appended to `samples.jsonl` at once, then the grader grades it and the graded record is
appended. On resume, finished samples are skipped, attempts whose generation failed are
redone, and attempts still ungraded are (re)graded. Model calls are cached too, so redone work
that had already reached the model costs nothing.

Once more samples fail than `max_failures` tolerates (see records/failures.py), the work still
running is cancelled and `RunFailed` is raised: what was done stays in the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from qednano.grading.record import ProofGrader
from qednano.llm.model import Model
from qednano.problems.record import Problem
from qednano.records.failures import RunFailed, allowance, commonest, sample_failure, summarize
from qednano.records.sample import SampleRecord
from qednano.records.store import SampleStore
from qednano.scaffolds.base import Attempt, Scaffold


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )


def needs_generation(record: SampleRecord | None) -> bool:
    return record is None or record.attempt.status == "failed"


def needs_grading(record: SampleRecord) -> bool:
    if record.attempt.status == "failed":
        return False
    return record.grade is None or record.grade.status == "ungraded"


async def evaluate(
    problems: Sequence[Problem],
    scaffold: Scaffold,
    grader: ProofGrader | None,
    samples: int,
    store: SampleStore,
    concurrency: int = 32,
    max_failures: float | None = None,
) -> list[SampleRecord]:
    """Run every (problem, sample) to a graded record; returns records in problem order."""
    work = [(problem, index) for problem in problems for index in range(samples)]
    return await evaluate_pairs(work, scaffold, grader, store, concurrency, max_failures)


async def evaluate_pairs(
    work: Sequence[tuple[Problem, int]],
    scaffold: Scaffold,
    grader: ProofGrader | None,
    store: SampleStore,
    concurrency: int = 32,
    max_failures: float | None = None,
    generates: bool = True,
) -> list[SampleRecord]:
    """`evaluate` over explicit (problem, sample index) pairs, in their order. `generates=False`:
    the scaffold only replays written attempts (grading a file), so no generate bar is shown."""
    previous = store.read()
    tolerated = len(work) if max_failures is None else allowance(max_failures, len(work))  # None: no limit
    failed: list[SampleRecord] = []
    bar = progress_bar()
    generated = bar.add_task("generate", total=len(work), visible=generates)
    graded = bar.add_task("grade", total=len(work) if grader else 0, visible=grader is not None)

    async def run_one(problem: Problem, index: int) -> SampleRecord:
        record = previous.get((problem.id, index))
        if needs_generation(record):
            attempt = await scaffold.solve(problem, index)
            record = SampleRecord.start(problem, attempt)
            store.append(record)
        bar.advance(generated)
        if grader is not None and needs_grading(record):
            grade = await grader.grade(problem, record.attempt.proof, index)
            record = record.model_copy(update={"grade": grade})
            store.append(record)
        if grader is not None:
            bar.advance(graded)
        if sample_failure(record) is not None:
            failed.append(record)
            if len(failed) > tolerated:
                summary = summarize(failed)
                raise RunFailed(f"stopped early: {len(failed)} samples failed, more than --max-failures "
                                f"tolerates ({tolerated} of {len(work)}); {commonest(summary)}", summary)
        return record

    try:
        with bar:
            records = await run_all(run_one, work, concurrency)
    finally:
        store.close()
    wanted = {r.key for r in records}
    leftovers = [r for key, r in previous.items() if key not in wanted]
    if store.superseded:  # else the file already holds one line per sample: a finished run is left as it is
        store.compact(records + leftovers)
    return records


async def run_all(run_one, work: Sequence[tuple[Problem, int]], concurrency: int) -> list[SampleRecord]:
    """`run_one(problem, index)` for every pair of `work`, `concurrency` at a time; results in
    work order. The first exception stops the others and is raised.

    A fixed set of workers takes the pairs in turn, rather than a task per pair waiting on a
    semaphore: with thousands of pairs, the tasks and the semaphore's queue cost more CPU than
    the calls they wait for."""
    results: list[SampleRecord | None] = [None] * len(work)
    todo = iter(enumerate(work))  # shared by the workers: each takes the next pair

    async def worker() -> None:
        for position, (problem, index) in todo:
            results[position] = await run_one(problem, index)

    workers = [asyncio.ensure_future(worker()) for _ in range(min(concurrency, len(work)))]
    try:
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    return results


class Replay:
    """A scaffold that returns attempts written beforehand instead of calling a model (grading only)."""

    name = "imported"

    def __init__(self, attempts: Sequence[Attempt]):
        self.attempts = {(attempt.problem_id, attempt.sample_index): attempt for attempt in attempts}

    async def solve(self, problem: Problem, sample_index: int = 0) -> Attempt:
        return self.attempts[(problem.id, sample_index)]


async def closing(models: Sequence[Model], work):
    """Await `work`, then close the models' connections (on the same event loop)."""
    try:
        return await work
    finally:
        await asyncio.gather(*(model.aclose() for model in models))


def run_models(models: Sequence[Model], job: Awaitable[Any]) -> Any:
    """Await `job` on a fresh event loop, closing the models' connections after.

    The loop is uvloop's where it is installed (it is a dependency on Linux and macOS): sockets
    and scheduling in C took about a tenth off the HTTP client's CPU per call at instant answers
    (bench/eval_harness.py). Elsewhere it is asyncio's own.
    """
    try:
        from uvloop import new_event_loop
    except ImportError:
        new_event_loop = None
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(closing(models, job))
