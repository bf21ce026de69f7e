"""workflow.db's connections: WAL, a busy timeout, and a quick wait for the write lock.

Several processes write workflow.db: the workflows supervisor and every
runner, each a transaction at a time (``BEGIN IMMEDIATE`` takes the write
lock). SQLite's own busy handler sleeps 1, 2, 5, 10 ... ms between tries; a
transaction here holds the lock for a fraction of a millisecond, so with two
runners and their supervisor writing, most runs slept through one or more of
those waits while a core stood idle. ``begin_immediate`` tries again in short
steps first (~3 ms in all), then leaves the rest of the wait to SQLite, up to
the connection's timeout.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

__all__ = ["BUSY_TIMEOUT_S", "begin_immediate", "connect"]

BUSY_TIMEOUT_S = 10  # how long a statement waits for another connection's write lock, in all
_QUICK_WAITS = (0.00005, 0.0001, 0.0002, 0.0004, 0.0008, 0.0016)
_BUSY_TIMEOUT = f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}"


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")  # the busy timeout is connect's timeout
    return conn


def begin_immediate(conn: sqlite3.Connection) -> None:
    """``BEGIN IMMEDIATE`` (the write lock), waiting for another writer in short steps first."""
    conn.execute("PRAGMA busy_timeout=0")
    try:
        for pause in _QUICK_WAITS:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                    raise
            time.sleep(pause)
    finally:
        conn.execute(_BUSY_TIMEOUT)
    conn.execute("BEGIN IMMEDIATE")  # still held: SQLite's own waits, up to the timeout
