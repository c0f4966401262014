"""Keeping secrets out of what qednano writes and prints: one `redact` for files, logs and errors.

Configs only name the environment variable that holds a key; `redact` replaces the value of any
secret-looking environment variable (and any `Bearer ...` token) wherever it appears: in run
manifests, sample records, error messages.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any

SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)", re.IGNORECASE)
BEARER = re.compile(r"Bearer\s+\S+")
REDACTED = "[redacted]"


def secret_values() -> list[str]:
    """Values of environment variables whose names look secret (long enough to be real)."""
    return [v for k, v in os.environ.items() if SECRET_NAME.search(k) and len(v) >= 8]


def redact(value: Any, secrets: Iterable[str | None] | None = None) -> Any:
    """A copy of `value` (nested dicts/lists/strings) with every secret and bearer token replaced.

    `secrets` defaults to the secret-looking environment values; look them up once with
    `secret_values()` and pass them when redacting many values.
    """
    found = [s for s in (secret_values() if secrets is None else secrets) if s]
    return _redact(value, found)


def _redact(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
        return BEARER.sub(f"Bearer {REDACTED}", value)
    if isinstance(value, dict):
        return {k: _redact(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact(v, secrets) for v in value]
    return value
