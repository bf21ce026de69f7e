"""Which webhook deliveries were already accepted: replay protection that survives restarts.

A signed delivery stays valid forever (GitHub signs the body only), so
whoever captures one could send it again and start the workflow again. Each
accepted delivery's id (``X-GitHub-Delivery``, or ``webhook-id`` for senders
that follow the Standard Webhooks scheme; without either, the body's
sha256) is recorded per trigger in ``<state root>/triggers/webhook-deliveries.db``
in the same transaction that decides it is new, so two copies racing each
other cannot both win. Records older than ``WINDOW_SECS`` (7 days: longer
than GitHub lets anyone redeliver) or beyond the newest ``MAX_ROWS`` are
pruned.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

__all__ = ["DeliveryLog", "WINDOW_SECS", "MAX_ROWS"]

WINDOW_SECS = 7 * 24 * 3600.0
MAX_ROWS = 100_000


class DeliveryLog:
    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS deliveries (trigger_id TEXT NOT NULL, delivery TEXT NOT NULL,"
                         " at REAL NOT NULL, PRIMARY KEY (trigger_id, delivery))")
        self._db.execute("CREATE INDEX IF NOT EXISTS deliveries_at ON deliveries (at)")
        self._inserts = 0
        self._lock = threading.Lock()  # handlers run in threads; one connection, one writer

    def first_time(self, trigger_id: str, delivery: str, now: float | None = None) -> bool:
        """Record ``delivery`` for ``trigger_id``; False if it was recorded before (a replay)."""
        now = time.time() if now is None else now
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cur = self._db.execute("INSERT OR IGNORE INTO deliveries VALUES (?, ?, ?)",
                                       (trigger_id, delivery[:200], now))
                new = cur.rowcount == 1
                if new:
                    self._prune(now)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return new

    def _prune(self, now: float) -> None:
        self._inserts += 1
        if self._inserts % 100 != 1:
            return  # cheap enough once in a hundred
        self._db.execute("DELETE FROM deliveries WHERE at < ?", (now - WINDOW_SECS,))
        self._db.execute("DELETE FROM deliveries WHERE at <= (SELECT at FROM deliveries ORDER BY at DESC "
                         "LIMIT 1 OFFSET ?)", (MAX_ROWS,))

    def close(self) -> None:
        self._db.close()
