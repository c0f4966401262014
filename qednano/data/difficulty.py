"""`qednano data difficulty`: k graded policy rollouts per problem, to keep problems RL can learn from.

GRPO learns from the differences between the rewards of one problem's samples: a problem whose
k rollouts all score the same (always solved, never solved) gives every sample a zero
advantage and teaches nothing. This stage runs the policy k times per problem through the
pipeline, grades each rollout, and stores per problem the scores, their mean and spread in
`difficulty.jsonl`; problems without spread are dropped with the reason, the rest are written
to `kept_ids.txt`. Only valid grades count: failed and ungraded rollouts are counted apart,
and a problem with fewer than `min_graded` valid grades is dropped for that reason.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

from pydantic import BaseModel, Field

from qednano.data.stage import GROWS, check_resumable, load_input, run_samples, write_jsonl, write_problems
from qednano.grading.build import GradingConfig, build_grader
from qednano.llm.cache import CallCache
from qednano.llm.registry import load_model
from qednano.llm.types import Sampling
from qednano.problems.record import Problem
from qednano.records.failures import RunLimits
from qednano.records.pipeline import evaluate
from qednano.records.rundir import Run, default_run_dir
from qednano.records.sample import SampleRecord
from qednano.records.store import SampleStore
from qednano.scaffolds.config import Roles
from qednano.scaffolds.direct import Direct, DirectConfig


class DifficultyConfig(GradingConfig, RunLimits):
    problems: str = Field(description="Problem source: benchmark, dataset, file, or a data run directory.")
    policy: str = Field(description="The policy model whose rollouts measure difficulty.")
    samples: int = Field(8, ge=2, description="Rollouts per problem.")
    min_graded: int = Field(2, ge=2, description="Valid grades a problem needs to be judged at all.")
    limit: int | None = Field(None, ge=1)
    columns: dict[str, str] = Field(default_factory=dict)
    sampling: Sampling = Field(default_factory=Sampling)
    concurrency: int = Field(64, ge=1)


class ProblemDifficulty(BaseModel):
    """One line of `difficulty.jsonl`."""

    problem_id: str
    scores: list[float]  # valid grades, in sample order
    max_score: float = 7.0
    mean: float | None = None
    std: float | None = None  # population standard deviation, as GRPO's group normalisation uses
    solve_rate: float | None = None  # share of rollouts with full marks
    failed: int = 0  # rollouts whose generation failed
    ungraded: int = 0  # rollouts the grader never gave a valid grade
    kept: bool
    reason: str | None = None  # why a dropped problem was dropped

    @property
    def rewards(self) -> list[float]:
        return [score / self.max_score for score in self.scores]


def measure(problem_id: str, records: list[SampleRecord], min_graded: int) -> ProblemDifficulty:
    """Scores, mean and spread of one problem's rollouts, and whether it gives a learning signal."""
    scores = [r.score for r in records if r.score is not None]
    failed = sum(r.attempt.status == "failed" for r in records)
    top = next((r.grade.max_score for r in records if r.grade is not None), 7.0)
    found = {"problem_id": problem_id, "scores": scores, "max_score": top, "failed": failed,
             "ungraded": len(records) - failed - len(scores)}
    if len(scores) < min_graded:
        return ProblemDifficulty(**found, kept=False, reason=f"only {len(scores)} of {len(records)} rollouts validly graded")
    stats = {"mean": statistics.fmean(scores), "std": statistics.pstdev(scores), "solve_rate": sum(s >= top for s in scores) / len(scores)}
    if min(scores) == max(scores):
        if scores[0] >= top:
            reason = f"always solved ({len(scores)}/{len(scores)} at {top:g})"
        elif scores[0] == 0:
            reason = f"never solved (all {len(scores)} scored 0)"
        else:
            reason = f"no spread (all {len(scores)} scored {scores[0]:g})"
        return ProblemDifficulty(**found, **stats, kept=False, reason=reason)
    return ProblemDifficulty(**found, **stats, kept=True)


def summarize(problems: list[Problem], records: list[SampleRecord], min_graded: int) -> list[ProblemDifficulty]:
    by_problem: dict[str, list[SampleRecord]] = defaultdict(list)
    for record in records:
        by_problem[record.problem_id].append(record)
    return [measure(p.id, sorted(by_problem[p.id], key=lambda r: r.sample_index), min_graded) for p in problems]


def run_difficulty(config: DifficultyConfig, out: Path | None, cache: CallCache | None) -> tuple[Path, list[ProblemDifficulty]]:
    if not config.graders:
        raise ValueError("difficulty needs graded rollouts: pass -g NAME (repeat it for a panel)")
    problems = load_input(config.problems, config.limit, config.columns)
    run_dir = Path(out or default_run_dir("data-difficulty", Path(config.policy).stem))
    manifest_config = {**config.model_dump(mode="json"), "problem_count": len(problems)}
    check_resumable(run_dir, manifest_config, may_change=(*GROWS, "min_graded"))
    policy = load_model(config.policy, cache=cache, **config.call_limits())
    policy.defaults = config.sampling.merged_over(policy.defaults)
    graders = [load_model(name, cache=cache, **config.call_limits()) for name in config.graders]
    grader = build_grader("proof", config, graders)
    with Run(run_dir, "data-difficulty", manifest_config, models=[policy, *graders]):
        store = SampleStore(run_dir / "samples.jsonl")
        job = evaluate(problems, Direct(DirectConfig(), Roles(policy)), grader, config.samples, store, config.concurrency, config.max_failures)
        results = summarize(problems, run_samples([policy, *graders], job), config.min_graded)
        write_jsonl(run_dir / "difficulty.jsonl", results)
        write_problems(run_dir, problems, kept=[r.problem_id for r in results if r.kept])
    return run_dir, results
