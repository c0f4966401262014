"""`qednano data filter`: keep the graded samples at or above a score, with a reason for every drop.

A sample is kept only when its generation succeeded, was not cut off, and a grader gave it a
valid grade of at least `min_score`. Everything else is dropped with its reason in
`dropped.jsonl`, and `summary.json` counts both, so a dataset card can say what was removed
and why. Kept records go to `samples.jsonl`, their problems to `problems.jsonl`.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from pydantic import BaseModel, Field

from qednano.data.stage import check_resumable, read_stage, write_jsonl, write_problems
from qednano.records.rundir import Run, default_run_dir
from qednano.records.sample import SampleRecord
from qednano.records.store import SampleStore


class FilterConfig(BaseModel):
    run: str = Field(description="A graded run directory (data grade or data difficulty).")
    min_score: float = Field(6.0, ge=0, description="Lowest grade (points) a kept sample may have.")
    max_per_problem: int | None = Field(None, ge=1, description="Keep at most this many samples per problem (best first).")


def drop_reason(record: SampleRecord, min_score: float) -> str | None:
    """Why a sample is not training data, or None when it is."""
    attempt, grade = record.attempt, record.grade
    if attempt.status == "failed":
        return "generation failed"
    if attempt.truncated:
        return "truncated (finish reason length)"
    if attempt.status == "no_proof":
        return "no proof written"
    if grade is None or grade.status != "graded" or grade.score is None:
        return "ungraded"
    if grade.score < min_score:
        return f"score below {min_score:g}"
    return None


def choose(records: list[SampleRecord], config: FilterConfig) -> tuple[list[SampleRecord], list[dict]]:
    """(kept records, one {problem_id, sample_index, reason} per dropped one)."""
    kept: list[SampleRecord] = []
    dropped: list[dict] = []
    for record in records:
        reason = drop_reason(record, config.min_score)
        if reason is None:
            kept.append(record)
        else:
            dropped.append({"problem_id": record.problem_id, "sample_index": record.sample_index, "reason": reason})
    if config.max_per_problem is not None:
        kept.sort(key=lambda r: (r.problem_id, -(r.grade.score or 0.0), r.sample_index))
        seen: Counter[str] = Counter()
        capped = []
        for record in kept:
            seen[record.problem_id] += 1
            if seen[record.problem_id] <= config.max_per_problem:
                capped.append(record)
            else:
                dropped.append({"problem_id": record.problem_id, "sample_index": record.sample_index,
                                "reason": f"over {config.max_per_problem} per problem"})
        kept = capped
    return kept, dropped


def run_filter(config: FilterConfig, out: Path | None) -> tuple[Path, dict]:
    records, problems, _ = read_stage(config.run, ("data-grade", "data-difficulty", "eval"))
    run_dir = Path(out or default_run_dir("data-filter", Path(config.run).name))
    manifest_config = config.model_dump(mode="json")
    check_resumable(run_dir, manifest_config, may_change=())
    kept, dropped = choose(records, config)
    summary = {"samples": len(records), "kept": len(kept), "dropped": len(dropped),
               "dropped_by_reason": dict(Counter(d["reason"] for d in dropped).most_common())}
    with Run(run_dir, "data-filter", manifest_config):
        SampleStore(run_dir / "samples.jsonl").compact(kept)
        write_jsonl(run_dir / "dropped.jsonl", dropped)
        kept_ids = {r.problem_id for r in kept}
        write_problems(run_dir, [p for p in problems if p.id in kept_ids])
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return run_dir, summary
