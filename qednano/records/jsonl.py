"""One reader of JSON Lines files that runs write: problems.jsonl, metrics, completions, matches,
a data stage's decisions. (samples.jsonl has its own reader in store.py, tuned for speed.)

A last line without its newline is the one being written (or cut by a kill) and is skipped; any
other bad line stops the read naming the file, the line and the field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from qednano.errors import first_error


def read_jsonl(path: Path, model: type[BaseModel] | None = None) -> list[Any]:
    """Every line of `path` as a dict, or validated as `model` when one is given."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    rows: list[Any] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as err:
            if number == len(lines) and not text.endswith("\n"):
                break  # torn last line: being written right now
            raise ValueError(f"{path}:{number}: not valid JSON ({err.msg} at column {err.colno})") from err
        if model is None:
            rows.append(data)
            continue
        try:
            rows.append(model.model_validate(data))
        except ValidationError as err:
            field, message = first_error(err)
            raise ValueError(f"{path}:{number}: not a {model.__name__}: field {field or '(record)'!r}: {message}") from err
    return rows
