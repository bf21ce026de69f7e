"""The SQLite side of the subject store: connection settings, transactions, migrations.

Why the schema version lives in a ``subjects_schema`` row and not in
``PRAGMA user_version``: ``user_version`` is one integer for the whole file,
and the ``default`` backend shares ``workflow.db`` with the workflow store,
whose own migrations would read and overwrite the same number. A row per
component keeps each migration history independent. Every table and index is
prefixed ``subjects_`` for the same reason.

Why ``BEGIN IMMEDIATE``: it takes the write lock before the transaction's
first read, so "read the counter, bump it, insert the row" cannot interleave
with another process; a waiting writer sleeps in SQLite's busy handler (5 s)
instead of failing half-way with ``SQLITE_BUSY``.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from animus.errors import InvalidInput

__all__ = ["SCHEMA_VERSION", "connect", "write_transaction", "schema_version"]

SCHEMA_VERSION = 1
_COMPONENT = "subjects"
_BUSY_TIMEOUT_S = 5.0

# _MIGRATIONS[n] leads from version n to n + 1. Append, never edit.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE TABLE subjects_counters (kind TEXT PRIMARY KEY, last INTEGER NOT NULL)",
        """CREATE TABLE subjects_items (
               kind TEXT NOT NULL,
               native_id TEXT NOT NULL,
               seq INTEGER NOT NULL,
               title TEXT NOT NULL,
               description TEXT NOT NULL DEFAULT '',
               status TEXT NOT NULL,
               priority TEXT NOT NULL,
               labels TEXT NOT NULL DEFAULT '[]',
               assignee TEXT,
               parent TEXT,
               url TEXT,
               created_at TEXT NOT NULL,
               updated_at TEXT NOT NULL,
               blocked_reason TEXT,
               blocked_at TEXT,
               custom TEXT NOT NULL DEFAULT '{}',
               PRIMARY KEY (kind, native_id))""",
        "CREATE INDEX subjects_items_by_status"
        " ON subjects_items(kind, status, priority, created_at, seq)",
        "CREATE INDEX subjects_items_by_parent ON subjects_items(kind, parent)",
    ),
)
assert len(_MIGRATIONS) == SCHEMA_VERSION


def connect(db_path: Path) -> sqlite3.Connection:
    """Open ``db_path`` in WAL mode with a 5 s busy timeout and migrate it."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db_path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_S * 1000)}")
        _enable_wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL")
        with write_transaction(conn):
            _migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _enable_wal(conn: sqlite3.Connection) -> None:
    """Switch a new file to WAL (a property of the file, so this happens once).

    SQLite does not call the busy handler for this switch: when several
    processes open a brand-new file at once, the losers get "database is
    locked" at once. So it is retried here, within the same 5 s budget.
    """
    deadline = time.monotonic() + _BUSY_TIMEOUT_S
    delay = 0.001
    while True:
        try:
            if str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower() == "wal":
                return
            raise sqlite3.OperationalError("journal_mode stayed rollback")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(delay)  # a retry backoff, as SQLite's own busy handler does
        delay = min(delay * 2, 0.05)


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute(
        "SELECT version FROM subjects_schema WHERE component = ?", (_COMPONENT,)
    ).fetchone()
    return int(row[0]) if row else 0


def _migrate(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS subjects_schema"
        " (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
    )
    current = schema_version(conn)
    if current > SCHEMA_VERSION:
        raise InvalidInput(
            f"the subject tables are at schema version {current}, newer than this Animus"
            f" understands ({SCHEMA_VERSION})",
            fix="upgrade animus",
        )
    for version in range(current, SCHEMA_VERSION):
        for statement in _MIGRATIONS[version]:
            conn.execute(statement)
    conn.execute(
        "INSERT INTO subjects_schema(component, version) VALUES (?, ?)"
        " ON CONFLICT(component) DO UPDATE SET version = excluded.version",
        (_COMPONENT, SCHEMA_VERSION),
    )
