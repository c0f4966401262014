"""What a training run writes into its run directory (the trainer's `output_dir`).

`manifest.json` (records.rundir.Run: command `train-sft` / `train-rl`, the recipe, versions),
`metrics.jsonl` (one object per logged step: TRL's log dict plus `step` and `tokens_per_s`),
`completions.jsonl` (RL only, see grpo.py), `checkpoint-N/` (written by TRL) and `model/`
(the final weights with the tokenizer). Only the main process writes: under several processes
every rank runs the same code, and TRL has already gathered what is logged. The models' meters
are not: each rank calls the graders for its own completions, so the manifest's totals are
summed over the ranks once training ends.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_utils import get_last_checkpoint

from qednano.llm.model import Meter
from qednano.records.rundir import Run


def append_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("a") as f:
        for row in rows:
            f.write(json.dumps(row, default=str) + "\n")


class MetricsFile(TrainerCallback):
    """Appends every log to metrics.jsonl, with training tokens per second since the last log."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.last = (time.monotonic(), 0)

    def on_train_begin(self, args, state, control, **kwargs) -> None:
        self.last = (time.monotonic(), state.num_input_tokens_seen)

    def on_log(self, args, state, control, logs=None, **kwargs) -> None:
        if not state.is_world_process_zero or not logs:
            return
        now, tokens = time.monotonic(), state.num_input_tokens_seen
        row = {"step": state.global_step, **logs}
        if tokens > self.last[1] and now > self.last[0]:
            row["tokens_per_s"] = round((tokens - self.last[1]) / (now - self.last[0]), 2)
        self.last = (now, tokens)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        append_jsonl(self.path, [row])


def last_checkpoint(run_dir: str | Path, resume: bool) -> str | None:
    """The newest checkpoint-N in the run directory when resuming, else None (a fresh start)."""
    folder = Path(run_dir)
    return get_last_checkpoint(str(folder)) if resume and folder.is_dir() else None


@contextmanager
def run_record(config: Any, command: str, settings: dict[str, Any], models: list | None = None):
    """The manifest of a training run, written by the main process only."""
    if config.process_index != 0:
        with nullcontext() as nothing:
            yield nothing
        return
    with Run(config.output_dir, command, settings, models=models) as run:
        yield run


def save_final(trainer: Any, tokenizer: Any, run_dir: str | Path) -> Path:
    """The trained model with its tokenizer in `model/` (save_model writes from the main process only)."""
    out = Path(run_dir) / "model"
    trainer.save_model(str(out))
    if trainer.args.process_index == 0:
        tokenizer.save_pretrained(str(out))
    return out


def sum_meters_over_processes(models: list) -> None:
    """Each model's meter becomes the sum of its meters in every process (one process: unchanged).

    A collective: every rank must call it, with the same models in the same order.
    """
    from accelerate.utils import gather_object

    per_process = gather_object([[model.meter for model in models]])
    for model, meters in zip(models, zip(*per_process, strict=True), strict=True):
        model.meter = sum(meters, Meter())


def run_training(trainer: Any, tokenizer: Any, command: str, settings: dict[str, Any], models: list | None = None) -> Any:
    """Train (resuming from the newest checkpoint when asked), save model/, keep the manifest; TRL's TrainOutput.

    The manifest's final write, when the run record closes, comes after the meters are summed.
    """
    config = trainer.args
    models = models or []
    with run_record(config, command, settings, models=models):
        result = trainer.train(resume_from_checkpoint=last_checkpoint(config.output_dir, config.resume))
        save_final(trainer, tokenizer, config.output_dir)
        sum_meters_over_processes(models)
    return result
