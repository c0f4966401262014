"""Benchmarks, Hugging Face datasets and local files, read into validated `Problem`s.

`load_problems(source)` takes
- a benchmark short name (`imo-proofbench`, `imo-answerbench`, `proofbench`): the local
  IMO-Bench CSV when a data directory holds one, else the benchmark's Hugging Face dataset;
- a Hugging Face dataset name (`lm-provers/IMOProofBench`), read with `datasets.load_dataset`;
- a path: a CSV, JSON/JSONL or parquet file, or a folder written by `Dataset.save_to_disk`.

A `ColumnMap` says which column fills which Problem field; the datasets we know have one in
`HUB_LAYOUTS`, and any source can be given another. Every row is checked, and a bad row raises
`ProblemLoadError` naming the file, the row, the field and the fix: a benchmark that loads
silently wrong gives scores that are silently wrong. In particular a row whose columns have
shifted (an unbalanced quote in a CSV, as upstream IMO-AnswerBench had at
imo-bench-algebra-036) shows up as a category name in an answer column or an unknown category.

CSV files are read with the standard `csv` module rather than `datasets` (which reads CSV
through pandas): it keeps each record's fields and line number, so a shifted row can be named.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetDict, load_dataset, load_from_disk
from datasets.exceptions import DatasetGenerationError, DatasetNotFoundError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from qednano.errors import first_error
from qednano.paths import REPO, search_dirs
from qednano.problems.record import Criterion, Problem

IMOBENCH_CATEGORIES = ("Algebra", "Combinatorics", "Geometry", "Number theory")
IMOBENCH_LEVELS = ("pre-IMO", "IMO-easy", "IMO-medium", "IMO-hard")


class ProblemLoadError(ValueError):
    """A source that cannot be read into problems; the message names file, row, field and fix."""


# A column name (it must exist), a tuple of candidates (the first one present is used, none is
# fine), or None (the field is not read). Dotted names reach into struct columns: "metadata.year".
Columns = str | tuple[str, ...] | None


class ColumnMap(BaseModel):
    """Which source column fills each Problem field. The defaults guess common names."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Columns = ("id", "problem_id", "question_id", "Problem ID", "problem_idx")
    statement: Columns = ("problem", "statement", "Problem", "question")
    reference_solution: Columns = ("solution", "reference_solution", "Solution")
    grading_guidelines: Columns = ("grading_guidelines", "Grading guidelines")
    rubric: Columns = Field(
        ("rubric", "rubrics", "marking_scheme", "grading_scheme"),
        description="A list of {title, points, desc} criteria (or its JSON text); plain text is read as guidelines.",
    )
    short_answer: Columns = ("answer", "short_answer", "Short Answer")
    category: Columns = ("category", "Category")
    level: Columns = ("level", "Level")
    source: Columns = ("source", "Source")
    year: Columns = Field(("year",), description="Read as a year; when unmapped, a year is parsed from source.")
    metadata: dict[str, str | tuple[str, ...]] = Field(default_factory=dict, description="Metadata key -> column.")
    # Graded responses, read only by `load_rated_responses` (grader benchmarks).
    response: Columns = None
    human_points: Columns = None
    generator: Columns = None

    def overridden(self, changes: ColumnMap | Mapping[str, Any]) -> ColumnMap:
        """This map with the fields set in `changes` replaced (the rest kept)."""
        try:
            given = changes if isinstance(changes, ColumnMap) else ColumnMap.model_validate(dict(changes))
        except ValidationError as err:
            field, message = first_error(err)
            known = ", ".join(ColumnMap.model_fields)
            raise ProblemLoadError(f"column map: {field!r}: {message}. Known fields: {known}") from err
        return self.model_copy(update={name: getattr(given, name) for name in given.model_fields_set})


class Layout(BaseModel):
    """How to read one dataset: its columns plus the checks its rows must pass."""

    model_config = ConfigDict(frozen=True)

    columns: ColumnMap = Field(default_factory=ColumnMap)
    imobench: bool = Field(False, description="Check Category (and Level) against the IMO-Bench sets.")
    required: tuple[str, ...] = Field((), description="Problem fields that must be non-empty ('marking_scheme' = criteria or guidelines).")
    one_row_per_problem: bool = Field(True, description="False when several rows (graded responses) share a problem.")
    hash_missing_ids: bool = Field(False, description="With no id column, make ids from a hash of the statement.")


IMOBENCH_CSV_COLUMNS = ColumnMap(
    id="Problem ID",
    statement="Problem",
    reference_solution=("Solution",),
    grading_guidelines=("Grading guidelines",),
    rubric=None,
    short_answer=("Short Answer",),
    category="Category",
    level=("Level",),
    source="Source",
    year=None,
    metadata={"subcategory": ("Subcategory",)},
)
IMOBENCH_PROOF = Layout(columns=IMOBENCH_CSV_COLUMNS, imobench=True, required=("reference_solution", "grading_guidelines"))
IMOBENCH_ANSWER = Layout(columns=IMOBENCH_CSV_COLUMNS, imobench=True, required=("short_answer",))

# Hugging Face datasets we know. Column names were read from dataset cards and from code that
# loads these datasets; where that left doubt, a field lists candidates (first present wins):
# - lm-provers/IMOProofBench: problem, solution, grading_guidelines, answer, category, level,
#   source; its id column is seen both as problem_id and as question_id.
# - lm-provers/IMOBench-FinalAnswer: problem and answer are confirmed; the id, category,
#   subcategory and source names are assumed to follow IMOProofBench.
# - lm-provers/ProofBench: problem_id, problem, solution and grading_scheme (its marking scheme)
#   are confirmed; splits 24_25, other and train.
# - wenjiema02/ProofBench (dataset card): problem_id, problem, generator, model_solution,
#   reference_solution, expert_rating (0-7), marking_scheme, generation_prompt,
#   metadata{contest, contest_year}, response_number; splits train and best_of_n. Several rows
#   (one per graded model solution) share a problem.
# Pass `columns=` to override any of them.
_IMOBENCH_HUB_COLUMNS = ColumnMap(
    id=("problem_id", "question_id", "Problem ID", "id"),
    statement=("problem", "Problem"),
    reference_solution=("solution", "Solution"),
    grading_guidelines=("grading_guidelines", "Grading guidelines"),
    rubric=None,
    short_answer=("answer", "short_answer", "Short Answer"),
    category=("category", "Category"),
    level=("level", "Level"),
    source=("source", "Source"),
    year=None,
    metadata={"subcategory": ("subcategory", "Subcategory")},
)
HUB_LAYOUTS: dict[str, Layout] = {
    "lm-provers/IMOProofBench": IMOBENCH_PROOF.model_copy(update={"columns": _IMOBENCH_HUB_COLUMNS}),
    "lm-provers/IMOBench-FinalAnswer": IMOBENCH_ANSWER.model_copy(update={"columns": _IMOBENCH_HUB_COLUMNS}),
    "Hwilner/imo-proofbench": IMOBENCH_PROOF,
    "Hwilner/imo-answerbench": IMOBENCH_ANSWER,
    "lm-provers/ProofBench": Layout(
        columns=ColumnMap(
            id="problem_id",
            statement="problem",
            reference_solution=("solution",),
            grading_guidelines=None,
            rubric="grading_scheme",
            short_answer=None,
            category=("category",),
            level=None,
            source=("source", "competition"),
            year=("year",),
        ),
        required=("marking_scheme",),
    ),
    "wenjiema02/ProofBench": Layout(
        columns=ColumnMap(
            id="problem_id",
            statement="problem",
            reference_solution="reference_solution",
            grading_guidelines=None,
            rubric="marking_scheme",
            short_answer=None,
            category=None,
            level=None,
            source="metadata.contest",
            year="metadata.contest_year",
            response="model_solution",
            human_points="expert_rating",
            generator="generator",
        ),
        required=("marking_scheme",),
        one_row_per_problem=False,
    ),
}


# IMO-GradingBench: human-graded proofs (Points 0-7) of IMO-ProofBench-style problems.
IMO_GRADINGBENCH = Layout(
    columns=ColumnMap(
        id=("Problem ID",),
        statement="Problem",
        reference_solution=("Solution",),
        grading_guidelines=("Grading guidelines",),
        rubric=None,
        short_answer=None,
        category=None,
        level=None,
        source=("Problem Source",),
        year=None,
        metadata={"grading_id": ("Grading ID",)},
        response="Response",
        human_points="Points",
    ),
    required=("reference_solution", "grading_guidelines"),
    one_row_per_problem=False,
    hash_missing_ids=True,
)


class Benchmark(BaseModel):
    """A benchmark short name: a local file name to look for, else a Hugging Face dataset."""

    hub: str
    split: str = "train"
    local_file: str | None = None


BENCHMARKS: dict[str, Benchmark] = {
    "imo-proofbench": Benchmark(hub="lm-provers/IMOProofBench", local_file="proofbench_v2.csv"),
    "imo-answerbench": Benchmark(hub="lm-provers/IMOBench-FinalAnswer", local_file="answerbench_v2.csv"),
    "proofbench": Benchmark(hub="lm-provers/ProofBench"),
}


def data_dirs() -> list[Path]:
    """Where benchmark files are looked for: $QEDNANO_DATA_DIR (colon-separated), ./data, the
    repo's data/, and a `shared/data` folder beside the repo checkout."""
    return [*search_dirs("QEDNANO_DATA_DIR", "data"), REPO.parent / "shared" / "data"]


def find_local(file_name: str) -> Path | None:
    """The first data directory holding `file_name`, directly or in an `imobench/` folder."""
    for folder in data_dirs():
        for candidate in (folder / file_name, folder / "imobench" / file_name):
            if candidate.is_file():
                return candidate
    return None


# ---------------------------------------------------------------------------- reading rows


@dataclass
class Row:
    values: Mapping[str, Any]
    number: int  # 1-based data row (the header is not counted)
    line: int | None = None  # CSV: the line the record ends on (quoted fields span lines)
    field_count: int | None = None  # CSV: how many fields the record had


@dataclass
class Table:
    name: str  # the file or dataset, as error messages name it
    columns: list[str]
    rows: list[Row]


def read_csv(path: Path, limit: int | None = None) -> Table:
    # Solutions can exceed csv's default 128 kB field limit; the limit is process-wide.
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header:
            raise ProblemLoadError(f"{path}: the file is empty; expected a header row of column names")
        rows: list[Row] = []
        for fields in reader:
            if not any(f.strip() for f in fields):
                continue  # blank line
            if limit is not None and len(rows) >= limit:
                break
            values = dict(zip(header, fields, strict=False))
            rows.append(Row(values, len(rows) + 1, line=reader.line_num, field_count=len(fields)))
    return Table(str(path), header, rows)


def _dataset_table(name: str, dataset: Dataset, limit: int | None) -> Table:
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    return Table(name, list(dataset.column_names), [Row(row, i) for i, row in enumerate(dataset, start=1)])


FILE_FORMATS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


def read_path(path: Path, split: str | None, limit: int | None) -> Table:
    if path.is_dir():
        saved = load_from_disk(str(path))
        if isinstance(saved, DatasetDict):
            split = split or "train"
            if split not in saved:
                raise ProblemLoadError(f"{path}: no split {split!r}; it has {sorted(saved)}. Pass split=...")
            saved = saved[split]
        return _dataset_table(str(path), saved, limit)
    file_format = FILE_FORMATS.get(path.suffix.lower())
    if file_format is None:
        raise ProblemLoadError(f"{path}: unknown file type {path.suffix!r}; use one of {sorted(FILE_FORMATS)}")
    if file_format == "csv":
        return read_csv(path, limit)
    try:
        dataset = load_dataset(file_format, data_files=str(path), split="train")
    except DatasetGenerationError as err:
        raise ProblemLoadError(f"{path}: cannot be read as {file_format}: {err.__cause__ or err}") from err
    return _dataset_table(str(path), dataset, limit)


def read_hub(name: str, split: str, limit: int | None) -> Table:
    try:
        dataset = load_dataset(name, split=split)
    except (ConnectionError, DatasetNotFoundError) as err:
        raise ProblemLoadError(
            f"{name}: cannot load split {split!r} from the Hugging Face Hub ({err}). Fix: check the name and "
            "the network, or put a local copy in a data directory ($QEDNANO_DATA_DIR) and pass its path"
        ) from err
    return _dataset_table(f"{name} [{split}]", dataset, limit)


def open_source(
    source: str, split: str | None = None, columns: ColumnMap | Mapping[str, Any] | None = None, limit: int | None = None
) -> tuple[Table, Layout]:
    """The rows of a benchmark name, path or Hugging Face name, and how to read them."""
    if source in BENCHMARKS:
        benchmark = BENCHMARKS[source]
        local = find_local(benchmark.local_file) if benchmark.local_file else None
        source = str(local) if local else benchmark.hub
        split = split if local else (split or benchmark.split)
    path = Path(source).expanduser()
    if path.exists():
        table = read_path(path, split, limit)
        layout = _detect_layout(table.columns)
    elif re.fullmatch(r"[\w.-]+/[\w.-]+", source):
        table = read_hub(source, split or "train", limit)
        layout = HUB_LAYOUTS.get(source, Layout())
    else:
        raise ProblemLoadError(
            f"{source!r} is not a benchmark name ({', '.join(BENCHMARKS)}), an existing file or folder, "
            "or a Hugging Face dataset name (owner/name)"
        )
    if columns is not None:
        layout = layout.model_copy(update={"columns": layout.columns.overridden(columns)})
    return table, layout


def _detect_layout(columns: Sequence[str]) -> Layout:
    """IMO-Bench files are recognised by their header; anything else gets the default guesses."""
    if {"Problem", "Response", "Points"} <= set(columns):
        return IMO_GRADINGBENCH
    if {"Problem ID", "Problem", "Category", "Source"} <= set(columns):
        return IMOBENCH_PROOF if "Grading guidelines" in columns else IMOBENCH_ANSWER
    return Layout()


# ---------------------------------------------------------------------------- rows to problems


def _resolve(columns: ColumnMap, available: Sequence[str], table: str, id_optional: bool = False) -> dict[str, str | None]:
    """Field -> the column that fills it (None: unmapped or absent)."""
    present = set(available)
    names = {name: getattr(columns, name) for name in ColumnMap.model_fields if name != "metadata"}
    names.update({f"metadata.{key}": value for key, value in columns.metadata.items()})
    resolved: dict[str, str | None] = {}
    for field, choice in names.items():
        if isinstance(choice, str):
            if choice.split(".")[0] not in present:
                raise ProblemLoadError(
                    f"{table}: field {field!r} is mapped to column {choice!r}, which does not exist; "
                    f"columns are {list(available)}. Fix: pass columns={{{field.split('.')[0]!r}: ...}}"
                )
            resolved[field] = choice
        else:
            resolved[field] = next((c for c in choice or () if c.split(".")[0] in present), None)
    for field in ("statement",) if id_optional else ("id", "statement"):
        if resolved[field] is None:
            raise ProblemLoadError(
                f"{table}: no column for the problem {field}; looked for {list(getattr(columns, field) or ())}, "
                f"columns are {list(available)}. Fix: pass columns={{{field!r}: 'COLUMN'}}"
            )
    return resolved


def _lookup(values: Mapping[str, Any], column: str | None) -> Any:
    if column is None:
        return None
    value: Any = values
    for part in column.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value).strip()


_YEAR = re.compile(r"(?<!\d)(?:19|20)\d{2}(?!\d)")


def parse_year(text: str) -> int | None:
    """The first year (1900-2099) in a source or year field: "IMO 2020" -> 2020."""
    match = _YEAR.search(text)
    return int(match.group()) if match else None


def statement_id(statement: str) -> str:
    """An id for a problem that has none: rows with the same statement get the same id."""
    return "p-" + hashlib.sha1(statement.strip().encode()).hexdigest()[:12] if statement.strip() else ""


class _RowChecker:
    """Turns rows of one table into Problems, raising on the first bad row."""

    def __init__(self, table: Table, layout: Layout):
        self.table = table
        self.layout = layout
        self.fields = _resolve(layout.columns, table.columns, table.name, id_optional=layout.hash_missing_ids)

    def where(self, row: Row, problem_id: str = "") -> str:
        text = f"{self.table.name} row {row.number}"
        if problem_id:
            text += f" (id {problem_id!r})"
        if row.line is not None:
            text += f", ending on line {row.line}"
        return text

    def fail(self, row: Row, problem_id: str, field: str, trouble: str, fix: str) -> ProblemLoadError:
        column = self.fields.get(field)
        named = f" (column {column!r})" if column and column != field else ""
        return ProblemLoadError(f"{self.where(row, problem_id)}: field {field!r}{named} {trouble}. Fix: {fix}")

    def get(self, row: Row, field: str) -> str:
        return _text(_lookup(row.values, self.fields.get(field)))

    def problem(self, row: Row) -> Problem:
        pid = self.get(row, "id") if self.fields["id"] else statement_id(self.get(row, "statement"))
        if not pid:
            raise self.fail(row, "", "id", "is empty", "give every row a unique id")
        self._check_shift(row, pid)
        statement = self.get(row, "statement")
        if not statement:
            raise self.fail(row, pid, "statement", "is empty", "every problem needs its statement")
        criteria, rubric_text = self._rubric(row, pid)
        source = self.get(row, "source")
        year_text = self.get(row, "year")
        metadata = {key[len("metadata.") :]: self.get(row, key) for key in self.fields if key.startswith("metadata.")}
        problem = Problem(
            id=pid,
            statement=statement,
            reference_solution=self.get(row, "reference_solution"),
            grading_guidelines=self.get(row, "grading_guidelines") or rubric_text,
            criteria=criteria,
            short_answer=self.get(row, "short_answer"),
            category=self.get(row, "category"),
            level=self.get(row, "level"),
            source=source,
            year=parse_year(year_text) if year_text else parse_year(source),
            metadata={key: value for key, value in metadata.items() if value},
        )
        for field in self.layout.required:
            value = problem.marking_scheme_text() if field == "marking_scheme" else getattr(problem, field)
            if not value:
                raise self.fail(row, pid, field, "is empty", f"every problem of this benchmark needs its {field}")
        return problem

    def _check_shift(self, row: Row, pid: str) -> None:
        """Catch rows whose columns moved: the symptom of an unbalanced quote in a CSV."""
        shifted = "the row's columns have probably shifted (an unbalanced quote in an earlier field)"
        answer = self.get(row, "short_answer")
        if answer.casefold() in {c.casefold() for c in IMOBENCH_CATEGORIES}:
            raise self.fail(row, pid, "short_answer", f"holds {answer!r}, a category name: {shifted}", "repair the quoting of this row")
        if self.layout.imobench:
            for field, known in (("category", IMOBENCH_CATEGORIES), ("level", IMOBENCH_LEVELS)):
                value = self.get(row, field)
                if self.fields.get(field) and value.casefold() not in {k.casefold() for k in known}:
                    raise self.fail(
                        row, pid, field, f"holds {value[:60]!r}, not one of {list(known)}: {shifted}", "repair the quoting of this row"
                    )
        if row.field_count is not None and row.field_count != len(self.table.columns):
            count, expected = row.field_count, len(self.table.columns)
            field = self.table.columns[count] if count < expected else f"(extra field {count})"
            raise ProblemLoadError(
                f"{self.where(row, pid)}: has {count} fields but the header has {expected} "
                f"(first missing or extra: {field!r}): {shifted}. Fix: repair the quoting of this row"
            )

    def _rubric(self, row: Row, pid: str) -> tuple[tuple[Criterion, ...], str]:
        """(criteria, free text) from the rubric column: a list of criteria, or plain guidelines."""
        value = _lookup(row.values, self.fields.get("rubric"))
        if value is None or value == "":
            return (), ""
        if isinstance(value, str):
            text = value.strip()
            if not text.startswith("[{"):
                return (), text  # free-text marking scheme
            try:
                value = json.loads(text)
            except json.JSONDecodeError as err:
                raise self.fail(row, pid, "rubric", f"looks like a JSON list but does not parse ({err.msg}, char {err.pos})", "write valid JSON") from err
        if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
            raise self.fail(row, pid, "rubric", "is not a list of criteria", "write [{'title': ..., 'points': ..., 'desc': ...}, ...]")
        return tuple(self._criterion(row, pid, i, item) for i, item in enumerate(value, start=1)), ""

    def _criterion(self, row: Row, pid: str, number: int, item: Mapping[str, Any]) -> Criterion:
        title = _text(item.get("title") or item.get("name")) or f"Criterion {number}"
        raw = item.get("points", item.get("max_points"))
        points = _number(raw)
        if points is None or points < 0:
            raise self.fail(
                row, pid, "rubric", f"criterion {number} ({title!r}) has points {raw!r}, not a number >= 0", "give each criterion numeric points"
            )
        description = _text(item.get("desc") or item.get("description") or item.get("grading_scheme_desc"))
        return Criterion(title=title, points=points, description=description)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _problem_rows(checker: _RowChecker, unique_ids: bool) -> list[tuple[Problem, Row]]:
    """Each row of the checker's table with its Problem. Rows that repeat an id fail when
    `unique_ids`; otherwise they must repeat the statement too, and share the first row's Problem."""
    first: dict[str, tuple[Problem, Row]] = {}
    rows: list[tuple[Problem, Row]] = []
    for row in checker.table.rows:
        problem = checker.problem(row)
        if problem.id in first:
            earlier, earlier_row = first[problem.id]
            if unique_ids:
                raise checker.fail(row, problem.id, "id", f"repeats the id of row {earlier_row.number}", "give every problem a unique id")
            if problem.statement != earlier.statement:
                raise checker.fail(
                    row, problem.id, "statement", f"differs from row {earlier_row.number}, which has the same id", "one id, one problem statement"
                )
            problem = earlier
        else:
            first[problem.id] = (problem, row)
        rows.append((problem, row))
    return rows


def problems_from(table: Table, layout: Layout) -> list[Problem]:
    """Validated problems from a table; duplicate ids fail (or merge, for graded-response tables)."""
    rows = _problem_rows(_RowChecker(table, layout), unique_ids=layout.one_row_per_problem)
    return list({problem.id: problem for problem, _ in rows}.values())


def load_problems(
    source: str,
    *,
    split: str | None = None,
    columns: ColumnMap | Mapping[str, Any] | None = None,
    limit: int | None = None,
) -> list[Problem]:
    """Problems from a benchmark short name, a Hugging Face dataset name or a file path.

    `columns` overrides the source's column map field by field, e.g.
    `{"id": "problem_idx", "statement": "problem"}`. `limit` keeps the first rows only.
    """
    table, layout = open_source(source, split=split, columns=columns, limit=limit)
    return problems_from(table, layout)


# ---------------------------------------------------------------------------- graded responses


class RatedResponse(BaseModel):
    """A model's proof with the points a human expert gave it (for measuring graders)."""

    problem: Problem
    response: str
    points: float
    max_points: float = 7.0
    generator: str = ""  # the model that wrote the response
    response_id: str  # unique within the source


def responses_from(table: Table, layout: Layout) -> list[tuple[Problem, str, Row]]:
    """(problem, response, row) for each row of a table of responses; rows of one problem share it."""
    return _responses(_RowChecker(table, layout))


def _responses(checker: _RowChecker) -> list[tuple[Problem, str, Row]]:
    if checker.fields["response"] is None:
        raise ProblemLoadError(f"{checker.table.name}: no column for 'response'. Fix: pass columns={{'response': 'COLUMN'}}")
    return [(problem, checker.get(row, "response"), row) for problem, row in _problem_rows(checker, unique_ids=False)]


def load_rated_responses(
    source: str = "wenjiema02/ProofBench",
    *,
    split: str | None = None,
    columns: ColumnMap | Mapping[str, Any] | None = None,
    limit: int | None = None,
    max_points: float = 7.0,
) -> list[RatedResponse]:
    """(problem, response, human points) rows of a graded-proof dataset such as wenjiema02/ProofBench."""
    table, layout = open_source(source, split=split, columns=columns, limit=limit)
    checker = _RowChecker(table, layout)
    if checker.fields["human_points"] is None:
        raise ProblemLoadError(f"{table.name}: no column for 'human_points'. Fix: pass columns={{'human_points': 'COLUMN'}}")
    rated: list[RatedResponse] = []
    for problem, response, row in _responses(checker):
        raw = _lookup(row.values, checker.fields["human_points"])
        points = _number(raw)
        if points is None or not 0 <= points <= max_points:
            raise checker.fail(row, problem.id, "human_points", f"is {raw!r}, not a number from 0 to {max_points:g}", "fix the rating")
        generator = checker.get(row, "generator")
        rated.append(
            RatedResponse(
                problem=problem,
                response=response,
                points=points,
                max_points=max_points,
                generator=generator,
                response_id=f"{problem.id}/{generator or 'response'}/row-{row.number}",
            )
        )
    return rated
