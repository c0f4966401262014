"""`samples.jsonl`: an append-only log of sample records, latest line per sample wins.

A sample is appended when its generation finishes and again when it is graded, so a run
killed at any point keeps every finished step. A kill can cut the last line short; reading
skips such a torn final line (it is the one being written) but reports any other bad line
with its file and line number.

The file stays open for appending, and each line is flushed as it is written. Lines are the
records' own JSON; the secret-looking environment values that must not reach the file are
looked up once per store.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TextIO

from pydantic import ValidationError

from qednano.errors import first_error
from qednano.records.sample import SampleRecord
from qednano.secrets import redact, secret_values


class StoreError(ValueError):
    pass


class SampleStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.secrets = secret_values()
        self.superseded = 0  # lines in the file that a later line replaces (see compact), as far as known
        self._keys: set[tuple[str, int]] = set()
        self._handle: TextIO | None = None

    def read(self) -> dict[tuple[str, int], SampleRecord]:
        if not self.path.is_file():
            return {}
        text = self.path.read_text()
        lines = text.splitlines()
        records: dict[tuple[str, int], SampleRecord] = {}
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            torn = number == len(lines) and not text.endswith("\n")
            record = self._parse(number, line, torn)
            if record is None:
                break  # torn last line from a killed run: that sample is redone
            records[record.key] = record
        self._keys = set(records)
        self.superseded = sum(1 for line in lines if line.strip()) - len(records)  # a torn line counts too
        return records

    def _parse(self, number: int, line: str, torn: bool) -> SampleRecord | None:
        try:
            return SampleRecord.model_validate_json(line)  # the usual case; errors are explained below
        except ValidationError:
            pass
        try:
            data = json.loads(line)
        except json.JSONDecodeError as err:
            if torn:
                return None
            raise StoreError(f"{self.path}:{number}: not valid JSON ({err.msg} at column {err.colno}); fix or delete the line") from err
        try:
            return SampleRecord.model_validate(data)
        except ValidationError as err:
            field, message = first_error(err)
            raise StoreError(f"{self.path}:{number}: not a SampleRecord: field {field or '(record)'!r}: {message}") from err

    def append(self, record: SampleRecord) -> None:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("a", encoding="utf-8")
        self._handle.write(as_line(record, self.secrets))
        self._handle.flush()  # a killed run keeps every line written
        if record.key in self._keys:
            self.superseded += 1
        self._keys.add(record.key)

    def compact(self, records: list[SampleRecord]) -> None:
        """Rewrite the file with one line per sample (in the given order), atomically."""
        self.close()
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            handle.writelines(as_line(record, self.secrets) for record in records)
        tmp.replace(self.path)
        self._keys, self.superseded = {record.key for record in records}, 0

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def as_line(record: SampleRecord, secrets: list[str]) -> str:
    """The record as one JSON line, with any of `secrets` (and bearer tokens) redacted."""
    line = record.model_dump_json()
    # JSON writes a string's characters as they are, except quotes, backslashes and control
    # characters, which it escapes; look for each secret as JSON would write it.
    if "Bearer" in line or any(json.dumps(secret, ensure_ascii=False)[1:-1] in line for secret in secrets):
        line = json.dumps(redact(record.model_dump(mode="json"), secrets), ensure_ascii=False)
    return line + "\n"


def load_run(run_dir: str | Path) -> tuple[list[SampleRecord], dict]:
    """The records of `run_dir/samples.jsonl` (latest line per sample) and its manifest dict.

    Bad lines raise ValueError naming the file and line (see `SampleStore.read`). A missing
    manifest gives {} (the report only reads labels from it).
    """
    run_dir = Path(run_dir)
    samples_path = run_dir / "samples.jsonl"
    if not samples_path.is_file():
        raise FileNotFoundError(f"{samples_path} does not exist: is {run_dir} an evaluation run directory?")
    records = list(SampleStore(samples_path).read().values())
    return records, load_manifest(run_dir / "manifest.json")


def load_manifest(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from err
    if not isinstance(manifest, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(manifest).__name__}")
    return manifest
