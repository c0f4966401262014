"""Stage 1: supervised fine-tuning on proofs with their reasoning, with TRL's SFTTrainer.

The data are conversational prompt-completion rows (data.py), so TRL computes the loss on the
completion only without relying on `{% generation %}` markers in the chat template (SmolLM2's
template has none). A killed run resumes from its newest checkpoint in the same run directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trl import SFTConfig, SFTTrainer

from qednano.train.data import read_table, sft_rows
from qednano.train.policy import load_policy, template_writes_opener
from qednano.train.runfiles import MetricsFile, run_training


@dataclass
class SFTRecipe(SFTConfig):
    """TRL's SFTConfig plus what qednano needs to find the model and the data."""

    model: str = field(
        default="smollm2",
        metadata={"help": "Model to train: a Hugging Face name, a local folder, or a registered embedded model "
                          "(`smollm2`: the SmolLM2 GGUF loaded in fp32)."},
    )
    dataset: str = field(
        default="",
        metadata={"help": "FineProofs-SFT rows (problem, reasoning_content, proof): a JSONL/parquet/CSV file, a folder "
                          "written by `qednano data export`, or a Hugging Face dataset name."},
    )
    dataset_split: str = field(default="train", metadata={"help": "Split of a Hugging Face dataset or export folder."})
    max_rows: int | None = field(default=None, metadata={"help": "Train on the first N rows only (None: all)."})
    prompt: str = field(
        default="solve",
        metadata={"help": "Scaffold prompt the problem is put in (qednano/scaffolds/prompts/NAME.txt); use the one "
                          "the model will be evaluated with: `solve` for proofs, `solve_answer` for short answers."},
    )
    resume: bool = field(
        default=True, metadata={"help": "Continue from the newest checkpoint-N in output_dir when there is one."}
    )

    def __post_init__(self) -> None:
        if not self.dataset:
            raise ValueError("field 'dataset' is empty: set it to a file, an export folder or a Hugging Face name")
        if self.max_rows is not None and self.max_rows < 1:
            raise ValueError(f"field 'max_rows' must be at least 1 (or null for all rows), got {self.max_rows}")
        if self.assistant_only_loss:
            raise ValueError("field 'assistant_only_loss' must stay false: the prompt-completion rows already "
                             "restrict the loss to the completion, and SmolLM2's template has no generation markers")
        super().__post_init__()


def sft_dataset(config: SFTRecipe, tokenizer: Any) -> Any:
    from datasets import Dataset

    table = read_table(config.dataset, config.dataset_split)
    rows = sft_rows(table, config.dataset, prompt=config.prompt, template_opens=template_writes_opener(tokenizer),
                    max_rows=config.max_rows)
    return Dataset.from_list(rows)


def build_trainer(config: SFTRecipe) -> tuple[SFTTrainer, Any]:
    """Model, data and trainer; everything that can fail on bad input fails here, before training."""
    model, tokenizer = load_policy(config.model)
    dataset = sft_dataset(config, tokenizer)
    trainer = SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer,
                         callbacks=[MetricsFile(config.output_dir)])
    return trainer, tokenizer


def train_sft(config: SFTRecipe, settings: dict[str, Any]) -> Any:
    """Train, writing the run directory; returns TRL's TrainOutput."""
    trainer, tokenizer = build_trainer(config)
    return run_training(trainer, tokenizer, "train-sft", settings)
