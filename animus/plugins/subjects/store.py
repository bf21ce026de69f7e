"""SQLite storage for subjects: the ``default``, ``requirements`` and ``sqlite`` backends.

One class serves all three; they differ only in the file and the kind:
``default`` keeps ``task`` subjects in the scoped ``workflow.db`` (beside the
workflow tables, hence the ``subjects_`` prefix), ``requirements`` keeps
``requirement`` subjects, ``sqlite`` uses a file the operator chose.

Several plugin processes (and the CLI's one-shot router) may write the same
file at once: every write is one ``BEGIN IMMEDIATE`` transaction (see
``sqlite_schema``), so an id is allocated and its row inserted atomically and
nothing is lost or duplicated. A connection belongs to the process that
opened it; one inherited across ``fork`` is never used again.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from animus.errors import InvalidInput, NotFound

from . import sqlite_schema
from .edits import apply_update, check_fields, clean_labels, new_subject
from .model import (
    Clock,
    Subject,
    parse_kind,
    parse_status,
    qualify,
    resolve_status,
    split_subject_id,
    utc_now,
)

__all__ = ["SubjectStore"]

_COLUMNS = (
    "native_id, title, description, status, priority, labels, assignee, parent, url,"
    " created_at, updated_at, blocked_reason, blocked_at, custom"
)


def _is_normalized(status: object) -> bool:
    """``in-progress`` and ``done`` are both normalized and requirement-native;
    a filter on them means the normalized status."""
    try:
        parse_status(status)
    except InvalidInput:
        return False
    return True


def _json(value: Any, what: str) -> str:
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{what} must be JSON-serializable: {exc}") from None


class SubjectStore:
    """Subjects of one kind in one SQLite file; safe for many writing processes."""

    def __init__(self, db_path: Path, kind: str, id_prefix: str, *, clock: Clock = utc_now) -> None:
        self.db_path = Path(db_path)
        self.kind = parse_kind(kind)
        if not re.fullmatch(r"[A-Z][A-Z0-9]*", id_prefix):
            raise InvalidInput(
                f"invalid id prefix {id_prefix!r}: expected upper-case letters and digits"
            )
        self.id_prefix = id_prefix
        self._clock = clock
        self._id_pattern = re.compile(rf"{id_prefix}-(\d+)", re.IGNORECASE)
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        self._connection()  # a bad path or a too-new schema fails here, not on first use

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():
            self._conn, self._pid = sqlite_schema.connect(self.db_path), os.getpid()
        return self._conn

    def schema_version(self) -> int:
        return sqlite_schema.schema_version(self._connection())

    def close(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None

    def __enter__(self) -> SubjectStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- ids -------------------------------------------------------------------------

    def native_id(self, subject_id: str) -> str:
        """Accept ``TASK-001``, ``task:TASK-001``, ``task-1`` or ``1``; return ``TASK-001``."""
        kind, native = split_subject_id(subject_id)
        if kind is not None and kind != self.kind:
            raise InvalidInput(
                f"subject id {subject_id!r} is of kind {kind!r}; this backend serves {self.kind!r}"
            )
        if native.isdigit():
            return self._format_id(int(native))
        match = self._id_pattern.fullmatch(native)
        return self._format_id(int(match.group(1))) if match else native

    def _format_id(self, number: int) -> str:
        return f"{self.id_prefix}-{number:03d}"

    def _resolve_parent(self, conn: sqlite3.Connection, ref: str | None) -> str | None:
        """Qualify a parent given without a kind; a parent of this kind must exist."""
        if ref is None or not str(ref).strip():
            return None
        kind, native = split_subject_id(str(ref))
        if kind is not None and kind != self.kind:
            return str(ref).strip()  # another backend's subject: not ours to check
        native = self.native_id(native)
        self._row(conn, native)
        return qualify(self.kind, native)

    # -- reads -----------------------------------------------------------------------

    def _row(self, conn: sqlite3.Connection, native: str) -> sqlite3.Row:
        row: sqlite3.Row | None = conn.execute(
            f"SELECT {_COLUMNS} FROM subjects_items WHERE kind = ? AND native_id = ?",
            (self.kind, native),
        ).fetchone()
        if row is None:
            raise NotFound(
                f"{self.kind} {native} not found", fix=f"animus subject list --kind {self.kind}"
            )
        return row

    def _subjects(self, conn: sqlite3.Connection, rows: Iterable[sqlite3.Row]) -> list[Subject]:
        """Rows to subjects; ``children`` is derived from the parent column."""
        rows = list(rows)
        children: dict[str, list[str]] = {}
        if rows:
            for parent, native in conn.execute(
                "SELECT parent, native_id FROM subjects_items"
                " WHERE kind = ? AND parent IS NOT NULL ORDER BY seq",
                (self.kind,),
            ):
                children.setdefault(parent, []).append(qualify(self.kind, native))
        return [
            Subject(
                id=qualify(self.kind, row["native_id"]),
                kind=self.kind,
                title=row["title"],
                description=row["description"],
                status=row["status"],
                priority=row["priority"],
                labels=tuple(json.loads(row["labels"])),
                assignee=row["assignee"],
                parent=row["parent"],
                children=tuple(children.get(qualify(self.kind, row["native_id"]), ())),
                url=row["url"],
                created_at=row["created_at"],
                updated_at=row["updated_at"],
                blocked_reason=row["blocked_reason"],
                blocked_at=row["blocked_at"],
                custom=json.loads(row["custom"]),
            )
            for row in rows
        ]

    def get(self, subject_id: str) -> Subject:
        conn = self._connection()
        return self._subjects(conn, [self._row(conn, self.native_id(subject_id))])[0]

    def list(
        self,
        status: str | Iterable[str] | None = None,
        limit: int | None = None,
        labels: Iterable[str] | None = None,
    ) -> list[Subject]:
        """Subjects in creation order, filtered by status(es) and labels (all must match).

        For requirements a native status (``po-review``) filters on the native status.
        """
        where, args = ["kind = ?"], [self.kind]
        if status is not None:
            clauses = []
            for value in [status] if isinstance(status, str) else list(status):
                normalized, native = resolve_status(self.kind, value)
                if native is not None and not _is_normalized(value):
                    clauses.append("json_extract(custom, '$.native_status') = ?")
                    args.append(native)
                else:
                    clauses.append("status = ?")
                    args.append(normalized)
            where.append("(" + (" OR ".join(clauses) or "0") + ")")
        for label in clean_labels(labels):
            where.append("EXISTS (SELECT 1 FROM json_each(labels) WHERE value = ?)")
            args.append(label)
        sql = f"SELECT {_COLUMNS} FROM subjects_items WHERE {' AND '.join(where)} ORDER BY seq"
        if limit is not None:
            if int(limit) < 0:
                raise InvalidInput(f"invalid limit {limit!r}: expected a number >= 0")
            sql += f" LIMIT {int(limit)}"
        conn = self._connection()
        return self._subjects(conn, conn.execute(sql, args))

    def next(self) -> Subject | None:
        """The ready subject to work on next: highest priority, then oldest.

        It does not claim the subject; the caller moves it to in-progress.
        """
        conn = self._connection()
        row = conn.execute(
            f"SELECT {_COLUMNS} FROM subjects_items WHERE kind = ? AND status = 'ready'"
            " ORDER BY priority, created_at, seq LIMIT 1",
            (self.kind,),
        ).fetchone()
        return None if row is None else self._subjects(conn, [row])[0]

    # -- writes ----------------------------------------------------------------------

    def create(
        self,
        title: str,
        description: str = "",
        status: str = "backlog",
        priority: str = "p2",
        labels: Iterable[str] = (),
        assignee: str | None = None,
        parent: str | None = None,
        custom: dict[str, Any] | None = None,
    ) -> Subject:
        """Insert a subject under the next free id, allocated in the same transaction."""
        fields: dict[str, Any] = {
            "title": title,
            "description": description,
            "status": status,
            "priority": priority,
            "labels": labels,
            "assignee": assignee,
            "custom": custom,
        }
        new_subject(
            self.kind, "NEW", now=self._clock(), **fields
        )  # reject bad input before locking
        conn = self._connection()
        with sqlite_schema.write_transaction(conn):
            parent_ref = self._resolve_parent(conn, parent)
            number = int(
                conn.execute(
                    "INSERT INTO subjects_counters(kind, last) VALUES (?, 1)"
                    " ON CONFLICT(kind) DO UPDATE SET last = last + 1 RETURNING last",
                    (self.kind,),
                ).fetchone()[0]
            )
            subject = new_subject(
                self.kind, self._format_id(number), parent=parent_ref, now=self._clock(), **fields
            )
            conn.execute(
                f"INSERT INTO subjects_items(kind, seq, {_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (self.kind, number, *self._values(subject)),
            )
        return self.get(subject.native_id)

    def update(self, subject_id: str, **fields: Any) -> Subject:
        """Change the given fields; see ``edits.apply_update`` for the rules."""
        check_fields(fields)
        native = self.native_id(subject_id)
        conn = self._connection()
        with sqlite_schema.write_transaction(conn):
            current = self._subjects(conn, [self._row(conn, native)])[0]
            updated = apply_update(
                current, fields, self._clock(), lambda ref: self._resolve_parent(conn, ref)
            )
            assignments = ", ".join(f"{c.strip()} = ?" for c in _COLUMNS.split(","))
            conn.execute(
                f"UPDATE subjects_items SET {assignments} WHERE kind = ? AND native_id = ?",
                (*self._values(updated), self.kind, native),
            )
        return self.get(native)

    def set_status(self, subject_id: str, status: str, reason: str | None = None) -> Subject:
        """Change the status with the §D.2 side effects; ``reason`` is the blocked reason."""
        fields: dict[str, Any] = {"status": status}
        if reason is not None:
            fields["blocked_reason"] = reason
        return self.update(subject_id, **fields)

    @staticmethod
    def _values(subject: Subject) -> tuple[Any, ...]:
        """Column values in ``_COLUMNS`` order."""
        return (
            subject.native_id,
            subject.title,
            subject.description,
            subject.status,
            subject.priority,
            _json(list(subject.labels), "labels"),
            subject.assignee,
            subject.parent,
            subject.url,
            subject.created_at,
            subject.updated_at,
            subject.blocked_reason,
            subject.blocked_at,
            _json(dict(subject.custom), "custom"),
        )
