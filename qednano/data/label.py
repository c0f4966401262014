"""`qednano data label`: optional LLM quality labels for raw problems, and filters on them.

A model reads each problem with its solution (`prompts/label.txt`) and labels it: is the
statement incomplete, how hard is it (1-10), does it ask for a proof or only a computation, is
the given solution correct, wrong or missing. Answers are validated and redrawn like rubrics
(`structured.JsonAsk`). `labels.jsonl` holds every problem's labels and whether it was kept,
with the reasons when not; `kept_ids.txt` lists the kept problems, for the next stage.
A problem whose labelling failed is dropped with that reason: an unjudged problem does not
slip through a filter.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from qednano.data.stage import GROWS, check_resumable, load_input, write_jsonl, write_problems
from qednano.data.structured import JsonAsk, parse_as
from qednano.llm.cache import CallCache
from qednano.llm.registry import load_model
from qednano.llm.types import Messages, Sampling
from qednano.problems.record import Problem
from qednano.prompts import fill, load_prompt
from qednano.records.pipeline import evaluate, run_models
from qednano.records.rundir import Run, default_run_dir
from qednano.records.sample import SampleRecord
from qednano.records.store import SampleStore


class Labels(BaseModel):
    incomplete_statement: bool
    difficulty: int = Field(ge=1, le=10)
    kind: Literal["proof", "computational"]
    solution: Literal["correct", "wrong", "missing"]


class LabelFilters(BaseModel):
    """Which labelled problems to keep (all of them, by default)."""

    drop_incomplete: bool = Field(False, description="Drop problems whose statement is incomplete.")
    min_difficulty: int = Field(1, ge=1, le=10)
    max_difficulty: int = Field(10, ge=1, le=10)
    proofs_only: bool = Field(False, description="Drop computational problems.")
    drop_bad_solution: bool = Field(False, description="Drop problems whose solution is wrong or missing.")

    def reasons(self, labels: Labels) -> list[str]:
        """Why these labels fail the filters (empty: keep)."""
        reasons = []
        if self.drop_incomplete and labels.incomplete_statement:
            reasons.append("incomplete statement")
        if not self.min_difficulty <= labels.difficulty <= self.max_difficulty:
            reasons.append(f"difficulty {labels.difficulty} outside {self.min_difficulty}-{self.max_difficulty}")
        if self.proofs_only and labels.kind != "proof":
            reasons.append("computational, not a proof problem")
        if self.drop_bad_solution and labels.solution != "correct":
            reasons.append(f"solution {labels.solution}")
        return reasons


class LabelResult(BaseModel):
    """One line of `labels.jsonl`."""

    problem_id: str
    labels: Labels | None = None
    error: str | None = None  # why labelling failed
    kept: bool
    reasons: list[str] = Field(default_factory=list)


class LabelConfig(BaseModel):
    problems: str = Field(description="Problem source: benchmark, dataset, file, or a data run directory.")
    model: str = Field(description="The labelling model.")
    filters: LabelFilters = Field(default_factory=LabelFilters)
    tries: int = Field(3, ge=1)
    limit: int | None = Field(None, ge=1)
    columns: dict[str, str] = Field(default_factory=dict)
    sampling: Sampling = Field(default_factory=Sampling)
    concurrency: int = Field(64, ge=1)


def label_messages(problem: Problem) -> Messages:
    solution = problem.reference_solution.strip() or "(none given)"
    return [{"role": "user", "content": fill(load_prompt(__file__, "label"), problem=problem.statement, solution=solution)}]


def judge(record: SampleRecord, filters: LabelFilters) -> LabelResult:
    if record.attempt.status != "ok":
        error = record.attempt.error or "no labels"
        return LabelResult(problem_id=record.problem_id, error=error, kept=False, reasons=[f"not labelled: {error}"])
    labels = Labels.model_validate_json(record.attempt.proof)
    reasons = filters.reasons(labels)
    return LabelResult(problem_id=record.problem_id, labels=labels, kept=not reasons, reasons=reasons)


def run_label(config: LabelConfig, out: Path | None, cache: CallCache | None) -> tuple[Path, list[LabelResult]]:
    problems = load_input(config.problems, config.limit, config.columns)
    run_dir = Path(out or default_run_dir("data-label", Path(config.model).stem))
    manifest_config = {**config.model_dump(mode="json"), "problem_count": len(problems)}
    check_resumable(run_dir, manifest_config, may_change=(*GROWS, "filters"))  # refiltering replays the labels
    labeller = load_model(config.model, cache=cache)
    labeller.defaults = config.sampling.merged_over(labeller.defaults)
    ask = JsonAsk("label", labeller, label_messages, partial(parse_as, Labels), tries=config.tries)
    with Run(run_dir, "data-label", manifest_config, models=[labeller]):
        job = evaluate(problems, ask, None, 1, SampleStore(run_dir / "samples.jsonl"), concurrency=config.concurrency)
        results = [judge(record, config.filters) for record in run_models([labeller], job)]
        write_jsonl(run_dir / "labels.jsonl", results)
        write_problems(run_dir, problems, kept=[r.problem_id for r in results if r.kept])
    return run_dir, results
