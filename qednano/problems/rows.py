"""Checking a table's rows and turning them into `Problem`s.

Every row is checked, and a bad row raises `ProblemLoadError` naming the file, where the row is
(`SourceRow.place`), the field and the fix: a benchmark that loads silently wrong gives scores
that are silently wrong. In particular a row whose columns have shifted (an unbalanced quote in
a CSV, as upstream IMO-AnswerBench had at imo-bench-algebra-036) shows up as a category name in
an answer column, an unknown category, or a field count that differs from the header's.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from qednano.problems.columns import ColumnMap, Layout, ProblemLoadError
from qednano.problems.layouts import IMOBENCH_CATEGORIES, IMOBENCH_LEVELS
from qednano.problems.readers import SourceRow, Table
from qednano.problems.record import Criterion, Problem


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
                    f"columns are {list(available)}. Fix: pass --column {field.split('.')[0]}=COLUMN"
                )
            resolved[field] = choice
        else:
            resolved[field] = next((c for c in choice or () if c.split(".")[0] in present), None)
    for field in ("statement",) if id_optional else ("id", "statement"):
        if resolved[field] is None:
            raise ProblemLoadError(
                f"{table}: no column for the problem {field}; looked for {list(getattr(columns, field) or ())}, "
                f"columns are {list(available)}. Fix: pass --column {field}=COLUMN"
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


class RowChecker:
    """Turns rows of one table into Problems, raising on the first bad row."""

    def __init__(self, table: Table, layout: Layout):
        self.table = table
        self.layout = layout
        self.fields = _resolve(layout.columns, table.columns, table.name, id_optional=layout.hash_missing_ids)

    def where(self, row: SourceRow, problem_id: str = "") -> str:
        """"file line 7 (id 'p3')": the record, once, as a text editor numbers it (see readers.py)."""
        return f"{self.table.name} {row.place}" + (f" (id {problem_id!r})" if problem_id else "")

    def fail(self, row: SourceRow, problem_id: str, field: str, trouble: str, fix: str) -> ProblemLoadError:
        column = self.fields.get(field)
        named = f" (column {column!r})" if column and column != field else ""
        return ProblemLoadError(f"{self.where(row, problem_id)}: field {field!r}{named} {trouble}. Fix: {fix}")

    def get(self, row: SourceRow, field: str) -> str:
        return _text(self.raw(row, field))

    def raw(self, row: SourceRow, field: str) -> Any:
        return _lookup(row.values, self.fields.get(field))

    def blank(self, row: SourceRow, *fields: str) -> str:
        """How a blank field is described: "is missing" when the record has no value for it (an
        absent key, a null, a CSV row cut short), "is empty" when the value is empty text."""
        return "is missing" if all(self.raw(row, field) is None for field in fields) else "is empty"

    def problem(self, row: SourceRow) -> Problem:
        pid = self.get(row, "id") if self.fields["id"] else statement_id(self.get(row, "statement"))
        if not pid:
            raise self.fail(row, "", "id", self.blank(row, "id"), "give every row a unique id")
        self._check_shift(row, pid)
        statement = self.get(row, "statement")
        if not statement:
            raise self.fail(row, pid, "statement", self.blank(row, "statement"), "every problem needs its statement")
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
                read = ("grading_guidelines", "rubric") if field == "marking_scheme" else (field,)
                raise self.fail(row, pid, field, self.blank(row, *read), f"every problem of this benchmark needs its {field}")
        return problem

    def _check_shift(self, row: SourceRow, pid: str) -> None:
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

    def _rubric(self, row: SourceRow, pid: str) -> tuple[tuple[Criterion, ...], str]:
        """(criteria, free text) from the rubric column: a list of criteria, or plain guidelines."""
        value = _lookup(row.values, self.fields.get("rubric"))
        if value is None or value == "":
            return (), ""
        if isinstance(value, str):
            text = value.strip()
            if not re.match(r"\[\s*\{", text):  # JSON criteria however laid out: "[{", "[\n  {"
                return (), text  # free-text marking scheme
            try:
                value = json.loads(text)
            except json.JSONDecodeError as err:
                raise self.fail(row, pid, "rubric", f"looks like a JSON list but does not parse ({err.msg}, char {err.pos})", "write valid JSON") from err
        if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
            raise self.fail(row, pid, "rubric", "is not a list of criteria", "write [{'title': ..., 'points': ..., 'desc': ...}, ...]")
        criteria = tuple(self._criterion(row, pid, i, item) for i, item in enumerate(value, start=1))
        return self._checked_total(row, pid, criteria), ""

    def _checked_total(self, row: SourceRow, pid: str, criteria: tuple[Criterion, ...]) -> tuple[Criterion, ...]:
        """Criteria whose points sum to the 7-point maximum; scaled to it only when the layout says so."""
        total = sum(c.points for c in criteria)
        if math.isclose(total, RUBRIC_TOTAL):
            return criteria
        if not self.layout.rescale_rubrics or total == 0:
            raise self.fail(
                row, pid, "rubric", f"has points summing to {total:g}, not the maximum score {RUBRIC_TOTAL}",
                "correct the points, or pass --rescale-rubrics to scale them to 7",
            )
        scale = RUBRIC_TOTAL / total
        return tuple(c.model_copy(update={"points": c.points * scale}) for c in criteria)

    def _criterion(self, row: SourceRow, pid: str, number: int, item: Mapping[str, Any]) -> Criterion:
        title = _text(item.get("title") or item.get("name")) or f"Criterion {number}"
        raw = item.get("points", item.get("max_points"))
        points = as_number(raw)
        if points is None or points < 0:
            raise self.fail(
                row, pid, "rubric", f"criterion {number} ({title!r}) has points {raw!r}, not a number >= 0", "give each criterion numeric points"
            )
        description = _text(item.get("desc") or item.get("description") or item.get("grading_scheme_desc"))
        return Criterion(title=title, points=points, description=description)


RUBRIC_TOTAL = 7  # the maximum score of a proof, which a rubric's points divide up


def as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def problem_rows(checker: RowChecker, unique_ids: bool) -> list[tuple[Problem, SourceRow]]:
    """Each row of the checker's table with its Problem. SourceRows that repeat an id fail when
    `unique_ids`; otherwise they must repeat the statement too, and share the first row's Problem."""
    first: dict[str, tuple[Problem, SourceRow]] = {}
    rows: list[tuple[Problem, SourceRow]] = []
    for row in checker.table.rows:
        problem = checker.problem(row)
        if problem.id in first:
            earlier, earlier_row = first[problem.id]
            if unique_ids:
                raise checker.fail(row, problem.id, "id", f"repeats the id of {earlier_row.place}", "give every problem a unique id")
            if problem.statement != earlier.statement:
                raise checker.fail(
                    row, problem.id, "statement", f"differs from {earlier_row.place}, which has the same id", "one id, one problem statement"
                )
            problem = earlier
        else:
            first[problem.id] = (problem, row)
        rows.append((problem, row))
    return rows


def problems_from(table: Table, layout: Layout) -> list[Problem]:
    """Validated problems from a table; duplicate ids fail (or merge, for graded-response tables)."""
    rows = problem_rows(RowChecker(table, layout), unique_ids=layout.one_row_per_problem)
    return list({problem.id: problem for problem, _ in rows}.values())
