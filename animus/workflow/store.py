"""Workflow state in ``~/.animus/<scope>/workflow.db`` (SQLite, WAL).

Tables: ``workflows`` (one row per workflow run), ``phase_attempts`` (every
attempt of every phase, with its verdict, output tail and usage) and
``checkpoints`` (a snapshot after every step). Every change that moves a
workflow is one transaction, so a crash leaves either the old step or the
new one, never half of each. The runner writes progress; the workflows
supervisor owns the queue, recovery and projection.
"""

from __future__ import annotations

import builtins  # the classes below have a method named list, which shadows it in annotations
import json
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypedDict, cast

from animus.errors import Conflict, NotFound
from animus.state.sqlite_conn import begin_immediate, connect

__all__ = ["StaleRun", "WorkflowStore", "new_workflow_id", "ACTIVE", "TERMINAL", "STATUSES", "IDEMPOTENCY_BLOCK"]

STATUSES = ("pending", "running", "completed", "failed", "blocked", "cancelled")
ACTIVE = ("pending", "running")
TERMINAL = ("completed", "failed", "cancelled")
IDEMPOTENCY_BLOCK = "Idempotency: phase requires explicit retry decision"
SCHEMA_VERSION = 2
# Columns added after version 1, added to an existing workflow.db when it is opened.
_ADDED = {"worktree_json": "TEXT NOT NULL DEFAULT '{}'",  # path, branch, base commit, removed
          "delivery_json": "TEXT NOT NULL DEFAULT '{}'"}  # state (pending|done|blocked), commit, merge, pr
_JSON_FIELDS = ("subject", "usage", "worktree", "delivery")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS workflows (
  id TEXT PRIMARY KEY,
  workflow_ref TEXT NOT NULL,
  subject_id TEXT,
  subject_kind TEXT,
  subject_json TEXT NOT NULL DEFAULT '{}',
  status TEXT NOT NULL,
  blocked_reason TEXT,
  failure_reason TEXT,
  waiting TEXT,
  not_before REAL,
  phase_index INTEGER NOT NULL DEFAULT 0,
  current_phase TEXT,
  rework_json TEXT NOT NULL DEFAULT '{}',
  feedback TEXT,
  resume_session TEXT,
  trigger_source TEXT NOT NULL DEFAULT 'manual',
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  projected TEXT,
  runs INTEGER NOT NULL DEFAULT 0,
  node TEXT,
  usage_json TEXT NOT NULL DEFAULT '{}',
  worktree_json TEXT NOT NULL DEFAULT '{}',
  delivery_json TEXT NOT NULL DEFAULT '{}',
  created_at REAL NOT NULL,
  started_at REAL,
  updated_at REAL NOT NULL,
  completed_at REAL
);
CREATE INDEX IF NOT EXISTS workflows_status ON workflows(status);
CREATE INDEX IF NOT EXISTS workflows_subject ON workflows(subject_id);
CREATE TABLE IF NOT EXISTS phase_attempts (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  workflow_id TEXT NOT NULL REFERENCES workflows(id),
  phase TEXT NOT NULL,
  phase_index INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  status TEXT NOT NULL,
  idempotency TEXT NOT NULL,
  mode TEXT NOT NULL,
  provider TEXT,
  session_id TEXT,
  verdict TEXT,
  decision_json TEXT,
  exit_code INTEGER,
  error TEXT,
  output_tail TEXT NOT NULL DEFAULT '',
  usage_json TEXT NOT NULL DEFAULT '{}',
  started_at REAL NOT NULL,
  ended_at REAL
);
CREATE INDEX IF NOT EXISTS attempts_workflow ON phase_attempts(workflow_id);
CREATE TABLE IF NOT EXISTS checkpoints (
  workflow_id TEXT NOT NULL,
  number INTEGER NOT NULL,
  ts REAL NOT NULL,
  reason TEXT NOT NULL,
  phase TEXT,
  state_json TEXT NOT NULL,
  PRIMARY KEY (workflow_id, number)
);
CREATE TABLE IF NOT EXISTS schedule_runs (
  schedule_id TEXT PRIMARY KEY,
  last_run REAL NOT NULL,
  run_count INTEGER NOT NULL DEFAULT 0
);
"""
_OBJECTS = frozenset(re.findall(r"CREATE (?:TABLE|INDEX) IF NOT EXISTS (\w+)", _SCHEMA))
_CHECKPOINT = ("INSERT INTO checkpoints SELECT ?, COALESCE((SELECT MAX(number) FROM checkpoints WHERE workflow_id=?), 0)"
               " + 1, ?, ?, ?, json_object('status', status, 'phase_index', phase_index, 'current_phase',"
               " current_phase, 'rework_json', rework_json, 'blocked_reason', blocked_reason) FROM workflows"
               " WHERE id=?")


class WorkflowRow(TypedDict):
    """A ``workflows`` row as the store returns it: ``*_json`` columns decoded, named without the suffix."""

    id: str
    workflow_ref: str
    subject_id: str | None
    subject_kind: str | None
    subject: dict[str, Any]
    status: str
    blocked_reason: str | None
    failure_reason: str | None
    waiting: str | None
    not_before: float | None
    phase_index: int
    current_phase: str | None
    rework: dict[str, Any]
    feedback: str | None
    resume_session: str | None
    trigger_source: str
    cancel_requested: int
    projected: str | None
    runs: int
    node: str | None
    usage: dict[str, Any]
    worktree: dict[str, Any]
    delivery: dict[str, Any]
    created_at: float
    started_at: float | None
    updated_at: float
    completed_at: float | None


def new_workflow_id() -> str:
    return "wf-" + os.urandom(5).hex()


# a pending run may start unless it waits: for an approval not yet given, or for a reset time still ahead
_DISPATCHABLE = ("FROM workflows WHERE status='pending' AND (waiting IS NULL OR waiting='' "
                 "OR waiting LIKE 'approved:%' OR (not_before > 0 AND not_before <= ?))")


def _row(row: sqlite3.Row | None) -> dict[str, Any] | None:
    if row is None:
        return None
    out = dict(row)
    for key in list(out):
        if key.endswith("_json"):
            out[key[:-5]] = json.loads(out.pop(key) or "{}")
    return out


def _workflow(row: sqlite3.Row | None) -> WorkflowRow | None:
    return cast("WorkflowRow | None", _row(row))


class StaleRun(BaseException):
    """A runner's run is no longer the workflow's current one: it must stop and write nothing.

    A ``BaseException`` so that no ``except Exception`` on the way swallows it."""


class WorkflowStore:
    def __init__(self, path: Path, fence: tuple[str, int] | None = None, ensure_schema: bool = True) -> None:
        """``ensure_schema=False`` (a runner): the workflows supervisor, which starts every runner,
        has already opened this file with its schema checked."""
        self.path = path
        self.conn = connect(path)
        # a runner's store is fenced to (workflow id, run number): every write checks, in its
        # transaction, that the run is still current and running, so a runner that outlived its
        # daemon (or was superseded) can never record a step twice
        self.fence = fence
        if ensure_schema:
            self._ensure_schema()

    def _ensure_schema(self) -> None:
        if not self._complete():  # no write lock taken when nothing is missing
            with self.tx() as c:
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        c.execute(stmt)
                have = {row[1] for row in c.execute("PRAGMA table_info(workflows)")}
                for column, decl in _ADDED.items():
                    if column not in have:  # a workflow.db from before the column existed
                        c.execute(f"ALTER TABLE workflows ADD COLUMN {column} {decl}")
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version < SCHEMA_VERSION:
            self.conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _complete(self) -> bool:
        """Every table, index and added column is there (two reads)."""
        names = {str(r[0]) for r in self.conn.execute("SELECT name FROM sqlite_master")}
        columns = {str(r[1]) for r in self.conn.execute("PRAGMA table_info(workflows)")}
        return _OBJECTS <= names and _ADDED.keys() <= columns

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        begin_immediate(self.conn)
        try:
            if self.fence is not None:
                self._check_fence()
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _check_fence(self) -> None:
        assert self.fence is not None
        wf_id, run = self.fence
        row = self.conn.execute("SELECT runs, status FROM workflows WHERE id=?", (wf_id,)).fetchone()
        if row is None or row["runs"] != run or row["status"] != "running":
            now = "gone" if row is None else f"run {row['runs']}, {row['status']}"
            raise StaleRun(f"run {run} of {wf_id} is no longer current ({now})")

    def close(self) -> None:
        self.conn.close()

    # -- workflows -----------------------------------------------------------
    def create(self, workflow_ref: str, subject: dict[str, Any] | None, trigger_source: str = "manual") -> WorkflowRow:
        now = time.time()
        wf_id = new_workflow_id()
        subject = subject or {}
        with self.tx() as c:
            if subject.get("id"):
                active = c.execute("SELECT id FROM workflows WHERE subject_id=? AND status IN ('pending','running')",
                                   (subject["id"],)).fetchone()
                if active:
                    raise Conflict(f"{subject['id']} already has an active workflow ({active['id']})",
                                   fix=f"animus workflow get {active['id']}, or animus workflow cancel {active['id']}")
            c.execute("INSERT INTO workflows (id, workflow_ref, subject_id, subject_kind, subject_json, status, "
                      "trigger_source, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
                      (wf_id, workflow_ref, subject.get("id"), subject.get("kind"), json.dumps(subject),
                       "pending", trigger_source, now, now))
            self._checkpoint(c, wf_id, "created", None)
        return self.get(wf_id)

    def get(self, wf_id: str) -> WorkflowRow:
        row = _workflow(self.conn.execute("SELECT * FROM workflows WHERE id=?", (wf_id,)).fetchone())
        if row is None:
            raise NotFound(f"no workflow {wf_id!r}", fix="animus workflow list")
        return row

    def list(self, status: str | None = None, limit: int = 50, subject_id: str | None = None) -> builtins.list[WorkflowRow]:
        sql, args = "SELECT * FROM workflows WHERE 1=1", builtins.list[Any]()
        if status:
            sql += " AND status=?"
            args.append(status)
        if subject_id:
            sql += " AND subject_id=?"
            args.append(subject_id)
        sql += " ORDER BY created_at DESC LIMIT ?"
        args.append(limit)
        return [r for r in (_workflow(x) for x in self.conn.execute(sql, args)) if r is not None]

    def by_status(self, *statuses: str) -> builtins.list[WorkflowRow]:
        marks = ",".join("?" * len(statuses))
        rows = self.conn.execute(f"SELECT * FROM workflows WHERE status IN ({marks}) ORDER BY created_at", statuses)
        return [r for r in (_workflow(x) for x in rows) if r is not None]

    def dispatchable(self, limit: int, now: float) -> builtins.list[str]:
        """The ids of up to ``limit`` pending runs that wait for nothing (no approval, no reset time
        still ahead), oldest first: the run queue, read without decoding rows or the whole backlog."""
        rows = self.conn.execute("SELECT id " + _DISPATCHABLE + " ORDER BY created_at LIMIT ?", (now, limit))
        return [str(r[0]) for r in rows]

    def dispatchable_count(self, now: float) -> int:
        return int(self.conn.execute("SELECT count(*) " + _DISPATCHABLE, (now,)).fetchone()[0])

    def unprojected(self) -> builtins.list[WorkflowRow]:
        """Terminal, subject-backed workflows whose outcome is not yet on their task."""
        rows = self.conn.execute("SELECT * FROM workflows WHERE status IN ('completed','failed','cancelled') "
                                 "AND subject_id IS NOT NULL AND (projected IS NULL OR projected != status)")
        return [r for r in (_workflow(x) for x in rows) if r is not None]

    def update(self, wf_id: str, c: sqlite3.Connection | None = None, **fields: Any) -> None:
        if c is None:  # a transaction of its own: fenced for a runner, and a quick wait for the lock
            with self.tx() as own:
                self.update(wf_id, own, **fields)
            return
        fields["updated_at"] = time.time()
        for key in [k for k in fields if k in _JSON_FIELDS]:
            fields[f"{key}_json"] = json.dumps(fields.pop(key))
        if "rework" in fields:
            fields["rework_json"] = json.dumps(fields.pop("rework"))
        cols = ", ".join(f"{k}=?" for k in fields)
        (c or self.conn).execute(f"UPDATE workflows SET {cols} WHERE id=?", (*fields.values(), wf_id))

    def set_status(self, wf_id: str, status: str, reason: str | None = None, checkpoint: str | None = None,
                   **fields: Any) -> WorkflowRow:
        with self.tx() as c:
            extra: dict[str, Any] = dict(fields)
            if status == "blocked":
                extra["blocked_reason"] = reason
            elif status == "failed":
                extra["failure_reason"] = reason
            if status in TERMINAL:
                extra["completed_at"] = time.time()
            if status in ("pending", "running"):
                extra.setdefault("blocked_reason", None)
            self.update(wf_id, c, status=status, **extra)
            self._checkpoint(c, wf_id, checkpoint or status, None)
        return self.get(wf_id)

    # -- attempts ------------------------------------------------------------
    def begin_attempt(self, wf_id: str, phase: str, index: int, idempotency: str, mode: str,
                      provider: str | None) -> tuple[int, int]:
        """A new running attempt of ``phase``: (its id, its number among the phase's attempts)."""
        with self.tx() as c:
            # fetchall: a RETURNING statement is done (and COMMIT may follow) once its rows are read
            (attempt_id, number), = c.execute(
                "INSERT INTO phase_attempts (workflow_id, phase, phase_index, attempt, status, idempotency, mode, "
                "provider, started_at) VALUES (?,?,?,(SELECT COUNT(*) + 1 FROM phase_attempts WHERE workflow_id=? "
                "AND phase=?),?,?,?,?,?) RETURNING id, attempt",
                (wf_id, phase, index, wf_id, phase, "running", idempotency, mode, provider, time.time())).fetchall()
            self.update(wf_id, c, status="running", current_phase=phase, phase_index=index)
            self._checkpoint(c, wf_id, "phase_started", phase)
            return int(attempt_id), int(number)

    def finish_attempt(self, attempt_id: int, c: sqlite3.Connection, status: str, **fields: Any) -> None:
        for key in ("decision", "usage"):
            if key in fields:
                fields[f"{key}_json"] = json.dumps(fields.pop(key))
        fields["status"] = status
        fields["ended_at"] = time.time()
        cols = ", ".join(f"{k}=?" for k in fields)
        c.execute(f"UPDATE phase_attempts SET {cols} WHERE id=?", (*fields.values(), attempt_id))

    def cancel_running_attempts(self, c: sqlite3.Connection, wf_id: str) -> None:
        c.execute("UPDATE phase_attempts SET status='cancelled', ended_at=? WHERE workflow_id=? AND status='running'",
                  (time.time(), wf_id))

    def attempts(self, wf_id: str) -> builtins.list[dict[str, Any]]:
        rows = self.conn.execute("SELECT * FROM phase_attempts WHERE workflow_id=? ORDER BY id", (wf_id,))
        return [r for r in (_row(x) for x in rows) if r is not None]

    def running_attempt(self, wf_id: str) -> dict[str, Any] | None:
        return _row(self.conn.execute("SELECT * FROM phase_attempts WHERE workflow_id=? AND status='running' "
                                      "ORDER BY id DESC LIMIT 1", (wf_id,)).fetchone())

    def _checkpoint(self, c: sqlite3.Connection, wf_id: str, reason: str, phase: str | None) -> None:
        """The next numbered snapshot of the workflow's row: one statement (every step writes one)."""
        c.execute(_CHECKPOINT, (wf_id, wf_id, time.time(), reason, phase, wf_id))

    def checkpoint(self, c: sqlite3.Connection, wf_id: str, reason: str, phase: str | None) -> None:
        self._checkpoint(c, wf_id, reason, phase)

    def recent_checkpoints(self, wf_id: str, limit: int = 20) -> builtins.list[str]:
        """The reasons of the workflow's last checkpoints, newest first."""
        rows = self.conn.execute("SELECT reason FROM checkpoints WHERE workflow_id=? ORDER BY number DESC LIMIT ?",
                                 (wf_id, limit))
        return [str(r[0]) for r in rows]

    # -- schedules -----------------------------------------------------------
    def schedule_last_run(self, schedule_id: str) -> float | None:
        row = self.conn.execute("SELECT last_run FROM schedule_runs WHERE schedule_id=?", (schedule_id,)).fetchone()
        return float(row[0]) if row else None

    def record_schedule_run(self, schedule_id: str, when: float) -> None:
        with self.tx() as c:
            c.execute("INSERT INTO schedule_runs VALUES (?,?,1) ON CONFLICT(schedule_id) DO UPDATE "
                      "SET last_run=excluded.last_run, run_count=run_count+1", (schedule_id, when))
