"""The normalized subject model and the SQLite subject store (default, requirements, sqlite)."""

from __future__ import annotations

import multiprocessing
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from animus.errors import InvalidInput, NotFound
from animus.plugins.subjects import (
    LinearClient,
    MarkdownStore,
    Subject,
    SubjectBackend,
    SubjectStore,
)
from animus.plugins.subjects.model import (
    DEFAULT_BLOCKED_REASON,
    apply_status,
    parse_kind,
    parse_priority,
    parse_status,
    resolve_status,
    split_subject_id,
)


class StepClock:
    """A UTC clock that moves one second per reading, so 'oldest' is deterministic."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def tasks(tmp_path: Path) -> Iterator[SubjectStore]:
    store = SubjectStore(tmp_path / "workflow.db", "task", "TASK", clock=StepClock())
    yield store
    store.close()


# -- model -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("ready", "ready"),
        ("in_progress", "in-progress"),
        ("In-Progress", "in-progress"),
        ("todo", "backlog"),
        ("completed", "done"),
        ("canceled", "cancelled"),
    ],
)
def test_status_spellings_are_normalized(given: str, expected: str) -> None:
    assert parse_status(given) == expected


def test_bad_status_names_the_value_and_the_allowed_ones() -> None:
    with pytest.raises(InvalidInput) as err:
        parse_status("on-fire")
    assert err.value.message == (
        "invalid status 'on-fire':"
        " expected one of backlog, ready, in-progress, blocked, done, cancelled"
    )


def test_priorities_accept_buckets_and_legacy_names() -> None:
    assert [parse_priority(p) for p in ("P0", "high", "medium", "low")] == ["p0", "p1", "p2", "p3"]
    with pytest.raises(InvalidInput, match="invalid priority 'p9': expected one of p0, p1, p2, p3"):
        parse_priority("p9")


@pytest.mark.parametrize("bad", ["task/list", "a:b", "", "lin*ear", "two words"])
def test_bad_kind_names_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidInput):
        parse_kind(bad, allow_glob=True)


def test_glob_kinds_only_where_allowed() -> None:
    assert parse_kind("linear.*", allow_glob=True) == "linear.*"
    with pytest.raises(InvalidInput):
        parse_kind("linear.*")


def test_subject_round_trips_through_a_dict() -> None:
    subject = Subject(
        id="task:TASK-001",
        kind="task",
        title="Fix login",
        status="in_progress",
        labels=["bug"],
        children=["task:TASK-002"],
        custom={"estimate": 3},
    )
    payload = subject.to_dict()
    assert payload["status"] == "in-progress"
    assert payload["labels"] == ["bug"]
    assert Subject.from_dict(payload) == subject


def test_subject_id_must_carry_its_kind() -> None:
    with pytest.raises(InvalidInput, match="must have the form 'task:<id>'"):
        Subject(id="TASK-001", kind="task", title="x")
    with pytest.raises(InvalidInput, match="unknown subject field"):
        Subject.from_dict({"id": "task:T-1", "kind": "task", "title": "x", "colour": "red"})


def test_blocking_stamps_a_reason_and_unblocking_clears_it() -> None:
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    subject = Subject(id="task:TASK-001", kind="task", title="x", status="ready")
    blocked = apply_status(subject, "blocked", None, now)
    assert blocked.blocked_reason == DEFAULT_BLOCKED_REASON == "Blocked by status update"
    assert blocked.blocked_at == "2026-05-01T12:00:00.000000Z"
    assert (
        apply_status(subject, "blocked", "waiting on API", now).blocked_reason == "waiting on API"
    )
    ready = apply_status(blocked, "ready", None, now)
    assert (ready.status, ready.blocked_reason, ready.blocked_at) == ("ready", None, None)
    assert apply_status(blocked, "done", None, now).blocked_reason is None


def test_requirement_statuses_map_and_keep_the_native_one() -> None:
    assert resolve_status("requirement", "po-review") == ("in-progress", "po-review")
    assert resolve_status("requirement", "approved") == ("done", "approved")
    assert resolve_status("requirement", "deprecated") == ("cancelled", "deprecated")
    assert resolve_status("requirement", "needs_rework") == ("ready", "needs-rework")
    assert resolve_status("requirement", "ready") == ("ready", "planned")
    assert resolve_status("task", "in_progress") == ("in-progress", None)
    with pytest.raises(InvalidInput, match="invalid requirement status 'shipped'"):
        resolve_status("requirement", "shipped")
    with pytest.raises(InvalidInput):
        resolve_status("task", "po-review")


def test_subject_ids_split_on_the_first_colon() -> None:
    assert split_subject_id("task:TASK-001") == ("task", "TASK-001")
    assert split_subject_id("TASK-001") == (None, "TASK-001")
    assert split_subject_id("sqlite:01HX:9") == ("sqlite", "01HX:9")


def test_every_backend_offers_the_same_surface(tmp_path: Path) -> None:
    with SubjectStore(tmp_path / "w.db", "task", "TASK") as store:
        assert isinstance(store, SubjectBackend)
    assert isinstance(MarkdownStore(tmp_path / "tasks"), SubjectBackend)
    assert isinstance(LinearClient("lin_api_x"), SubjectBackend)


# -- store: ids, reads and writes -----------------------------------------------------


def test_ids_are_allocated_in_sequence_per_kind(tmp_path: Path) -> None:
    db = tmp_path / "workflow.db"
    with SubjectStore(db, "task", "TASK") as tasks, SubjectStore(db, "requirement", "REQ") as reqs:
        assert [tasks.create(f"t{i}").id for i in range(3)] == [
            "task:TASK-001",
            "task:TASK-002",
            "task:TASK-003",
        ]
        assert reqs.create("r").id == "requirement:REQ-001"


def test_ids_are_accepted_with_or_without_the_kind(tasks: SubjectStore) -> None:
    tasks.create("first")
    for form in ("TASK-001", "task:TASK-001", "task-1", "1"):
        assert tasks.get(form).id == "task:TASK-001"
    with pytest.raises(InvalidInput, match="is of kind 'requirement'"):
        tasks.get("requirement:REQ-001")


def test_missing_subject_is_not_found_with_a_fix(tasks: SubjectStore) -> None:
    with pytest.raises(NotFound) as err:
        tasks.get("TASK-404")
    assert err.value.message == "task TASK-404 not found"
    assert err.value.fix == "animus subject list --kind task"


def test_create_normalizes_and_stamps(tasks: SubjectStore) -> None:
    subject = tasks.create(
        "  Fix login  ",
        "It 500s.",
        status="todo",
        priority="high",
        labels=["bug", "bug", " ui "],
        assignee="ada",
        custom={"points": 3},
    )
    assert subject.title == "Fix login"
    assert (subject.status, subject.priority, subject.labels) == ("backlog", "p1", ("bug", "ui"))
    assert subject.created_at == subject.updated_at == "2026-01-01T00:00:02.000000Z"
    assert subject.custom == {"points": 3}
    with pytest.raises(InvalidInput, match="non-empty title"):
        tasks.create("   ")


def test_create_blocked_uses_the_default_reason(tasks: SubjectStore) -> None:
    subject = tasks.create("x", status="blocked")
    assert subject.blocked_reason == "Blocked by status update"
    assert subject.blocked_at is not None


def test_status_changes_carry_the_side_effects(tasks: SubjectStore) -> None:
    tasks.create("x", status="ready")
    blocked = tasks.set_status("TASK-001", "blocked")
    assert (blocked.status, blocked.blocked_reason) == ("blocked", "Blocked by status update")
    assert blocked.blocked_at == blocked.updated_at
    again = tasks.set_status("TASK-001", "blocked", "workflow runner failed: exit 1")
    assert again.blocked_reason == "workflow runner failed: exit 1"
    ready = tasks.set_status("task:TASK-001", "ready")
    assert (ready.blocked_reason, ready.blocked_at) == (None, None)
    assert tasks.set_status("TASK-001", "in_progress").status == "in-progress"


def test_update_changes_only_what_is_given(tasks: SubjectStore) -> None:
    tasks.create("x", labels=["a"], custom={"keep": 1, "drop": 2})
    updated = tasks.update("TASK-001", title="y", labels=["b"], custom={"drop": None, "new": 3})
    assert (updated.title, updated.labels, updated.status) == ("y", ("b",), "backlog")
    assert updated.custom == {"keep": 1, "new": 3}
    with pytest.raises(InvalidInput, match="cannot update field\\(s\\) colour: expected title"):
        tasks.update("TASK-001", colour="red")
    with pytest.raises(InvalidInput, match="not blocked"):
        tasks.update("TASK-001", blocked_reason="why")


def test_a_failed_write_changes_nothing(tasks: SubjectStore) -> None:
    """The id counter and the row are one transaction: a failure burns no id."""
    with pytest.raises(InvalidInput, match="JSON-serializable"):
        tasks.create("x", custom={"bad": object()})
    assert tasks.list() == []
    assert tasks.create("y").id == "task:TASK-001"
    with pytest.raises(InvalidInput):
        tasks.update("TASK-001", title="z", custom={"bad": object()})
    assert tasks.get("TASK-001").title == "y"


def test_parents_and_children(tasks: SubjectStore) -> None:
    tasks.create("epic")
    child = tasks.create("part", parent="TASK-001")
    assert child.parent == "task:TASK-001"
    assert tasks.get("TASK-001").children == ("task:TASK-002",)
    cross = tasks.create("for a requirement", parent="requirement:REQ-007")
    assert cross.parent == "requirement:REQ-007"
    with pytest.raises(NotFound):
        tasks.create("orphan", parent="TASK-099")
    with pytest.raises(InvalidInput, match="its own parent"):
        tasks.update("TASK-001", parent="task:TASK-001")
    assert tasks.update("TASK-002", parent=None).parent is None
    assert tasks.get("TASK-001").children == ()


def test_list_filters(tasks: SubjectStore) -> None:
    tasks.create("a", status="ready", labels=["bug", "ui"])
    tasks.create("b", status="ready", labels=["bug"])
    tasks.create("c", status="blocked", labels=["ui"])
    tasks.create("d")
    ids = lambda subjects: [s.native_id for s in subjects]  # noqa: E731
    assert ids(tasks.list()) == ["TASK-001", "TASK-002", "TASK-003", "TASK-004"]
    assert ids(tasks.list(status="ready")) == ["TASK-001", "TASK-002"]
    assert ids(tasks.list(status=["blocked", "backlog"])) == ["TASK-003", "TASK-004"]
    assert ids(tasks.list(labels=["bug", "ui"])) == ["TASK-001"]
    assert ids(tasks.list(labels=["ui"], status="blocked")) == ["TASK-003"]
    assert ids(tasks.list(limit=2)) == ["TASK-001", "TASK-002"]
    with pytest.raises(InvalidInput, match="invalid status"):
        tasks.list(status="nope")


def test_next_is_highest_priority_ready_then_oldest(tasks: SubjectStore) -> None:
    assert tasks.next() is None
    tasks.create("old p2", status="ready")
    tasks.create("p1 not ready", priority="p1")
    tasks.create("old p1", status="ready", priority="p1")
    tasks.create("new p1", status="ready", priority="p1")
    assert tasks.next().title == "old p1"
    tasks.set_status("TASK-003", "in-progress")
    assert tasks.next().title == "new p1"


def test_requirements_keep_their_native_status(tmp_path: Path) -> None:
    with SubjectStore(tmp_path / "workflow.db", "requirement", "REQ") as reqs:
        created = reqs.create("Users can reset passwords")
        assert (created.status, created.custom["native_status"]) == ("backlog", "draft")
        review = reqs.set_status("REQ-001", "po-review")
        assert (review.status, review.custom["native_status"]) == ("in-progress", "po-review")
        reqs.create("Audit log", status="planned")
        assert [s.native_id for s in reqs.list(status="po-review")] == ["REQ-001"]
        assert [s.native_id for s in reqs.list(status="in-progress")] == ["REQ-001"]
        assert reqs.next().native_id == "REQ-002"
        done = reqs.set_status("REQ-001", "implemented")
        assert (done.status, done.custom["native_status"]) == ("done", "implemented")


# -- store: the file -----------------------------------------------------------------


def test_file_settings_and_persistence(tmp_path: Path) -> None:
    db = tmp_path / "state" / "workflow.db"
    with SubjectStore(db, "task", "TASK") as store:
        store.create("kept")
        conn = sqlite3.connect(db)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.close()
        assert store._connection().execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    with SubjectStore(db, "task", "TASK") as reopened:
        assert reopened.get("TASK-001").title == "kept"
        assert reopened.create("next").id == "task:TASK-002"


def test_tables_coexist_with_other_tables_and_user_version(tmp_path: Path) -> None:
    """workflow.db is shared: our tables are prefixed and user_version is not ours."""
    db = tmp_path / "workflow.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE workflows (id TEXT PRIMARY KEY, status TEXT)")
    conn.execute("PRAGMA user_version = 7")
    conn.commit()
    conn.close()
    with SubjectStore(db, "task", "TASK") as store:
        store.create("x")
        assert store.schema_version() == 1
    conn = sqlite3.connect(db)
    tables = {
        r[0]
        for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")
    }
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 7
    conn.close()
    ours = tables - {"workflows", "sqlite_autoindex_workflows_1"}
    assert ours and all(
        name.startswith(("subjects_", "sqlite_autoindex_subjects_")) for name in ours
    )


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "workflow.db"
    SubjectStore(db, "task", "TASK").close()
    conn = sqlite3.connect(db)
    conn.execute("UPDATE subjects_schema SET version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(InvalidInput, match="schema version 99"):
        SubjectStore(db, "task", "TASK")


# -- store: several processes ----------------------------------------------------------


def _create_many(db: str, worker: int, count: int, barrier: object, results: object) -> None:
    barrier.wait(timeout=60)  # type: ignore[attr-defined]
    store = SubjectStore(Path(db), "task", "TASK")
    ids = [store.create(f"w{worker}-{i}").native_id for i in range(count)]
    results.put((worker, ids))  # type: ignore[attr-defined]
    store.close()


@pytest.mark.slow
def test_concurrent_processes_never_lose_or_share_an_id(tmp_path: Path) -> None:
    db = tmp_path / "workflow.db"  # not created yet: the workers race to create and migrate it
    ctx = multiprocessing.get_context("spawn")
    workers, count = 4, 200
    barrier, results = ctx.Barrier(workers), ctx.Queue()
    procs = [
        ctx.Process(target=_create_many, args=(str(db), w, count, barrier, results))
        for w in range(workers)
    ]
    for proc in procs:
        proc.start()
    collected = dict(results.get(timeout=120) for _ in procs)
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    all_ids = [i for ids in collected.values() for i in ids]
    assert len(all_ids) == len(set(all_ids)) == workers * count
    with SubjectStore(db, "task", "TASK") as store:
        stored = store.list()
    assert sorted(s.native_id for s in stored) == sorted(all_ids)
    assert {s.native_id for s in stored} == {f"TASK-{n:03d}" for n in range(1, workers * count + 1)}
    titles = {s.title for s in stored}
    assert titles == {f"w{w}-{i}" for w in range(workers) for i in range(count)}


def _create_in_child(store: SubjectStore, results: object) -> None:
    results.put(store.create("from the child").native_id)  # type: ignore[attr-defined]


def test_a_store_inherited_across_fork_reconnects(tasks: SubjectStore) -> None:
    tasks.create("from the parent")
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    child = ctx.Process(target=_create_in_child, args=(tasks, results))
    child.start()
    assert results.get(timeout=30) == "TASK-002"
    child.join(timeout=30)
    assert child.exitcode == 0
    assert [s.title for s in tasks.list()] == ["from the parent", "from the child"]


def _open_and_create(db: str, barrier: object, results: object) -> None:
    barrier.wait(timeout=60)  # type: ignore[attr-defined]
    try:
        with SubjectStore(Path(db), "task", "TASK") as store:
            store.create("x")
        results.put("ok")  # type: ignore[attr-defined]
    except Exception as exc:  # reported to the parent, which fails the test
        results.put(repr(exc))  # type: ignore[attr-defined]


def test_processes_racing_to_create_a_new_file_all_succeed(tmp_path: Path) -> None:
    """SQLite does not wait on a busy lock while switching a new file to WAL."""
    ctx = multiprocessing.get_context("fork")
    for round_ in range(30):
        db = tmp_path / f"new-{round_}.db"
        barrier, results = ctx.Barrier(8), ctx.Queue()
        procs = [
            ctx.Process(target=_open_and_create, args=(str(db), barrier, results)) for _ in range(8)
        ]
        for proc in procs:
            proc.start()
        outcomes = [results.get(timeout=60) for _ in procs]
        for proc in procs:
            proc.join(timeout=30)
        assert outcomes == ["ok"] * 8
        with SubjectStore(db, "task", "TASK") as store:
            assert len(store.list()) == 8
