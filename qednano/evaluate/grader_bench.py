"""`qednano grader-bench`: how closely a grader agrees with human graders.

Reads responses that humans graded (IMO-GradingBench CSV: Problem, Solution, Grading
guidelines, Response, Points; or a rated-proof dataset such as wenjiema02/ProofBench with its
`expert_rating`), grades every response with the grader under test through the same resumable
pipeline as `qednano eval`, and reports agreement: MAE, exact and bucket accuracy,
correlations, within-problem ordering and GRPO-advantage agreement.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, Field
from rich.console import Console
from rich.markup import escape

from qednano.evaluate.commands import GradeWrittenConfig, grade_written, print_failures
from qednano.evaluate.imported import response_attempt
from qednano.grading.agreement import agreement, render_markdown, render_terminal
from qednano.llm.cache import CallCache
from qednano.problems.loaders import load_rated_responses
from qednano.problems.record import Problem
from qednano.records.failures import RunFailed
from qednano.records.rundir import Run, default_run_dir
from qednano.records.sample import SampleRecord


class GraderBenchConfig(GradeWrittenConfig):
    data: str = Field(description="IMO-GradingBench CSV, or a rated-proof dataset (name or file).")
    graders: list[str] = Field(min_length=1, description="Grader models; several form a panel.")
    limit: int | None = Field(None, ge=1, description="Only the first N responses.")
    columns: dict[str, str] = Field(default_factory=dict, description="Column map, field -> column (as for eval).")


class Rated(BaseModel):
    problem: Problem
    response: str
    human: float
    sample_index: int  # the response's index among those of its problem


def rated_responses(data: str, limit: int | None, columns: dict[str, str] | None = None) -> list[Rated]:
    """The human-rated responses of `data` (IMO-GradingBench CSVs are recognised by their header)."""
    seen: dict[str, int] = {}
    rated = []
    for response in load_rated_responses(data, limit=limit, columns=columns or None):
        problem, human = response.problem, response.points
        index = seen.get(problem.id, 0)
        seen[problem.id] = index + 1
        rated.append(Rated(problem=problem, response=response.response, human=human, sample_index=index))
    return rated


def run_grader_bench(config: GraderBenchConfig, out: Path | None, cache: CallCache | None, console: Console) -> Path:
    rows = rated_responses(config.data, config.limit, config.columns)
    if not rows:
        raise ValueError(f"{config.data}: no rated responses to grade")
    manifest_config = {**config.model_dump(mode="json"), "responses": len(rows)}
    run = Run(out or default_run_dir("grader-bench", Path(config.data).stem), "grader-bench", manifest_config)
    written = [(row.problem, response_attempt(row.problem, row.sample_index, row.response, scaffold="human-rated")) for row in rows]
    try:
        records = grade_written(run, written, "proof", config, cache)
    except RunFailed as stopped:
        print_failures(stopped.records, console)
        raise
    write_agreement(run.path, rows, records, console)
    return run.path


def write_agreement(run_dir: Path, rows: list[Rated], records: list[SampleRecord], console: Console) -> None:
    pairs = [(row.problem.id, row.human, record.score) for row, record in zip(rows, records, strict=True)]
    report = agreement(pairs)
    (run_dir / "agreement.json").write_text(report.model_dump_json(indent=2))
    (run_dir / "agreement.md").write_text(render_markdown(report))
    with (run_dir / "ratings.jsonl").open("w") as handle:
        for row, record in zip(rows, records, strict=True):
            status = record.grade.status if record.grade else None
            line = {"problem_id": row.problem.id, "index": row.sample_index, "human": row.human, "grader": record.score, "status": status}
            handle.write(json.dumps(line) + "\n")
    render_terminal(report, console)
    print_failures(records, console)
    console.print(f"run directory: [bold]{escape(str(run_dir))}[/]")
