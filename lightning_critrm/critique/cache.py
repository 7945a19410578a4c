"""SQLite store of generated critiques, one row per (critic, sampling, template, prompt, completion).

WAL mode lets training processes read while a ``critique`` run writes. Every batch is one
transaction, so a run killed at any instant (kill -9 included) leaves whole batches only: a rerun
skips what is stored and generates the rest, losing and duplicating nothing. Failed generations
are stored with their error so they are reported (and retried by the next run), never trained on;
a prompt too long for the critic's context is retried only once the context is made long enough.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

_SCHEMA = """
CREATE TABLE IF NOT EXISTS critiques (
    key TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    critique TEXT,
    error TEXT,
    critic TEXT NOT NULL,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    seconds REAL,
    created_at REAL NOT NULL,
    too_long INTEGER NOT NULL DEFAULT 0,
    context INTEGER NOT NULL DEFAULT 0
)
"""
# The fingerprint each critic had when it last wrote here, for jobs that read critiques where the
# critic itself cannot be seen (critique.fingerprint).
_FINGERPRINTS = """
CREATE TABLE IF NOT EXISTS fingerprints (
    critic TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    recorded_at REAL NOT NULL
)
"""
_COLUMNS = ("key, status, critique, error, critic, prompt_tokens, completion_tokens, seconds, "
            "too_long, context")


@dataclass(frozen=True)
class CritiqueRow:
    key: str
    status: str  # "ok" or "failed"
    critique: Optional[str]
    error: Optional[str]
    critic: str  # the critic's identity, as JSON, for reports
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    too_long: bool = False  # failed because the prompt does not fit the critic's context
    context: int = 0  # context length of the critic that wrote it, where that can cut a generation


class CritiqueCache:
    """Critiques by key. Safe for one writer and many readers across processes."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: transactions are opened explicitly, one per batch.
        self._conn = sqlite3.connect(str(self.path), timeout=60.0, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable against a killed process (only an OS crash can lose the last batch).
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(_SCHEMA)
        self._conn.execute(_FINGERPRINTS)
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(critiques)")}
        for column in ("too_long", "context"):  # a cache written before the column existed: keep its rows
            if column not in columns:
                self._conn.execute(f"ALTER TABLE critiques ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0")

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "CritiqueCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def put_batch(self, rows: Sequence[CritiqueRow]) -> None:
        """Store a batch atomically. A key stored as ``ok`` is kept, unless the new row was written
        under another context length (see ``generate.usable``)."""
        now = time.time()
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.executemany(
                f"INSERT INTO critiques ({_COLUMNS}, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET status=excluded.status, critique=excluded.critique, "
                "error=excluded.error, critic=excluded.critic, prompt_tokens=excluded.prompt_tokens, "
                "completion_tokens=excluded.completion_tokens, seconds=excluded.seconds, "
                "too_long=excluded.too_long, context=excluded.context, created_at=excluded.created_at "
                # A failed row is replaced; so is one written under another context length (only
                # regenerated when that length changes its text: generate.usable).
                "WHERE critiques.status != 'ok' OR critiques.context != excluded.context",
                [
                    (r.key, r.status, r.critique, r.error, r.critic, r.prompt_tokens, r.completion_tokens,
                     r.seconds,
                     int(r.too_long), r.context, now)
                    for r in rows
                ],
            )
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    def get_many(self, keys: Iterable[str]) -> dict[str, CritiqueRow]:
        """The stored rows among ``keys`` (ok and failed), by key."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, CritiqueRow] = {}
        for start in range(0, len(keys), 900):  # SQLite's bound-parameter limit
            chunk = keys[start : start + 900]
            marks = ",".join("?" * len(chunk))
            for row in self._conn.execute(
                f"SELECT {_COLUMNS} FROM critiques WHERE key IN ({marks})", chunk
            ):
                found[row[0]] = CritiqueRow(*row[:-2], too_long=bool(row[-2]), context=row[-1])
        return found

    def recorded_fingerprint(self, critic: str) -> Optional[str]:
        """The fingerprint last recorded for ``critic`` (its configured identity, as JSON)."""
        row = self._conn.execute("SELECT fingerprint FROM fingerprints WHERE critic = ?",
                                 (critic,)).fetchone()
        return row[0] if row else None

    def record_fingerprint(self, critic: str, fingerprint: str) -> None:
        self._conn.execute(
            "INSERT INTO fingerprints (critic, fingerprint, recorded_at) VALUES (?, ?, ?) ON "
            "CONFLICT(critic) DO UPDATE SET fingerprint=excluded.fingerprint, "
            "recorded_at=excluded.recorded_at",
            (critic, fingerprint, time.time()),
        )

    def count(self, status: Optional[str] = None) -> int:
        if status is None:
            return self._conn.execute("SELECT COUNT(*) FROM critiques").fetchone()[0]
        return self._conn.execute("SELECT COUNT(*) FROM critiques WHERE status = ?", (status,)).fetchone()[0]

    def rows(self) -> list[tuple]:
        """Every row without timestamps, ordered by key (for comparing caches)."""
        return self._conn.execute(
            "SELECT key, status, critique, error, critic FROM critiques ORDER BY key"
        ).fetchall()
