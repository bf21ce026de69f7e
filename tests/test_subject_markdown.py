"""Tasks as Markdown files: real files, real edits by a "person", real processes."""

from __future__ import annotations

import multiprocessing
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from animus.errors import Conflict, InvalidInput, NotFound
from animus.plugins.subjects import MarkdownStore, atomic_file, frontmatter


class StepClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> MarkdownStore:
    return MarkdownStore(tmp_path / ".animus" / "tasks", clock=StepClock())


HAND_WRITTEN = """\
---
# Owned by the payments squad.
title: "Retry failed payments"   # keep it short
id: TASK-003
status: ready # triaged on Monday
estimate: 5
priority: p1
labels:
  - payments
  - backend
assignee: ada
created_at: 2026-01-02T09:30:00Z
---

## Context

Payments that fail with a *soft* decline should be retried.

```python
retry(max_attempts=3)   # not 5
```
"""


def write(store: MarkdownStore, name: str, text: str) -> Path:
    store.directory.mkdir(parents=True, exist_ok=True)
    path = store.directory / name
    path.write_bytes(text.encode())
    return path


def test_create_writes_front_matter_and_body(store: MarkdownStore) -> None:
    task = store.create(
        "Fix login", "It returns 500.\n\nSee the logs.", labels=["bug"], priority="high"
    )
    assert task.id == "task:TASK-001"
    text = (store.directory / "TASK-001.md").read_text()
    assert text == (
        "---\n"
        "id: TASK-001\n"
        "title: Fix login\n"
        "status: backlog\n"
        "priority: p1\n"
        "labels: [bug]\n"
        "assignee: null\n"
        "created_at: '2026-01-01T00:00:01.000000Z'\n"
        "updated_at: '2026-01-01T00:00:01.000000Z'\n"
        "---\n"
        "\n"
        "It returns 500.\n\nSee the logs.\n"
    )
    assert store.get("TASK-001") == task
    assert task.description == "It returns 500.\n\nSee the logs."
    assert store.create("second").id == "task:TASK-002"


def test_default_directory_is_in_the_repository(tmp_path: Path) -> None:
    store = MarkdownStore.for_project(tmp_path)
    store.create("x")
    assert (tmp_path / ".animus" / "tasks" / "TASK-001.md").is_file()


def test_edits_by_a_person_are_seen_on_the_next_read(store: MarkdownStore) -> None:
    store.create("Fix login")
    assert store.get("TASK-001").status == "backlog"
    path = store.directory / "TASK-001.md"
    path.write_text(path.read_text().replace("status: backlog", "status: in_progress"))
    assert store.get("task:TASK-001").status == "in-progress"
    assert [t.id for t in store.list(status="in-progress")] == ["task:TASK-001"]


def test_reads_a_hand_written_file(store: MarkdownStore) -> None:
    write(store, "TASK-003.md", HAND_WRITTEN)
    task = store.get("TASK-003")
    assert (task.title, task.status, task.priority) == ("Retry failed payments", "ready", "p1")
    assert task.labels == ("payments", "backend")
    assert task.created_at == "2026-01-02T09:30:00.000000Z"  # an unquoted YAML timestamp
    assert task.description.startswith("## Context")
    assert store.create("next one").id == "task:TASK-004"


def test_a_write_changes_only_the_changed_keys(store: MarkdownStore) -> None:
    path = write(store, "TASK-003.md", HAND_WRITTEN)
    store.set_status("TASK-003", "blocked", "waiting on the bank's API")
    after = path.read_text()
    expected = HAND_WRITTEN.replace(
        "status: ready # triaged on Monday", "status: blocked # triaged on Monday"
    ).replace(
        "created_at: 2026-01-02T09:30:00Z\n",
        "created_at: 2026-01-02T09:30:00Z\n"
        "updated_at: '2026-01-01T00:00:01.000000Z'\n"
        "blocked_reason: waiting on the bank's API\n"
        "blocked_at: '2026-01-01T00:00:01.000000Z'\n",
    )
    assert after == expected
    store.set_status("TASK-003", "ready")
    assert path.read_text() == expected.replace("status: blocked", "status: ready").replace(
        "blocked_reason: waiting on the bank's API\nblocked_at: '2026-01-01T00:00:01.000000Z'\n", ""
    ).replace("00:00:01.000000Z", "00:00:02.000000Z")


def test_a_changed_block_list_keeps_its_style(store: MarkdownStore) -> None:
    path = write(store, "TASK-003.md", HAND_WRITTEN)
    store.update("TASK-003", labels=["payments", "urgent"])
    assert "labels:\n  - payments\n  - urgent\nassignee: ada\n" in path.read_text()
    assert "# Owned by the payments squad." in path.read_text()


def test_the_body_is_untouched_unless_the_description_changes(store: MarkdownStore) -> None:
    path = write(store, "TASK-003.md", HAND_WRITTEN)
    body = HAND_WRITTEN.split("---\n", 2)[2]
    store.update("TASK-003", title="Retry soft declines", priority="p0")
    assert path.read_text().split("---\n", 2)[2] == body
    store.update("TASK-003", description="Shorter now.")
    assert path.read_text().split("---\n", 2)[2] == "\nShorter now.\n"
    assert store.get("TASK-003").description == "Shorter now."


def test_windows_line_endings_survive(store: MarkdownStore) -> None:
    path = write(store, "TASK-001.md", "---\r\ntitle: x\r\nstatus: ready\r\n---\r\n\r\nBody\r\n")
    store.set_status("TASK-001", "done")
    assert path.read_bytes() == (
        b"---\r\ntitle: x\r\nstatus: done\r\n"
        b"updated_at: '2026-01-01T00:00:01.000000Z'\r\n---\r\n\r\nBody\r\n"
    )


def test_a_file_without_front_matter_gets_one(store: MarkdownStore) -> None:
    path = write(store, "TASK-002.md", "# Clean up the cache\n\nIt grows forever.\n")
    task = store.get("TASK-002")
    assert (task.title, task.status) == ("Clean up the cache", "backlog")
    store.set_status("TASK-002", "ready")
    assert path.read_text() == (
        "---\nstatus: ready\nupdated_at: '2026-01-01T00:00:01.000000Z'\n---\n"
        "# Clean up the cache\n\nIt grows forever.\n"
    )


def test_a_change_on_disk_since_the_read_is_a_conflict(store: MarkdownStore) -> None:
    store.create("Fix login")
    _, version = store.get_with_version("TASK-001")
    path = store.directory / "TASK-001.md"
    person = path.read_text().replace("title: Fix login", "title: Fix login (SSO)")
    path.write_text(person)
    with pytest.raises(Conflict) as err:
        store.set_status("TASK-001", "ready", expected_version=version)
    assert err.value.message == "TASK-001.md changed on disk since it was read; re-run the command"
    assert path.read_text() == person
    _, fresh = store.get_with_version("TASK-001")
    assert store.set_status("TASK-001", "ready", expected_version=fresh).title == "Fix login (SSO)"


def test_a_save_during_the_write_is_a_conflict(
    store: MarkdownStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A person saving between Animus's read and its rename wins; Animus refuses."""
    store.create("Fix login")
    path = store.directory / "TASK-001.md"
    real_edit = frontmatter.edit

    def person_saves_meanwhile(*args: object, **kwargs: object) -> object:
        path.write_text(path.read_text() + "A note from a person.\n")
        return real_edit(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(frontmatter, "edit", person_saves_meanwhile)
    with pytest.raises(Conflict, match="TASK-001.md changed on disk since it was read"):
        store.set_status("TASK-001", "ready")
    assert path.read_text().endswith("A note from a person.\n")
    assert "status: backlog" in path.read_text()


def test_a_crash_mid_write_leaves_the_old_file(
    store: MarkdownStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create("Fix login")
    path = store.directory / "TASK-001.md"
    before = path.read_bytes()

    def crash(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(atomic_file.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        store.set_status("TASK-001", "ready")
    assert path.read_bytes() == before
    assert sorted(os.listdir(store.directory)) == ["TASK-001.md"]  # no temp file left behind


def test_bad_files_are_reported_with_their_name(store: MarkdownStore) -> None:
    write(store, "TASK-001.md", "---\ntitle: a: b\n---\n")
    write(store, "TASK-002.md", "---\ntitle: ok\nstatus: on-fire\n---\n")
    write(store, "TASK-003.md", "---\ntitle: no end\n")
    with pytest.raises(
        InvalidInput, match=r"TASK-001.md: the front matter is not valid YAML \(line 2\)"
    ):
        store.get("TASK-001")
    with pytest.raises(InvalidInput) as err:
        store.get("TASK-002")
    assert err.value.message == (
        "TASK-002.md: invalid status 'on-fire': expected one of backlog, ready, in-progress,"
        " blocked, done, cancelled"
    )
    with pytest.raises(InvalidInput, match="TASK-003.md: the front matter has no closing"):
        store.get("TASK-003")
    with pytest.raises(NotFound, match="task TASK-009 not found"):
        store.get("TASK-009")


def test_ids_are_checked_before_they_become_paths(store: MarkdownStore) -> None:
    store.create("x")
    assert store.get("task-1").id == store.get("1").id == "task:TASK-001"
    for bad in ("../../etc/passwd", "TASK-1/../../x", "README"):
        with pytest.raises(InvalidInput, match="expected TASK-<number>"):
            store.get(bad)


def test_list_next_parents_and_other_files(store: MarkdownStore) -> None:
    store.create("epic", status="ready", priority="p2")
    store.create("urgent part", status="ready", priority="p0", parent="TASK-001", labels=["x"])
    store.create("later", priority="p0")
    write(store, "README.md", "not a task\n")
    write(store, ".TASK-009.md.123.ab.tmp", "a temp file of a crashed writer\n")
    assert [t.native_id for t in store.list()] == ["TASK-001", "TASK-002", "TASK-003"]
    assert store.get("TASK-001").children == ("task:TASK-002",)
    assert [t.native_id for t in store.list(status="ready", labels=["x"])] == ["TASK-002"]
    assert [t.native_id for t in store.list(limit=1)] == ["TASK-001"]
    assert store.get("TASK-001").children == ("task:TASK-002",)
    assert store.get("TASK-002").parent == "task:TASK-001"
    with pytest.raises(NotFound, match="parent task:TASK-042 not found"):
        store.update("TASK-003", parent="TASK-042")
    assert store.update("TASK-003", parent="requirement:REQ-001").parent == "requirement:REQ-001"
    store.update("TASK-003", parent=None)
    write(store, "TASK-004.md", "---\ntitle: hand-made child\nparent: TASK-1\n---\n")
    write(store, "TASK-005.md", "---\ntitle: odd parent\nparent: see the wiki\n---\n")
    assert store.get("TASK-004").parent == "task:TASK-001"
    assert store.get("TASK-005").parent == "see the wiki"
    assert store.get("TASK-001").children == ("task:TASK-002", "task:TASK-004")
    assert store.next().native_id == "TASK-002"
    store.set_status("TASK-002", "in-progress")
    assert store.next().native_id == "TASK-001"


def _create_tasks(
    directory: str, worker: int, count: int, barrier: object, results: object
) -> None:
    store = MarkdownStore(Path(directory))
    barrier.wait(timeout=60)  # type: ignore[attr-defined]
    results.put([store.create(f"w{worker}-{i}").native_id for i in range(count)])  # type: ignore[attr-defined]


def test_concurrent_creators_get_distinct_ids(tmp_path: Path) -> None:
    directory = tmp_path / "tasks"
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [
        ctx.Process(target=_create_tasks, args=(str(directory), w, 25, barrier, results))
        for w in range(4)
    ]
    for proc in procs:
        proc.start()
    ids = [i for _ in procs for i in results.get(timeout=120)]
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    assert len(ids) == len(set(ids)) == 100
    titles = {t.title for t in MarkdownStore(directory).list()}
    assert titles == {f"w{w}-{i}" for w in range(4) for i in range(25)}


def test_frontmatter_falls_back_to_a_whole_rewrite_when_in_place_would_be_wrong() -> None:
    """A flow-style document has no key lines to edit; the result must still be right."""
    doc = frontmatter.parse("---\n{title: x, status: ready}  # flow\n---\nbody\n", "x.md")
    lines = frontmatter.edit(doc, {"status": "blocked"}, "x.md")
    assert "".join(lines) == "title: x\nstatus: blocked\n"
    doc = frontmatter.parse("---\nstatus: ready\nstatus: done\n---\n", "x.md")  # last one wins
    assert "".join(frontmatter.edit(doc, {"status": "blocked"}, "x.md")) == "status: blocked\n"
