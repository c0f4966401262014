"""`qednano eval` (load a benchmark, generate with a scaffold, grade, report) and `qednano grade`
(grade a file of existing generations), each in a run directory.

The run directory holds `manifest.json`, `samples.jsonl` (one record per sample, appended as
work finishes), `report.md` and `report.json`. Running the same command with the same
`--out` resumes: finished samples are kept, and every model call already made is replayed
from the cache.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import Field
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from qednano.evaluate.imported import read_generations, write_graded
from qednano.grading.build import GradingConfig, Task, build_grader, check_grading, infer_task
from qednano.grading.record import ProofGrader
from qednano.llm.cache import CallCache
from qednano.llm.model import Model
from qednano.llm.registry import load_model
from qednano.llm.types import Sampling
from qednano.problems.loaders import load_problems
from qednano.problems.record import Problem
from qednano.records.failures import (
    FAILURE_HEADER,
    RunFailed,
    RunLimits,
    check_outcome,
    failure_rows,
    summarize,
    tally,
)
from qednano.records.pipeline import Replay, evaluate, evaluate_pairs, run_models
from qednano.records.problems import write_problems
from qednano.records.rundir import Run, default_run_dir, read_manifest
from qednano.records.sample import SampleRecord
from qednano.records.store import SampleStore
from qednano.reports.render import render_markdown, render_terminal
from qednano.reports.report import Report, build_report
from qednano.scaffolds.base import Attempt, Scaffold
from qednano.scaffolds.registry import load_scaffold
from qednano.tables import rich_table


class EvalConfig(GradingConfig, RunLimits):
    """Everything that determines an evaluation run; stored in its manifest."""

    bench: str = Field(description="Benchmark short name, Hugging Face name, or file.")
    model: str = Field(description="The prover model.")
    task: Task | None = Field(None, description="proof or answer; decided from the problems when unset.")
    samples: int = Field(1, ge=1)
    limit: int | None = Field(None, ge=1, description="Evaluate only the first N problems.")
    problem_ids: list[str] = Field(default_factory=list, description="Evaluate only these problems.")
    scaffold: str = Field("direct", description="Scaffold name or YAML file.")
    scaffold_params: dict[str, Any] = Field(default_factory=dict, description="Overrides of the scaffold's params.")
    sampling: Sampling = Field(default_factory=Sampling)
    concurrency: int = Field(32, ge=1)
    split: str | None = None
    columns: dict[str, str] = Field(default_factory=dict, description="Column map for files, field -> column.")
    rescale_rubrics: bool = Field(False, description="Scale rubric points that do not sum to 7 instead of refusing them.")


def select_problems(config: EvalConfig) -> list[Problem]:
    problems = load_problems(
        config.bench, split=config.split, columns=config.columns or None, limit=config.limit, rescale_rubrics=config.rescale_rubrics
    )
    if not config.problem_ids:
        return problems
    wanted = set(config.problem_ids)
    unknown = wanted - {p.id for p in problems}
    if unknown:
        raise ValueError(f"unknown problem ids for {config.bench}: {', '.join(sorted(unknown))}")
    return [p for p in problems if p.id in wanted]


def choose_task(given: Task | None, problems: list[Problem], console: Console) -> Task:
    """The task given, or the one the problems call for; said either way."""
    task, why = (given, "as given by --task") if given else infer_task(problems)
    console.print(f"task: [bold]{task}[/] ({why})")
    return task


def eval_scaffold(config: EvalConfig, task: Task, prover: Model, grader: ProofGrader | None) -> Scaffold:
    """The scaffold of an eval, in the benchmark's task: on answer benchmarks every scaffold asks
    for (and aggregates, compares, verifies) boxed final answers, which the answer checker reads."""
    params = {**config.scaffold_params, "task": task}
    if config.prompts is not None:
        params["prompts"] = config.prompts  # the command line's folder wins over a config file's
    roles = {"grader": grader} if grader is not None else {}
    return load_scaffold(config.scaffold, prover, params, **roles)


MUST_MATCH_ON_RESUME = (
    "bench", "data", "model", "graders", "variant", "aggregate", "grader_samples", "task", "scaffold", "scaffold_params",
    "prompts", "prompt_files", "sampling", "strip_self_evaluation", "rescale_rubrics", "thinking_in_prompt",
)


def check_resumable(run_dir: Path, config: dict) -> None:
    """A run directory may be resumed only by the same evaluation (more samples are fine)."""
    previous = read_manifest(run_dir)
    if previous is None:
        return
    before = previous.get("config", {})
    changed = [key for key in MUST_MATCH_ON_RESUME if before.get(key) != config.get(key)]
    if changed == ["graders"] and not before.get("graders"):
        return  # an ungraded run may be graded later in place
    if changed:
        raise ValueError(
            f"{run_dir} holds a run with different {', '.join(changed)} "
            f"({'; '.join(f'{k}: {before.get(k)!r} -> {config.get(k)!r}' for k in changed)}); "
            "choose another --out to start a new run"
        )


def run_eval(config: EvalConfig, out: Path | None, cache: CallCache | None, console: Console) -> Path:
    """Run (or resume) an evaluation; returns its run directory."""
    problems = select_problems(config)
    task = choose_task(config.task, problems, console)
    if config.graders or task == "answer":
        check_grading(task, config, problems)
    run_dir = Path(out or default_run_dir("eval", f"{config.bench}-{Path(config.model).stem}"))
    # with the prompt files' hashes, so that a resume cannot mix two wordings of scaffold or grader
    manifest_config = {**config.manifest(), "task": task, "problems": len(problems)}
    check_resumable(run_dir, manifest_config)
    prover = load_model(config.model, cache=cache, **config.call_limits())
    prover.defaults = config.sampling.merged_over(prover.defaults)  # command-line sampling wins
    graders = [load_model(name, cache=cache, **config.call_limits()) for name in config.graders]
    grader = build_grader(task, config, graders)
    if grader is None:
        console.print("[yellow]no --grader given: proofs are generated but not graded (grade them later with --grader)[/]")
    scaffold = eval_scaffold(config, task, prover, grader)
    store = SampleStore(run_dir / "samples.jsonl")
    run = Run(run_dir, "eval", manifest_config, models=[prover, *graders])
    write_problems(run_dir, problems)  # the viewer shows statements and marking schemes from here
    job = evaluate(problems, scaffold, grader, config.samples, store, config.concurrency, config.max_failures)
    try:
        records = run_job(run, store, job)
    except RunFailed as stopped:
        write_report(run.path, stopped.records, console)
        raise
    write_report(run.path, records, console)
    return run.path


def run_job(run: Run, store: SampleStore, job) -> list[SampleRecord]:
    """Await the pipeline `job` inside `run`, then close its models. A run stopped by its failures,
    or one whose every sample failed, raises RunFailed (manifest status "failed") holding the
    records in the store."""
    try:
        with run:
            records = run_models(run.models, checkpointed(run, job))
            check_outcome(summarize(records))
    except RunFailed as stopped:
        stopped.records = list(store.read().values())
        raise
    return records


async def checkpointed(run: Run, work):
    """Await `work` while the run's manifest is rewritten now and then (see Run.checkpoints)."""
    saving = asyncio.ensure_future(run.checkpoints())
    try:
        return await work
    finally:
        saving.cancel()


class GradeWrittenConfig(GradingConfig, RunLimits):
    """Grading of attempts written beforehand: who grades, how many at once, what is tolerated."""

    concurrency: int = Field(32, ge=1)


class GradeConfig(GradeWrittenConfig):
    """`qednano grade`: grade a file of existing generations (reference-harness format)."""

    file: str
    task: Task | None = None
    thinking_in_prompt: bool = Field(
        False, description="The model's chat template opened <think> in the prompt: a response without </think> is no proof."
    )


def grade_written(
    run: Run, written: list[tuple[Problem, Attempt]], task: Task, config: GradeWrittenConfig, cache: CallCache | None
) -> list[SampleRecord]:
    """Grade attempts written beforehand (a file's rows, human-rated responses) in `run`'s directory, resumably."""
    check_resumable(run.path, run.config)
    if config.graders or task == "answer":
        check_grading(task, config, [problem for problem, _ in written])
    graders = [load_model(name, cache=cache, **config.call_limits()) for name in config.graders]
    grader = build_grader(task, config, graders)
    work = [(problem, attempt.sample_index) for problem, attempt in written]
    replay = Replay([attempt for _, attempt in written])
    store = SampleStore(run.path / "samples.jsonl")
    run.models.extend(graders)
    write_problems(run.path, list({problem.id: problem for problem, _ in written}.values()))
    job = evaluate_pairs(work, replay, grader, store, config.concurrency, config.max_failures, generates=False)
    return run_job(run, store, job)


def run_grade_file(config: GradeConfig, out: Path | None, cache: CallCache | None, console: Console) -> Path:
    """Grade every row of a generations file; writes graded.jsonl (reference format) and a report."""
    rows = read_generations(config.file, thinking_in_prompt=config.thinking_in_prompt)
    task = choose_task(config.task, [row.problem for row in rows], console)
    if task == "proof" and not config.graders:
        raise ValueError("grading proofs needs a grader model: pass --grader NAME")
    manifest_config = {**config.manifest(), "task": task, "rows": len(rows), "bench": Path(config.file).name}
    run = Run(out or default_run_dir("grade", Path(config.file).stem), "grade", manifest_config)
    try:
        records = grade_written(run, [(row.problem, row.attempt) for row in rows], task, config, cache)
    except RunFailed as stopped:
        write_report(run.path, stopped.records, console)
        raise
    write_graded(run.path / "graded.jsonl", rows, records)
    write_report(run.path, records, console)
    return run.path


def write_report(run_dir: Path, records: list[SampleRecord], console: Console) -> None:
    """report.json and report.md beside the run's manifest; printed, ending with its failures.
    A report computed from the same samples, config and status (a resume that changed nothing)
    is reused rather than computed again."""
    manifest = read_manifest(run_dir) or {}
    source = report_source(run_dir, records, manifest)
    report = saved_report(run_dir, source)
    if report is None:
        report = build_report(records, manifest).model_copy(update={"source": source})
        (run_dir / "report.json").write_text(report.model_dump_json(indent=2))
        (run_dir / "report.md").write_text(render_markdown(report))
    render_terminal(report, console)
    print_failure_line(records, console)
    console.print(f"run directory: [bold]{escape(str(run_dir))}[/]")


def report_source(run_dir: Path, records: list[SampleRecord], manifest: dict) -> str:
    """A digest of what a run's report is computed from: the samples file (each record is the
    latest line of its sample), which samples the report covers, and the manifest's config and status."""
    samples = run_dir / "samples.jsonl"
    digest = hashlib.sha256(samples.read_bytes() if samples.is_file() else b"")
    covered = sorted(record.key for record in records)
    digest.update(json.dumps([covered, manifest.get("config"), manifest.get("status")], default=str).encode())
    return digest.hexdigest()


def saved_report(run_dir: Path, source: str) -> Report | None:
    """The run's report.json when it was computed from `source`, else None."""
    try:
        report = Report.model_validate_json((run_dir / "report.json").read_text())
    except (OSError, ValueError):
        return None
    return report if report.source == source and (run_dir / "report.md").is_file() else None


def print_failures(records: list[SampleRecord], console: Console) -> None:
    """The failures table and line, for commands whose report does not already hold the table."""
    summary = summarize(records)
    if summary.failed:
        rich_table("failures", FAILURE_HEADER, failure_rows(summary), console)
    print_failure_line(records, console)


def print_failure_line(records: list[SampleRecord], console: Console) -> None:
    summary = summarize(records)
    if summary.failed:
        console.print(Text(tally(summary), style="bold yellow"))
