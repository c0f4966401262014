"""What the pages show, computed from run records (the templates only lay it out)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from qednano.problems.record import Problem
from qednano.records.sample import SampleRecord
from qednano.viewer.grid import Cell, Row, build_rows, make_cell, sort_rows
from qednano.viewer.plots import Series
from qednano.viewer.rundirs import Match, RunDir, TrainingCompletion
from qednano.viewer.traces import Stage, stages


@dataclass
class SampleView:
    record: SampleRecord
    cell: Cell
    stages: list[Stage]
    tokens: int  # the scaffold's calls, prompt + completion
    cost_usd: float  # the scaffold's calls
    grade_cost_usd: float  # the grader's calls
    latency_s: float  # summed over the scaffold's calls (concurrent calls overlap in wall time)
    reasoning: str  # of the call that wrote the final proof (the last call that is not a judge's)
    criteria: list[tuple[str, float, float | None]] = field(default_factory=list)  # title, awarded, out of


JUDGE_ROLES = {"verify", "compare", "score", "grade"}


def final_reasoning(record: SampleRecord) -> str:
    writers = [s for s in record.attempt.steps if s.role not in JUDGE_ROLES and s.role != "summarize"]
    return writers[-1].completion.reasoning if writers else ""


def sample_view(record: SampleRecord, problem: Problem | None) -> SampleView:
    usage = record.attempt.usage
    out_of = {c.title: c.points for c in problem.criteria} if problem else {}
    criteria = [(title, points, out_of.get(title)) for title, points in (record.grade.criteria if record.grade else {}).items()]
    return SampleView(
        record=record,
        cell=make_cell(record),
        stages=stages(record.attempt),
        tokens=usage.prompt_tokens + usage.completion_tokens,
        cost_usd=record.attempt.cost_usd,
        grade_cost_usd=record.grade.cost_usd if record.grade else 0.0,
        latency_s=sum(s.completion.latency_s for s in record.attempt.steps),
        reasoning=final_reasoning(record),
        criteria=criteria,
    )


@dataclass
class ProblemPage:
    run: RunDir
    problem_id: str
    problem: Problem | None
    row: Row | None
    samples: list[SampleView]
    previous: str | None = None  # neighbouring problem ids in the run's grid order
    next: str | None = None


def problem_page(run: RunDir, problem_id: str) -> ProblemPage | None:
    """The problem's samples in `run`, or None when the run has no such problem."""
    records = sorted((r for r in run.samples() if r.problem_id == problem_id), key=lambda r: r.sample_index)
    problem = run.problems().get(problem_id)
    if not records and problem is None:
        return None
    rows = build_rows(records, run.problems())
    views = [sample_view(r, problem) for r in records]
    ids = [r.problem_id for r in sort_rows(build_rows(run.samples(), {}), "id")]
    at = ids.index(problem_id) if problem_id in ids else -1
    previous = ids[at - 1] if at > 0 else None
    following = ids[at + 1] if 0 <= at < len(ids) - 1 else None
    return ProblemPage(run, problem_id, problem, rows[0] if rows else None, views, previous, following)


@dataclass
class ComparedProblem:
    problem_id: str
    left: Row | None
    right: Row | None


def compared_problems(left: RunDir, right: RunDir) -> list[ComparedProblem]:
    """Every problem of either run, with each run's row (None where a run lacks it)."""
    rows_left = {r.problem_id: r for r in build_rows(left.samples(), left.problems())}
    rows_right = {r.problem_id: r for r in build_rows(right.samples(), right.problems())}
    ids = sorted(set(rows_left) | set(rows_right))
    return [ComparedProblem(pid, rows_left.get(pid), rows_right.get(pid)) for pid in ids]


@dataclass
class StepSummary:
    step: int
    count: int
    mean_reward: float | None
    statuses: dict[str, int]


def training_steps(completions: list[TrainingCompletion]) -> list[StepSummary]:
    """Per step: how many completions, their mean reward (over those with one), grade statuses."""
    by_step: dict[int, list[TrainingCompletion]] = defaultdict(list)
    for c in completions:
        by_step[c.step].append(c)
    summaries = []
    for step in sorted(by_step):
        group = by_step[step]
        rewards = [c.reward for c in group if c.reward is not None]
        statuses: dict[str, int] = defaultdict(int)
        for c in group:
            statuses[c.grade_status or "none"] += 1
        summaries.append(StepSummary(step, len(group), sum(rewards) / len(rewards) if rewards else None, dict(statuses)))
    return summaries


def completion_reward_series(steps: list[StepSummary]) -> list[Series]:
    """Mean reward of the logged completions per step, as a chart (when two or more steps have one)."""
    points = [(float(s.step), s.mean_reward) for s in steps if s.mean_reward is not None]
    return [Series("completions: mean reward", points)] if len(points) >= 2 else []


def prompt_text(prompt) -> str:
    """A logged prompt as text: a string as is, chat messages as `role: content` blocks."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        return "\n\n".join(f"**{m.get('role', '?')}**: {m.get('content', '')}" if isinstance(m, dict) else str(m) for m in prompt)
    return str(prompt)


def select_matches(matches: list[Match], method: str) -> list[Match]:
    chosen = [m for m in matches if not method or m.method == method]
    return sorted(chosen, key=lambda m: -m.similarity)
