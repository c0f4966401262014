"""`qednano data export`: a filtered or measured run as a training dataset, with its card.

Two schemas, after the QED-Nano datasets:
- SFT (from a `data filter` run), one row per kept proof: `problem`, `reasoning_content`,
  `proof`, `messages` (the prompt the teacher saw, then its answer with the reasoning in a
  `<think>` block), `source`, `category`, `competition`, and the grade columns `score`,
  `max_score`, `grader`; plus `problem_id`, `sample_index` and the `teacher`.
- RL (from a `data difficulty` run), one row per kept problem: `problem`, `solution` (the
  reference, "" when unknown), `rubrics` (the marking scheme text), `source`, `category`,
  `competition`, `scores`, `rewards` (score / max), `num_rewards`, `reward_mean`, `reward_std`;
  plus `problem_id`.

The export folder holds `data/train-XXXXX-of-YYYYY.parquet`, `dataset/` (`Dataset.save_to_disk`,
what `qednano train sft` / `train rl` load), `README.md` (the dataset card, see `card.py`) and
`manifest.json`. Rows whose problem a decontamination run matched are dropped and counted.
`--push-to-hub` uploads the card and the dataset; nothing is uploaded without it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from qednano.data.card import dataset_card, decontamination_matches
from qednano.data.difficulty import ProblemDifficulty
from qednano.data.distill import as_dataset, write_shards
from qednano.data.stage import read_stage, read_stage_file
from qednano.problems.record import Problem
from qednano.records.rundir import Run, default_run_dir
from qednano.records.sample import SampleRecord

Kind = Literal["sft", "rl"]
SOURCE_COMMANDS: dict[str, tuple[str, ...]] = {"sft": ("data-filter",), "rl": ("data-difficulty",)}


class ExportConfig(BaseModel):
    run: str = Field(description="A data filter run (sft) or data difficulty run (rl).")
    kind: Kind = Field(description="sft or rl.")
    decontamination: str | None = Field(None, description="A decontamination run directory: its matched problems are dropped.")
    reasoning_in_messages: bool = Field(True, description="SFT: put the teacher's reasoning in the assistant turn as <think>...</think>.")
    shard_rows: int = Field(10_000, ge=1)
    push_to_hub: str | None = Field(None, description="Hugging Face dataset repo to upload to (only when given).")
    private: bool = Field(True, description="Create the Hub repo private.")


def features(kind: Kind):
    """The column types of each schema, fixed so that every export (even an empty one) has them."""
    from datasets import Features, Sequence, Value

    text, number = Value("string"), Value("float64")
    shared = {"problem_id": text, "problem": text, "source": text, "category": text, "competition": text}
    if kind == "sft":
        message = {"role": text, "content": text}
        return Features({**shared, "sample_index": Value("int64"), "reasoning_content": text, "proof": text, "messages": [message],
                         "score": number, "max_score": number, "grader": text, "teacher": text})
    return Features({**shared, "solution": text, "rubrics": text, "scores": Sequence(number), "rewards": Sequence(number),
                     "num_rewards": Value("int64"), "reward_mean": number, "reward_std": number})


def competition(problem: Problem) -> str:
    return problem.metadata.get("competition", problem.source)


def assistant_turn(reasoning: str, proof: str, with_reasoning: bool) -> str:
    if with_reasoning and reasoning.strip():
        return f"<think>\n{reasoning.strip()}\n</think>\n\n{proof}"
    return proof


def sft_row(record: SampleRecord, problem: Problem, with_reasoning: bool) -> dict[str, Any]:
    final = record.attempt.steps[-1]  # the call whose answer is the proof
    reasoning = final.completion.reasoning
    messages = [*final.messages, {"role": "assistant", "content": assistant_turn(reasoning, record.attempt.proof, with_reasoning)}]
    return {
        "problem_id": record.problem_id, "sample_index": record.sample_index,
        "problem": problem.statement, "reasoning_content": reasoning, "proof": record.attempt.proof, "messages": messages,
        "source": problem.source, "category": problem.category, "competition": competition(problem),
        "score": record.grade.score, "max_score": record.grade.max_score, "grader": record.grade.grader,
        "teacher": final.completion.model,
    }


def rl_row(measured: ProblemDifficulty, problem: Problem) -> dict[str, Any]:
    rewards = measured.rewards
    return {
        "problem_id": problem.id, "problem": problem.statement, "solution": problem.reference_solution,
        "rubrics": problem.grading_guidelines or problem.marking_scheme_text(),  # guidelines hold deductions too
        "source": problem.source, "category": problem.category, "competition": competition(problem),
        "scores": measured.scores, "rewards": rewards, "num_rewards": len(rewards),
        "reward_mean": measured.mean / measured.max_score, "reward_std": measured.std / measured.max_score,
    }


def build_rows(config: ExportConfig) -> tuple[list[dict[str, Any]], dict]:
    """The rows of the dataset and the source run's manifest."""
    records, problems, manifest = read_stage(config.run, SOURCE_COMMANDS[config.kind])
    by_id = {p.id: p for p in problems}
    if config.kind == "sft":
        return [sft_row(r, by_id[r.problem_id], config.reasoning_in_messages) for r in records], manifest
    measured = read_stage_file(Path(config.run) / "difficulty.jsonl", ProblemDifficulty)
    return [rl_row(m, by_id[m.problem_id]) for m in measured if m.kept], manifest


def run_export(config: ExportConfig, out: Path | None) -> tuple[Path, int]:
    """Write the dataset (parquet shards, save_to_disk folder, card); returns the folder and row count."""
    rows, _ = build_rows(config)
    matches = decontamination_matches(Path(config.decontamination)) if config.decontamination else None
    contaminated = {m["train_id"] for m in matches or []}
    kept = [row for row in rows if row["problem_id"] not in contaminated]
    out_dir = Path(out or default_run_dir("data-export", f"{config.kind}-{Path(config.run).name}"))
    counts = {"rows": len(kept), "problems": len({r["problem_id"] for r in kept}), "dropped_as_contaminated": len(rows) - len(kept)}
    with Run(out_dir, "data-export", config.model_dump(mode="json")) as run:
        write_shards(out_dir / "data", kept, config.shard_rows, features(config.kind))
        dataset = as_dataset(kept, features(config.kind))
        dataset.save_to_disk(str(out_dir / "dataset"), num_shards=1 if not kept else None)  # an empty one needs its one shard
        card = dataset_card(run.manifest("finished"), counts, matches)
        (out_dir / "README.md").write_text(card)
        (out_dir / "export.json").write_text(json.dumps(counts, indent=2))
        if config.push_to_hub:
            push(dataset, card, config.push_to_hub, config.private)
    return out_dir, len(kept)


def push(dataset, card: str, repo: str, private: bool) -> None:
    """Upload the card, then the dataset (which adds its schema to the card's metadata)."""
    from huggingface_hub import DatasetCard, create_repo

    create_repo(repo, repo_type="dataset", private=private, exist_ok=True)
    DatasetCard(card).push_to_hub(repo)
    dataset.push_to_hub(repo, private=private)
