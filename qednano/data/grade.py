"""`qednano data grade`: grade the proofs of a distillation run with any grader or panel.

This is `qednano grade` for a run directory: the attempts are replayed from the distillation
run's `samples.jsonl` (no teacher call is made) and graded through the resumable pipeline,
with the grader built by `grading.build` (one model, several samples of one, or a panel).
The graded records go to a new run directory, so one distillation can be graded by several
graders side by side; failed and truncated samples are carried along, never graded as zero.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from qednano.data.stage import check_resumable, read_stage, run_samples, write_problems
from qednano.grading.build import GradingConfig, build_grader
from qednano.llm.cache import CallCache
from qednano.llm.registry import load_model
from qednano.records.failures import RunLimits
from qednano.records.pipeline import Replay, evaluate_pairs
from qednano.records.rundir import Run, default_run_dir
from qednano.records.sample import SampleRecord
from qednano.records.store import SampleStore

GRADABLE = ("data-distill", "data-grade", "data-difficulty", "eval")


class DataGradeConfig(GradingConfig, RunLimits):
    run: str = Field(description="The run directory whose samples are graded.")
    concurrency: int = Field(64, ge=1)


def run_data_grade(config: DataGradeConfig, out: Path | None, cache: CallCache | None) -> tuple[Path, list[SampleRecord]]:
    if not config.graders:
        raise ValueError("grading proofs needs a grader model: pass -g NAME (repeat it for a panel)")
    records, problems, _ = read_stage(config.run, GRADABLE)
    run_dir = Path(out or default_run_dir("data-grade", Path(config.run).name))
    manifest_config = {**config.model_dump(mode="json"), "samples": len(records)}
    check_resumable(run_dir, manifest_config)
    by_id = {p.id: p for p in problems}
    missing = sorted({r.problem_id for r in records} - by_id.keys())
    if missing:
        raise ValueError(f"{config.run}/problems.jsonl lacks problems {', '.join(missing[:5])} that samples.jsonl grades")
    graders = [load_model(name, cache=cache, **config.call_limits()) for name in config.graders]
    grader = build_grader("proof", config, graders)
    # a regraded run's old grades must not count: attempts are replayed without them
    replay = Replay([record.attempt for record in records])
    work = [(by_id[r.problem_id], r.sample_index) for r in records]
    with Run(run_dir, "data-grade", manifest_config, models=graders):
        write_problems(run_dir, problems)
        job = evaluate_pairs(work, replay, grader, SampleStore(run_dir / "samples.jsonl"), config.concurrency, config.max_failures)
        graded = run_samples(graders, job)
    return run_dir, graded
