"""Training data: FineProofs-SFT rows for SFT, problems for RL, both as conversational prompts.

The prompt is the problem in the same prompt the model is evaluated with (the scaffolds' solve
prompt, or the answer prompt for short answers), so training and evaluation ask the same way.

SFT rows follow the FineProofs-SFT schema (`problem`, `reasoning_content`, `proof`, `messages`,
`source`, grade columns); only the first three are needed. The completion is
`<think>\\n{reasoning}\\n</think>\\n\\n{proof}`, except when the chat template itself writes the
opening tag before an assistant turn (templates whose generation prompt opens `<think>`, as in
Qwen3 thinking models, may): then the completion starts with the reasoning, or the model would
learn to write two (see `policy.template_writes_opener`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qednano.problems.loaders import load_problems
from qednano.problems.record import Problem
from qednano.prompts import SHIPPED

SFT_COLUMNS = ("problem", "reasoning_content", "proof")
FILE_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


class DataError(ValueError):
    """Training data that cannot be used; the message names the source, row and column."""


def read_table(source: str, split: str = "train") -> Any:
    """A datasets.Dataset from a file, a folder of parquet files (`qednano data export`) or a Hub name."""
    from datasets import load_dataset

    path = Path(source)
    if path.is_dir():
        files = sorted(path.rglob("*.parquet"))
        if not files:
            raise DataError(f"{source}: a data folder must hold parquet files (as `qednano data export` writes)")
        of_split = [f for f in files if split in f.name or split == f.parent.name]
        return load_dataset("parquet", data_files=[str(f) for f in of_split or files], split="train")
    if path.is_file():
        kind = FILE_FORMATS.get(path.suffix.lower())
        if kind is None:
            raise DataError(f"{source}: unknown file type; use one of {', '.join(FILE_FORMATS)}")
        return load_dataset(kind, data_files=str(path), split="train")
    try:
        return load_dataset(source, split=split)
    except (FileNotFoundError, ValueError, ConnectionError) as err:
        raise DataError(f"{source}: not a file, a folder, or a reachable Hugging Face dataset ({err})") from err


def prompt_messages(statement: str, prompt: str = "solve") -> list[dict[str, str]]:
    """The user turn: the problem in a shipped prompt (`solve`, `solve_answer`, or `statement` alone)."""
    return [{"role": "user", "content": SHIPPED.fill(prompt, problem=statement)}]


def completion_text(reasoning: str, proof: str, template_opens: bool = False) -> str:
    body = f"{reasoning.strip()}\n</think>\n\n{proof.strip()}"
    return body if template_opens else f"<think>\n{body}"


def sft_rows(table: Any, source: str, *, prompt: str = "solve", template_opens: bool = False,
             max_rows: int | None = None) -> list[dict[str, Any]]:
    """Prompt-completion rows; a missing column or an empty problem or proof names the row."""
    missing = [c for c in SFT_COLUMNS if c not in table.column_names]
    if missing:
        raise DataError(f"{source}: missing column(s) {missing}; the FineProofs-SFT schema needs "
                        f"{list(SFT_COLUMNS)}, found {table.column_names}")
    rows = []
    for index, row in enumerate(table.select_columns(list(SFT_COLUMNS)), start=1):  # rows counted from 1
        if max_rows is not None and index > max_rows:
            break
        for column in ("problem", "proof"):
            if not isinstance(row[column], str) or not row[column].strip():
                raise DataError(f"{source}: row {index}: column {column!r} is empty")
        text = completion_text(row["reasoning_content"] or "", row["proof"], template_opens)
        rows.append({"prompt": prompt_messages(row["problem"], prompt),
                     "completion": [{"role": "assistant", "content": text}]})
    if not rows:
        raise DataError(f"{source}: no rows to train on")
    return rows


def rl_problems(source: str, *, split: str | None, columns: dict[str, Any] | None,
                max_rows: int | None, need_answers: bool) -> list[Problem]:
    problems = load_problems(source, split=split, columns=columns or None, limit=max_rows)
    if not problems:
        raise DataError(f"{source}: no problems to train on")
    if need_answers:
        lacking = [p.id for p in problems if not p.short_answer.strip()]
        if lacking:
            raise DataError(f"{source}: problem(s) {lacking[:5]} have no short answer, which the answer reward "
                            "needs; map the column with `columns: {short_answer: COLUMN}` or drop the answer reward")
    return problems


def rl_rows(problems: list[Problem], prompt: str = "solve") -> list[dict[str, Any]]:
    """One prompt row per problem; the `problem_id` column lets the rewards find the problem."""
    return [{"prompt": prompt_messages(p.statement, prompt), "problem_id": p.id} for p in problems]
