"""Reading a source's records as a `Table`: CSV and JSON files, saved datasets, the Hugging Face Hub.

Where a record is, as error messages say it (`SourceRow.place`): text files (CSV, JSON Lines)
name the line a record is on, counted as a text editor counts them (the CSV header is line 1,
so the first CSV record is usually line 2; a record whose quoted field spans lines is
"lines 2-4"); sources without lines (parquet, saved datasets, the Hub, items of a JSON array)
name the row, counting records from 1.

CSV and JSON are read with the standard library rather than `datasets` (which reads CSV through
pandas and JSON through pyarrow): that keeps each record's line, so a malformed JSON line or a
CSV row whose columns shifted can be named, and a key absent from a JSON record stays absent
instead of becoming a null. `datasets` reads the rest, with its progress bars off: a loader
prints nothing of its own.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qednano.problems.columns import ProblemLoadError

if TYPE_CHECKING:
    from datasets import Dataset


@dataclass
class SourceRow:
    """One record of a source: its values and where it is."""

    values: Mapping[str, Any]
    number: int  # 1-based among the source's records (the CSV header is not one); stable ids use it
    lines: tuple[int, int] | None = None  # text files: the first and last line of the record
    field_count: int | None = None  # CSV: how many fields the record had

    @property
    def place(self) -> str:
        """"line 7", "lines 7-9" or "row 7": where to look for this record."""
        if self.lines is None:
            return f"row {self.number}"
        first, last = self.lines
        return f"line {first}" if first == last else f"lines {first}-{last}"


@dataclass
class Table:
    name: str  # the file or dataset, as error messages name it
    columns: list[str]
    rows: list[SourceRow]


def read_csv(path: Path, limit: int | None = None) -> Table:
    # Solutions can exceed csv's default 128 kB field limit; the limit is process-wide.
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header:
            raise ProblemLoadError(f"{path}: the file is empty; expected a header row of column names")
        rows: list[SourceRow] = []
        first_line = reader.line_num + 1
        for fields in reader:
            lines = (first_line, reader.line_num)
            first_line = reader.line_num + 1
            if not any(f.strip() for f in fields):
                continue  # blank line
            if limit is not None and len(rows) >= limit:
                break
            values = dict(zip(header, fields, strict=False))
            rows.append(SourceRow(values, len(rows) + 1, lines=lines, field_count=len(fields)))
    return Table(str(path), header, rows)


def read_json(path: Path, limit: int | None = None) -> Table:
    """JSON Lines (one object per line), or one JSON array of objects."""
    text = path.read_text(encoding="utf-8-sig")
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as err:
            raise ProblemLoadError(f"{path} line {err.lineno}: not valid JSON ({err.msg}, column {err.colno})") from err
        if not isinstance(items, list):
            raise ProblemLoadError(f"{path}: expected a JSON array of objects or one JSON object per line")
        records = [(item, None) for item in items][:limit]
    else:
        records = list(_json_lines(path, text, limit))
    rows, columns = [], {}
    for number, (item, line) in enumerate(records, start=1):
        row = SourceRow({}, number, lines=None if line is None else (line, line))
        if not isinstance(item, dict):
            raise ProblemLoadError(f"{path} {row.place}: expected a JSON object of fields, got {type(item).__name__}")
        row.values = item
        columns.update(dict.fromkeys(item))  # every key any record has, in order of appearance
        rows.append(row)
    return Table(str(path), list(columns), rows)


def _json_lines(path: Path, text: str, limit: int | None) -> Iterator[tuple[Any, int]]:
    count = 0
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if limit is not None and count >= limit:
            return
        try:
            yield json.loads(line), line_number
        except json.JSONDecodeError as err:
            raise ProblemLoadError(
                f"{path} line {line_number}: not valid JSON ({err.msg}, column {err.colno}). "
                "Fix: one JSON object per line"
            ) from err
        count += 1


@contextmanager
def quiet_datasets() -> Iterator[None]:
    """`datasets` without its progress bars ("Generating train split: ...") and its warnings
    (what goes wrong becomes our own error), both restored after.

    `datasets` is imported here, where it is used: it takes seconds, and CSV and JSON do not need it."""
    import datasets

    was_enabled, verbosity = datasets.is_progress_bar_enabled(), datasets.logging.get_verbosity()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity(datasets.logging.ERROR)
    try:
        yield
    finally:
        datasets.logging.set_verbosity(verbosity)
        if was_enabled:
            datasets.enable_progress_bars()


def _dataset_table(name: str, dataset: Dataset, limit: int | None) -> Table:
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    return Table(name, list(dataset.column_names), [SourceRow(row, i) for i, row in enumerate(dataset, start=1)])


FILE_FORMATS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


def read_path(path: Path, split: str | None, limit: int | None) -> Table:
    if path.is_dir():
        return read_saved(path, split, limit)
    file_format = FILE_FORMATS.get(path.suffix.lower())
    if file_format is None:
        raise ProblemLoadError(f"{path}: unknown file type {path.suffix!r}; use one of {sorted(FILE_FORMATS)}")
    if file_format == "csv":
        return read_csv(path, limit)
    if file_format == "json":
        return read_json(path, limit)
    from datasets import load_dataset  # here, not at the top: see quiet_datasets
    from datasets.exceptions import DatasetGenerationError

    try:
        with quiet_datasets():
            dataset = load_dataset(file_format, data_files=str(path), split="train")
    except DatasetGenerationError as err:
        raise ProblemLoadError(f"{path}: cannot be read as {file_format}: {err.__cause__ or err}") from err
    return _dataset_table(str(path), dataset, limit)


def read_saved(path: Path, split: str | None, limit: int | None) -> Table:
    """A folder written by `Dataset.save_to_disk` (a `DatasetDict` is read at `split`)."""
    from datasets import DatasetDict, load_from_disk  # here, not at the top: see quiet_datasets

    with quiet_datasets():
        saved = load_from_disk(str(path))
    if isinstance(saved, DatasetDict):
        split = split or "train"
        if split not in saved:
            raise ProblemLoadError(f"{path}: no split {split!r}; it has {sorted(saved)}. Pass split=...")
        saved = saved[split]
    return _dataset_table(str(path), saved, limit)


def read_hub(name: str, split: str, limit: int | None) -> Table:
    from datasets import load_dataset  # here, not at the top: see quiet_datasets
    from datasets.exceptions import DatasetNotFoundError

    try:
        with quiet_datasets():
            dataset = load_dataset(name, split=split)
    except (ConnectionError, DatasetNotFoundError) as err:
        raise ProblemLoadError(
            f"{name}: cannot load split {split!r} from the Hugging Face Hub ({err}). Fix: check the name and "
            "the network, or put a local copy in a data directory ($QEDNANO_DATA_DIR) and pass its path"
        ) from err
    return _dataset_table(f"{name} [{split}]", dataset, limit)
