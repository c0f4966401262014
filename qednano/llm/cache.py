"""A durable SQLite cache of completed model calls.

Keyed by everything that determines a call (endpoint identity, model, messages, sampling,
sample index), so re-running a finished job makes no calls and a killed job resumes where it
stopped. WAL mode and a busy timeout make it safe for several processes at once; each put is
its own transaction, so a SIGKILL loses at most the calls in flight. Failed calls are never
stored: a resumed run retries them.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import sqlite3
import threading
from pathlib import Path

from qednano.llm.types import Completion, Messages, Sampling

SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    key TEXT PRIMARY KEY,
    identity TEXT NOT NULL,
    completion TEXT NOT NULL,
    created REAL NOT NULL DEFAULT (julianday('now'))
)
"""


def call_key(identity: str, messages: Messages, sampling: Sampling, sample_index: int) -> str:
    payload = {
        "identity": identity,
        "messages": messages,
        # `thinking` came later: left out while unset, so entries cached before it keep their keys.
        "sampling": sampling.model_dump(exclude={"n"} | ({"thinking"} if sampling.thinking is None else set())),
        "sample": sample_index,
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


class CallCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=60, check_same_thread=False, isolation_level=None)
        # Switching to WAL does not wait on the busy timeout: two processes opening a new cache
        # at once could see "database is locked". A lock file serialises the set-up.
        with open(self.path.with_name(self.path.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(SCHEMA)
        self._db.execute("PRAGMA synchronous=NORMAL")

    def get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._db.execute("SELECT completion FROM calls WHERE key = ?", (key,)).fetchone()
        return None if row is None else Completion.model_validate_json(row[0])

    def put(self, key: str, identity: str, completion: Completion) -> None:
        if not completion.ok:
            raise ValueError("failed calls are not cached; a resumed run must retry them")
        blob = completion.model_copy(update={"cached": False}).model_dump_json()
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO calls (key, identity, completion) VALUES (?, ?, ?)",
                (key, identity, blob),
            )

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
