"""`qednano data rubrics`: a 7-point marking scheme per problem, written by a model and checked.

The model sees the statement and reference solution (`prompts/rubric.txt`) and answers with
checkpoints (title, points, description), zero-credit items and deductions. A scheme counts only
if its checkpoints are all described and their points add up to exactly 7; otherwise it is
redrawn (at most `tries` times, see `structured.JsonAsk`) and, failing that, recorded as failed
in `rubrics.jsonl` and left out of `kept_ids.txt`. Problems passed on carry the scheme twice:
as `criteria` (what the `strict`/`advisory` graders read) and as `grading_guidelines` text
with the zero-credit items and deductions too (what the `reference` grader and the RL export read).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, model_validator

from qednano.data.stage import check_resumable, load_input, write_jsonl, write_problems
from qednano.data.structured import JsonAsk, parse_as
from qednano.llm.cache import CallCache
from qednano.llm.registry import load_model
from qednano.llm.types import Messages, Sampling
from qednano.problems.record import Criterion, Problem
from qednano.prompts import fill, load_prompt
from qednano.records.pipeline import evaluate, run_models
from qednano.records.rundir import Run, default_run_dir
from qednano.records.sample import SampleRecord
from qednano.records.store import SampleStore

TOTAL_POINTS = 7


def _described(text: str) -> str:
    if not text.strip():
        raise ValueError("is empty; every item needs words")
    return text.strip()


Described = Annotated[str, AfterValidator(_described)]


class Checkpoint(BaseModel):
    title: Described
    points: int = Field(ge=1, le=TOTAL_POINTS)
    description: Described


class Deduction(BaseModel):
    description: Described
    points: int = Field(ge=1, le=TOTAL_POINTS)


class Rubric(BaseModel):
    """A marking scheme as the model must write it; invalid ones never leave this stage."""

    checkpoints: list[Checkpoint] = Field(min_length=1)
    zero_credit: list[str] = Field(default_factory=list)
    deductions: list[Deduction] = Field(default_factory=list)

    @model_validator(mode="after")
    def _adds_up(self) -> Rubric:
        total = sum(c.points for c in self.checkpoints)
        if total != TOTAL_POINTS:
            raise ValueError(f"checkpoint points add up to {total}, not {TOTAL_POINTS}")
        return self

    def as_text(self) -> str:
        lines = [f"- {c.title} ({c.points} points): {c.description}" for c in self.checkpoints]
        if self.zero_credit:
            lines += ["", "No credit for:", *(f"- {item}" for item in self.zero_credit)]
        if self.deductions:
            lines += ["", "Deductions:", *(f"- {d.description} (-{d.points})" for d in self.deductions)]
        return "\n".join(lines)

    def applied_to(self, problem: Problem) -> Problem:
        criteria = tuple(Criterion(title=c.title, points=c.points, description=c.description) for c in self.checkpoints)
        return problem.model_copy(update={"criteria": criteria, "grading_guidelines": self.as_text()})


class RubricResult(BaseModel):
    """One line of `rubrics.jsonl`: the scheme of a problem, or why none was kept."""

    problem_id: str
    status: str  # ok | failed
    tries: int
    rubric: Rubric | None = None
    error: str | None = None


class RubricsConfig(BaseModel):
    problems: str = Field(description="Problem source: benchmark, dataset, file, or a data run directory.")
    model: str = Field(description="The model that writes marking schemes.")
    tries: int = Field(3, ge=1, description="Answers drawn per problem before its scheme is recorded as failed.")
    limit: int | None = Field(None, ge=1)
    columns: dict[str, str] = Field(default_factory=dict)
    sampling: Sampling = Field(default_factory=Sampling)
    concurrency: int = Field(64, ge=1)


def rubric_messages(problem: Problem) -> Messages:
    solution = problem.reference_solution.strip() or "(none given: work out the intended solution yourself)"
    prompt = fill(load_prompt(__file__, "rubric"), problem=problem.statement, solution=solution)
    return [{"role": "user", "content": prompt}]


def result_of(record: SampleRecord) -> RubricResult:
    attempt = record.attempt
    rubric = Rubric.model_validate_json(attempt.proof) if attempt.status == "ok" else None
    return RubricResult(problem_id=record.problem_id, status=attempt.status, tries=len(attempt.steps), rubric=rubric, error=attempt.error)


def run_rubrics(config: RubricsConfig, out: Path | None, cache: CallCache | None) -> tuple[Path, list[RubricResult]]:
    problems = load_input(config.problems, config.limit, config.columns)
    run_dir = Path(out or default_run_dir("data-rubrics", Path(config.model).stem))
    manifest_config = {**config.model_dump(mode="json"), "problem_count": len(problems)}
    check_resumable(run_dir, manifest_config)
    writer = load_model(config.model, cache=cache)
    writer.defaults = config.sampling.merged_over(writer.defaults)
    ask = JsonAsk("rubric", writer, rubric_messages, partial(parse_as, Rubric), tries=config.tries)
    with Run(run_dir, "data-rubrics", manifest_config, models=[writer]):
        job = evaluate(problems, ask, None, 1, SampleStore(run_dir / "samples.jsonl"), concurrency=config.concurrency)
        results = [result_of(record) for record in run_models([writer], job)]
        write_jsonl(run_dir / "rubrics.jsonl", results)
        by_id = {p.id: p for p in problems}
        schemed = [r.rubric.applied_to(by_id[r.problem_id]) if r.rubric else by_id[r.problem_id] for r in results]
        write_problems(run_dir, schemed, kept=[r.problem_id for r in results if r.rubric is not None])
    return run_dir, results
