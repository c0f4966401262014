"""What dedup and decontamination share: the training rows they read and the run they write.

A training set is read through the problem loaders' file and dataset readers (`open_source`),
but kept as rows: every column survives into the output, and the statement column (the text
compared) and id column are found with the same column map as everywhere else (`--column
statement=question`). Rows without an id column are named `row-N`. A data run directory is
read through its `problems.jsonl`.

The run directory gets `matches.jsonl` (one line per matched pair), `report.json` and
`report.md` (counts per method and per compared set), and the training set with the matched
rows dropped, or kept and flagged in a column, as parquet or JSONL written by `datasets`.
"""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from datasets import Dataset
from pydantic import BaseModel, Field

from qednano.data.matching import METHODS, Corpus, MatchSettings, Pair, find_matches
from qednano.data.similarity import Hasher
from qednano.problems.loaders import ProblemLoadError, open_source
from qednano.records.pipeline import progress_bar
from qednano.secrets import redact, secret_values
from qednano.tables import markdown_table

MATCHES_FILE = "matches.jsonl"
HUB_NAME = re.compile(r"[\w.-]+/[\w.-]+")


class OverlapConfig(BaseModel):
    """Options both commands share; stored in the manifest."""

    train: str = Field(description="Training set: a JSONL/CSV/parquet file, a saved dataset, a HF name, or a data run directory.")
    columns: dict[str, str] = Field(default_factory=dict, description="Column map, field -> column (id, statement).")
    split: str | None = Field(None, description="Dataset split (Hugging Face datasets).")
    flag: bool = Field(False, description="Keep matched rows and mark them in a column instead of dropping them.")
    output_format: Literal["parquet", "jsonl"] = Field("parquet", description="Format of the written training set.")
    settings: MatchSettings = Field(default_factory=MatchSettings)


@dataclass
class TextSet:
    """Rows of a training set or of a file compared against, with the id and text of each."""

    name: str
    ids: list[str]
    texts: list[str]
    rows: list[dict[str, Any]]  # the source rows, all columns (empty for benchmarks, only compared with)


def hub_reachable_or_fail(what: str, fix: str, timeout: float = 5.0) -> None:
    """Fail at once when something must come from the Hugging Face Hub and the Hub is not there,
    rather than after the datasets library's retries. With HF_HUB_OFFLINE set, datasets reads
    its cache and fails quickly by itself."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((endpoint.hostname, port), timeout=timeout).close()
    except OSError as err:
        raise ProblemLoadError(
            f"{what} is on the Hugging Face Hub, which cannot be reached ({endpoint.hostname}:{port}: {err}). Fix: {fix}"
        ) from err


def read_text_set(source: str, columns: Mapping[str, str] | None = None, split: str | None = None) -> TextSet:
    """Rows from any source the problem loaders read; every row must have a non-empty text
    and rows with an id column must have distinct ids. Errors name the file, row and field."""
    if not Path(source).exists() and HUB_NAME.fullmatch(source):
        hub_reachable_or_fail(f"{source}: the dataset", "check the network, or pass a local copy of the dataset (a file or folder)")
    run_problems = Path(source) / "problems.jsonl"
    table, layout = open_source(str(run_problems) if run_problems.is_file() else source, split=split, columns=columns)
    id_column = _column(layout.columns.id, table.columns, table.name, "id", required=False)
    text_column = _column(layout.columns.statement, table.columns, table.name, "statement", required=True)
    ids, texts, rows, seen = [], [], [], {}
    for row in table.rows:
        where = f"{table.name} {row.place}"
        text = _field(row.values, text_column, where, "statement", "give every row its problem text")
        row_id = _field(row.values, id_column, where, "id", "give every row a unique id").strip() if id_column else f"row-{row.number}"
        if row_id in seen:
            raise ProblemLoadError(
                f"{where}: field 'id' (column {id_column!r}) repeats {row_id!r} from {seen[row_id]}. Fix: give every row a unique id"
            )
        seen[row_id] = row.place
        ids.append(row_id)
        texts.append(text)
        rows.append(dict(row.values))
    return TextSet(name=table.name, ids=ids, texts=texts, rows=rows)


def _field(values: Mapping[str, Any], column: str, where: str, field: str, fix: str) -> str:
    """A row's text in `column`: missing, blank or non-text values fail naming the place and field."""
    value = values.get(column)
    trouble = "is missing" if value is None else "is empty" if isinstance(value, str) and not value.strip() else None
    if trouble is None and not isinstance(value, (str, int)):
        trouble = f"holds {type(value).__name__} {value!r:.60}, not text"
    if trouble:
        raise ProblemLoadError(f"{where}: field {field!r} (column {column!r}) {trouble}. Fix: {fix}")
    return str(value)


def _column(choice: str | tuple[str, ...] | None, available: Sequence[str], table: str, field: str, required: bool) -> str | None:
    """The column a ColumnMap entry picks: a named column must exist; of candidates, the first present."""
    if isinstance(choice, str):
        if choice.split(".")[0] not in available:
            raise ProblemLoadError(
                f"{table}: field {field!r} is mapped to column {choice!r}, which does not exist; columns are {list(available)}"
            )
        return choice
    found = next((c for c in choice or () if c in available), None)
    if found is None and required:
        raise ProblemLoadError(
            f"{table}: no column for the problem {field}; looked for {list(choice or ())}, columns are {list(available)}. "
            f"Fix: pass --column {field}=COLUMN"
        )
    return found


def build_corpora(sets: Sequence[TextSet], settings: MatchSettings) -> list[Corpus]:
    """Each set normalized and hashed once, with a progress bar per set."""
    hasher = Hasher(settings.ngram)
    corpora = []
    with progress_bar() as progress:
        for text_set in sets:
            task = progress.add_task(f"hash {Path(text_set.name).name[:30]}", total=len(text_set.texts))
            corpora.append(Corpus.build(text_set.texts, hasher, lambda done, task=task: progress.advance(task, done)))
    return corpora


def find_with_progress(queries: Corpus, references: Corpus, settings: MatchSettings, label: str, same: bool = False) -> list[Pair]:
    """`find_matches` with a progress bar over the query texts (the MinHash-LSH lookups)."""
    with progress_bar() as progress:
        task = progress.add_task(f"match {Path(label).name[:30]}", total=len(queries))
        return find_matches(queries, references, settings, same=same, progress=lambda done: progress.advance(task, done))


def match_record(train: TextSet, against: TextSet, against_name: str, pair: Pair) -> dict[str, Any]:
    """One line of matches.jsonl (the contract the viewer reads)."""
    return {
        "train_id": train.ids[pair.query],
        "against_id": against.ids[pair.reference],
        "against": against_name,
        "method": pair.method,
        "similarity": pair.similarity,
        "methods": list(pair.methods),
        "train_text": train.texts[pair.query],
        "against_text": against.texts[pair.reference],
    }


def write_jsonl(path: Path, records: Sequence[Mapping[str, Any]]) -> None:
    secrets = secret_values()
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as handle:
        for record in records:
            handle.write(json.dumps(redact(dict(record), secrets), ensure_ascii=False) + "\n")
    tmp.replace(path)


def parquet_safe(row: Mapping[str, Any]) -> dict[str, Any]:
    """The row with mappings as JSON text: parquet cannot store a struct with no fields, and a
    problem's `metadata` is often `{}`."""
    return {key: json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else value for key, value in row.items()}


def write_training_set(out: Path, train: TextSet, matched: Mapping[str, list[str]], flag_column: str, config: OverlapConfig) -> Path:
    """The training rows without the matched ones, or all of them with `flag_column` (matched
    ids, empty when clean) when flagging. Written through `datasets`."""
    if config.flag:
        rows = [{**row, flag_column: matched.get(row_id, [])} for row_id, row in zip(train.ids, train.rows, strict=True)]
    else:
        rows = [row for row_id, row in zip(train.ids, train.rows, strict=True) if row_id not in matched]
    if config.output_format == "parquet":
        rows = [parquet_safe(row) for row in rows]
    dataset = Dataset.from_list(rows) if rows else Dataset.from_dict({name: [] for name in train.rows[0]} if train.rows else {})
    path = out / f"train.{config.output_format}"
    if config.output_format == "parquet":
        dataset.to_parquet(str(path))
    else:
        dataset.to_json(str(path), lines=True, force_ascii=False)
    return path


def write_results(
    out: Path,
    title: str,
    config: OverlapConfig,
    train: TextSet,
    records: Sequence[dict[str, Any]],
    against_sizes: Mapping[str, int],
    flag_column: str,
    label: Callable[[Mapping[str, Any]], str],
) -> dict[str, Any]:
    """matches.jsonl, the training set (matches dropped, or flagged with `label` of each match)
    and the report; returns the report's numbers."""
    write_jsonl(out / MATCHES_FILE, records)
    matched: dict[str, list[str]] = {}
    for record in records:
        matched.setdefault(record["train_id"], []).append(label(record))
    output = write_training_set(out, train, matched, flag_column, config)
    summary = {
        "train": config.train,
        "train_rows": len(train.ids),
        "matched_rows": len(matched),
        "written_rows": len(train.ids) if config.flag else len(train.ids) - len(matched),
        "run_dir": str(out),
        "output": output.name,
        "flag": config.flag,
        "against": summarize(records, against_sizes),
        "settings": config.settings.model_dump(mode="json"),
    }
    write_report(out, title, summary, records)
    return summary


def summarize(records: Sequence[Mapping[str, Any]], against_sizes: Mapping[str, int]) -> dict[str, Any]:
    """Counts per compared set: pairs, distinct training rows, pairs per reported method, and
    pairs each method found (a pair can be found by several)."""
    per_set: dict[str, Any] = {}
    for name, size in against_sizes.items():
        mine = [r for r in records if r["against"] == name]
        per_set[name] = {
            "problems": size,
            "pairs": len(mine),
            "train_rows": len({r["train_id"] for r in mine}),
            "against_problems": len({r["against_id"] for r in mine}),
            "by_method": {m: sum(r["method"] == m for r in mine) for m in METHODS},
            "found_by": {m: sum(m in r["methods"] for r in mine) for m in METHODS},
        }
    return per_set


def write_report(out: Path, title: str, summary: dict[str, Any], records: Sequence[Mapping[str, Any]], examples: int = 10) -> None:
    """report.json (the numbers) and report.md (them as a table, and the least similar matches
    to read: they show whether the thresholds are too loose)."""
    (out / "report.json").write_text(json.dumps(summary, indent=2))
    header = ["compared with", "problems", "pairs", "train rows", *[f"{m} (found by)" for m in METHODS]]
    rows = [
        [name, str(s["problems"]), str(s["pairs"]), str(s["train_rows"]), *[f"{s['by_method'][m]} ({s['found_by'][m]})" for m in METHODS]]
        for name, s in summary["against"].items()
    ]
    lines = [
        f"# {title}",
        "",
        f"Training set `{summary['train']}`: {summary['train_rows']} rows, {summary['matched_rows']} matched, "
        f"{summary['written_rows']} written to `{summary['output']}` ({'flagged' if summary['flag'] else 'matches dropped'}).",
        "",
        "Pairs per method: the strictest method that found the pair (in brackets: pairs each method found).",
        "",
        markdown_table(header, rows),
        "",
        f"Settings: {json.dumps(summary['settings'])}",
        "",
    ]
    weakest = sorted(records, key=lambda r: r["similarity"])[:examples]
    if weakest:
        cells = [[r["train_id"], f"{r['against']}:{r['against_id']}", r["method"], f"{r['similarity']:.2f}", _clip(r["train_text"])] for r in weakest]
        lines += ["## The least similar matches", "", markdown_table(["train", "matched", "method", "similarity", "train text"], cells), ""]
    (out / "report.md").write_text("\n".join(lines))


def _clip(text: str, width: int = 100) -> str:
    flat = " ".join(text.split()).replace("|", "\\|")
    return flat if len(flat) <= width else flat[: width - 1] + "…"
