"""Tasks as Markdown files in the repository: the ``markdown`` backend.

Each task is ``.animus/tasks/TASK-001.md`` (the directory is configurable):
YAML front matter for the fields, the body for the description. People edit
these files by hand, so:

- every read goes to disk; there is no cache to go stale;
- a write changes only the front-matter keys whose values changed, in place
  (``frontmatter.edit``), and leaves the body bytes alone unless the
  description itself changed;
- a write refuses with ``Conflict`` when the file changed since it was read,
  so a person's save is never overwritten. The check compares the content
  hash taken at read time with the file just before the rename, while holding
  an ``flock`` on the directory so two Animus writers cannot both pass it;
  the person's editor takes no lock, so that last window is only narrowed.
  Callers that read earlier pass ``expected_version`` from ``get_with_version``;
- a write is write-then-rename (temp file in the same directory, fsync,
  ``os.replace``, fsync of the directory): a crash leaves the old file or the
  new one, never half of one. A new file is linked into place with
  ``os.link``, which fails if the name is taken, so concurrent creators never
  share an id.

The file name is the id; an ``id`` key that disagrees with it is ignored.
Ids are the highest number on disk plus one, so deleting the newest file
frees its id again.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

from animus.errors import Conflict, InvalidInput, NotFound

from . import frontmatter
from .atomic_file import content_hash, locked_directory, write_atomic
from .edits import apply_update, check_fields, clean_labels, new_subject
from .model import (
    Clock,
    Subject,
    format_timestamp,
    parse_kind,
    parse_status,
    qualify,
    split_subject_id,
    utc_now,
)

__all__ = ["MarkdownStore", "DEFAULT_DIRECTORY"]

DEFAULT_DIRECTORY = Path(".animus/tasks")


def _text(value: Any) -> str | None:
    """A front-matter scalar as text; an unquoted YAML timestamp becomes RFC 3339."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


class MarkdownStore:
    """Subjects of one kind as Markdown files in one directory."""

    def __init__(
        self,
        directory: Path,
        kind: str = "task",
        id_prefix: str = "TASK",
        *,
        clock: Clock = utc_now,
    ) -> None:
        self.directory = Path(directory)
        self.kind = parse_kind(kind)
        self.id_prefix = id_prefix
        self._clock = clock
        self._name = re.compile(rf"({re.escape(id_prefix)}-(\d+))\.md")

    @classmethod
    def for_project(cls, project_root: Path, directory: Path | None = None) -> MarkdownStore:
        return cls(Path(project_root) / (directory or DEFAULT_DIRECTORY))

    # -- files -----------------------------------------------------------------------

    def native_id(self, subject_id: str) -> str:
        """``TASK-001``, ``task:TASK-001``, ``task-1`` or ``1`` → ``TASK-001`` (a file name)."""
        kind, native = split_subject_id(str(subject_id))
        if kind is not None and kind != self.kind:
            raise InvalidInput(
                f"subject id {subject_id!r} is of kind {kind!r}; this backend serves {self.kind!r}"
            )
        match = re.fullmatch(rf"(?:{re.escape(self.id_prefix)}-)?(\d+)", native, re.IGNORECASE)
        if match is None:  # also keeps "../x" from ever becoming a path
            raise InvalidInput(
                f"invalid {self.kind} id {subject_id!r}: expected {self.id_prefix}-<number>"
            )
        return f"{self.id_prefix}-{int(match.group(1)):03d}"

    def _path(self, native: str) -> Path:
        return self.directory / f"{native}.md"

    def _files(self) -> list[tuple[int, str]]:
        """``(number, native id)`` of every task file, in id order."""
        if not self.directory.is_dir():
            return []
        found = [self._name.fullmatch(entry.name) for entry in os.scandir(self.directory)]
        return sorted((int(m.group(2)), m.group(1)) for m in found if m)

    def _read(self, native: str) -> tuple[frontmatter.Document, str]:
        try:
            raw = self._path(native).read_bytes()
        except FileNotFoundError:
            raise NotFound(
                f"{self.kind} {native} not found (no {self._path(native)})",
                fix=f"animus subject list --kind {self.kind}",
            ) from None
        return frontmatter.parse(raw.decode("utf-8"), f"{native}.md"), content_hash(raw)

    def _to_subject(self, native: str, doc: frontmatter.Document) -> Subject:
        data = doc.data
        try:
            custom = data.get("custom") or {}
            if not isinstance(custom, dict):
                raise InvalidInput("'custom' must be a mapping")
            title = _text(data.get("title")) or _heading(doc.body) or native
            return Subject(
                id=qualify(self.kind, native),
                kind=self.kind,
                title=title,
                description=doc.body.strip("\r\n"),
                status=parse_status(data.get("status") or "backlog"),
                priority=str(data.get("priority") or "p2"),
                labels=clean_labels(data.get("labels")),
                assignee=_text(data.get("assignee")),
                parent=self._parent_of(data.get("parent")),
                url=_text(data.get("url")),
                created_at=_text(data.get("created_at")),
                updated_at=_text(data.get("updated_at")),
                blocked_reason=_text(data.get("blocked_reason")),
                blocked_at=_text(data.get("blocked_at")),
                custom=custom,
            )
        except InvalidInput as exc:
            raise InvalidInput(
                f"{native}.md: {exc.message}", fix=f"fix the front matter of {self._path(native)}"
            ) from None

    def _children(self, docs: Iterable[tuple[str, frontmatter.Document]]) -> dict[str, list[str]]:
        """Parent id → child ids, from every file's ``parent`` key."""
        children: dict[str, list[str]] = {}
        for native, doc in docs:
            parent = doc.data.get("parent")
            if parent:
                key = self._parent_of(parent) or ""
                children.setdefault(key, []).append(qualify(self.kind, native))
        return children

    def _readable(self) -> Iterator[tuple[str, frontmatter.Document]]:
        """Every task file that can be read now. Skipping broken ones is right only
        for finding children: one broken file must not hide a good one (``list``
        still reports it)."""
        for _, native in self._files():
            try:
                yield native, self._read(native)[0]
            except (InvalidInput, NotFound, UnicodeDecodeError):
                continue

    def _parent_of(self, value: Any) -> str | None:
        """A ``parent`` a person wrote: qualified when it names one of ours, else as written."""
        try:
            return self._qualify_ref(_text(value))
        except InvalidInput:
            return _text(value)

    def _checked_parent(self, ref: str | None) -> str | None:
        """A parent set through Animus: one of this kind must exist (as in SubjectStore)."""
        parent = self._qualify_ref(ref)
        if parent is not None and split_subject_id(parent)[0] == self.kind:
            if not self._path(split_subject_id(parent)[1]).is_file():
                raise NotFound(
                    f"parent {parent} not found", fix=f"animus subject list --kind {self.kind}"
                )
        return parent

    def _qualify_ref(self, ref: str | None) -> str | None:
        if ref is None or not str(ref).strip():
            return None
        kind, native = split_subject_id(str(ref))
        return (
            str(ref).strip()
            if kind not in (None, self.kind)
            else qualify(self.kind, self.native_id(native))
        )

    # -- reads -----------------------------------------------------------------------

    def get_with_version(self, subject_id: str) -> tuple[Subject, str]:
        """The subject and the content hash to pass back as ``expected_version``."""
        native = self.native_id(subject_id)
        doc, version = self._read(native)
        subject = self._to_subject(native, doc)
        children = self._children(self._readable()).get(subject.id, [])
        return dataclasses.replace(subject, children=tuple(children)), version

    def get(self, subject_id: str) -> Subject:
        return self.get_with_version(subject_id)[0]

    def list(
        self,
        status: str | Iterable[str] | None = None,
        limit: int | None = None,
        labels: Iterable[str] | None = None,
    ) -> list[Subject]:
        """Tasks in id order; a file that cannot be read fails the list, naming it."""
        wanted = (
            None
            if status is None
            else {parse_status(s) for s in ([status] if isinstance(status, str) else status)}
        )
        if limit is not None and int(limit) < 0:
            raise InvalidInput(f"invalid limit {limit!r}: expected a number >= 0")
        need = set(clean_labels(labels))
        docs = []
        for _, native in self._files():
            try:
                docs.append((native, self._read(native)[0]))
            except NotFound:
                continue  # deleted between the directory scan and the read
        children = self._children(docs)
        out = []
        for native, doc in docs:
            subject = self._to_subject(native, doc)
            if (wanted is None or subject.status in wanted) and need <= set(subject.labels):
                out.append(
                    dataclasses.replace(subject, children=tuple(children.get(subject.id, [])))
                )
        return out if limit is None else out[: int(limit)]

    def next(self) -> Subject | None:
        """Highest-priority ready task, then the oldest; it is not claimed."""
        ready = self.list(status="ready")
        ready.sort(key=lambda s: (s.priority, s.created_at or "", s.native_id))
        return ready[0] if ready else None

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
        fields: dict[str, Any] = {
            "title": title,
            "description": description,
            "status": status,
            "priority": priority,
            "labels": labels,
            "assignee": assignee,
            "parent": self._checked_parent(parent),
            "custom": custom,
        }
        self.directory.mkdir(parents=True, exist_ok=True)
        with locked_directory(self.directory):
            files = self._files()
            number = (files[-1][0] if files else 0) + 1
            while True:
                native = f"{self.id_prefix}-{number:03d}"
                subject = new_subject(self.kind, native, now=self._clock(), **fields)
                header = "".join(frontmatter.render_new(self._front_matter(subject)))
                body = f"\n{subject.description}\n" if subject.description else ""
                try:
                    write_atomic(self._path(native), f"---\n{header}---\n{body}", create=True)
                    return subject  # brand new: nothing can name it as a parent yet
                except FileExistsError:
                    number += 1  # a person took that id meanwhile

    def update(
        self, subject_id: str, *, expected_version: str | None = None, **fields: Any
    ) -> Subject:
        """Change fields; refuses with Conflict if the file changed since it was read."""
        check_fields(fields)
        native = self.native_id(subject_id)
        doc, version = self._read(native)
        name = f"{native}.md"
        if expected_version is not None and expected_version != version:
            raise self._conflict(name)
        current = self._to_subject(native, doc)
        updated = apply_update(current, fields, self._clock(), self._checked_parent)
        old, new = self._front_matter(current), self._front_matter(updated)
        changes = {
            key: new.get(key, frontmatter.REMOVE)
            for key in dict.fromkeys([*old, *new])
            if old.get(key) != new.get(key)
        }
        header = frontmatter.edit(doc, changes, name)
        body = doc.body
        if updated.description != current.description:
            body = f"{doc.newline}{updated.description}{doc.newline}" if updated.description else ""
        with locked_directory(self.directory):
            try:
                changed = content_hash(self._path(native).read_bytes()) != version
            except FileNotFoundError:
                changed = True
            if changed:
                raise self._conflict(name)
            write_atomic(self._path(native), doc.text(header, body))
        return self.get(native)

    def set_status(
        self,
        subject_id: str,
        status: str,
        reason: str | None = None,
        *,
        expected_version: str | None = None,
    ) -> Subject:
        fields: dict[str, Any] = {"status": status}
        if reason is not None:
            fields["blocked_reason"] = reason
        return self.update(subject_id, expected_version=expected_version, **fields)

    def _conflict(self, name: str) -> Conflict:
        return Conflict(f"{name} changed on disk since it was read; re-run the command")

    @staticmethod
    def _front_matter(subject: Subject) -> dict[str, Any]:
        """The keys of a task file; the first eight are written even when empty so
        a person sees what can be set, the rest only when they have a value."""
        data: dict[str, Any] = {
            "id": subject.native_id,
            "title": subject.title,
            "status": subject.status,
            "priority": subject.priority,
            "labels": list(subject.labels),
            "assignee": subject.assignee,
            "created_at": subject.created_at,
            "updated_at": subject.updated_at,
        }
        optional = {
            "parent": subject.parent,
            "url": subject.url,
            "blocked_reason": subject.blocked_reason,
            "blocked_at": subject.blocked_at,
            "custom": dict(subject.custom) or None,
        }
        data.update({key: value for key, value in optional.items() if value is not None})
        return data


def _heading(body: str) -> str | None:
    """A file a person wrote without front matter is titled by its first heading."""
    for line in body.splitlines():
        if line.startswith("# "):
            return line[2:].strip() or None
    return None
