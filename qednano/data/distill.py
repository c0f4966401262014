"""`qednano data distill`: k teacher samples per problem, kept as sharded parquet.

Distillation is "generate" over a problem set: the teacher answers through the `direct`
scaffold (the same prompt the student is later evaluated with), inside the resumable pipeline,
so concurrency, load balancing over base URLs, retries and the call cache all come from the
layers below. Hybrid models served by vLLM/SGLang think when their model file (or `--thinking`)
sets `sampling.thinking`; models think in their own way (a `<think>` block or the server's
reasoning field), and both land in the completion's `reasoning`, apart from the proof.

The run directory holds `samples.jsonl` (every attempt, failures included), `problems.jsonl`,
and `data/train-XXXXX-of-YYYYY.parquet`: one row per sample with its reasoning, proof, finish
reason, status and token counts. Truncated samples (finish reason "length") and failed calls
are rows too, marked so; the filter and export steps drop them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import Field

from qednano.data.stage import GROWS, check_resumable, load_input, run_samples, write_problems
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


class DistillConfig(RunLimits):
    """Everything that determines a distillation run; stored in its manifest."""

    problems: str = Field(description="Problem source: benchmark, dataset, file, or a data run directory.")
    teacher: str = Field(description="The teacher model.")
    samples: int = Field(4, ge=1, description="Teacher samples per problem.")
    limit: int | None = Field(None, ge=1, description="Only the first N problems.")
    columns: dict[str, str] = Field(default_factory=dict, description="Column map for files, field -> column.")
    sampling: Sampling = Field(default_factory=Sampling, description="Overrides of the teacher's sampling settings.")
    shard_rows: int = Field(10_000, ge=1, description="Rows per parquet shard.")
    concurrency: int = Field(256, ge=1, description="Samples in flight (the model's own limit also applies).")


def sample_row(record: SampleRecord, problem: Problem) -> dict[str, Any]:
    """One parquet row: the teacher's reasoning and proof kept apart, with how the call ended."""
    final = record.attempt.steps[-1].completion if record.attempt.steps else None
    usage = record.attempt.usage
    return {
        "problem_id": record.problem_id,
        "sample_index": record.sample_index,
        "problem": problem.statement,
        "reasoning_content": final.reasoning if final else "",
        "proof": record.attempt.proof,
        "status": record.attempt.status,
        "finish_reason": record.attempt.finish_reason,
        "truncated": record.attempt.truncated,
        "error": record.attempt.error or "",
        "model": final.model if final else "",
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "source": problem.source,
        "category": problem.category,
    }


def as_dataset(rows: list[dict[str, Any]], features=None):
    """Rows as a `datasets.Dataset`; with `features`, an empty one still has every column."""
    from datasets import Dataset

    if not rows and features is not None:
        return Dataset.from_dict({name: [] for name in features}, features=features)
    return Dataset.from_list(rows, features=features)


def write_shards(folder: Path, rows: list[dict[str, Any]], shard_rows: int, features=None) -> list[Path]:
    """Rows as `train-XXXXX-of-YYYYY.parquet` files of at most `shard_rows` rows each (`features`: their types)."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("train-*.parquet"):
        old.unlink()  # a resumed run rewrites its shards whole
    count = max(1, math.ceil(len(rows) / shard_rows))
    paths = []
    for index in range(count):
        path = folder / f"train-{index:05d}-of-{count:05d}.parquet"
        as_dataset(rows[index * shard_rows : (index + 1) * shard_rows], features).to_parquet(str(path))
        paths.append(path)
    return paths


def run_distill(config: DistillConfig, out: Path | None, cache: CallCache | None) -> tuple[Path, list[SampleRecord]]:
    """Distil (or resume distilling) into a run directory; returns it and the records."""
    problems = load_input(config.problems, config.limit, config.columns)
    run_dir = Path(out or default_run_dir("data-distill", Path(config.teacher).stem))
    manifest_config = {**config.model_dump(mode="json"), "problem_count": len(problems)}
    check_resumable(run_dir, manifest_config, may_change=(*GROWS, "shard_rows"))
    teacher = load_model(config.teacher, cache=cache, **config.call_limits())
    teacher.defaults = config.sampling.merged_over(teacher.defaults)  # command-line sampling wins
    store = SampleStore(run_dir / "samples.jsonl")
    with Run(run_dir, "data-distill", manifest_config, models=[teacher]):
        write_problems(run_dir, problems)
        job = evaluate(problems, Direct(DirectConfig(), Roles(teacher)), None, config.samples, store, config.concurrency, config.max_failures)
        records = run_samples([teacher], job)
        by_id = {p.id: p for p in problems}
        write_shards(run_dir / "data", [sample_row(r, by_id[r.problem_id]) for r in records], config.shard_rows)
    return run_dir, records
