"""Turning a pydantic validation error into the one line a user reads."""

from __future__ import annotations

from pydantic import ValidationError


def first_error(err: ValidationError) -> tuple[str, str]:
    """The first error's field path (`a.b.0`, empty for the whole record) and its message."""
    first = err.errors()[0]
    return ".".join(str(part) for part in first["loc"]), first["msg"]
