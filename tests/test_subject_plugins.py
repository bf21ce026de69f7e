"""The first-party subject plugins through a real daemon and the real CLI.

``requirements`` (kind ``requirement``), ``sqlite`` (``sqlite.*``),
``markdown`` (``md.task``) and ``linear`` (``linear.*`` → ``linear.issue``,
against the fake Linear GraphQL server) serve every verb in the normalized
subject shape; routing follows §D.1 (exact beats glob, longest glob wins,
duplicates fail); a misconfigured or stopped backend answers "unavailable"
in one line. One daemon with every subject plugin serves the tests that only
add data of their own kind; routing and failure cases get their own daemon.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FAST_RESTART, Env, _descendants, alive

from animus.plugins.subjects.linear.__main__ import LinearSubjects
from animus.plugins.subjects.markdown.__main__ import sweep_stale_temporaries
from animus.plugins.subjects.sqlite.__main__ import SqliteSubjects, id_prefix_for
from animus.testing import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures" / "linear"))
import fake_linear

SUBJECT_PLUGINS = ("default", "requirements", "sqlite", "markdown", "linear")
ENG_TEAM = "7b37946e-7c1a-59b4-b872-672e4ac349c0"


# -- the plugin classes, without a daemon --------------------------------------------


def test_a_glob_kind_is_served_and_listed_by_its_plugin() -> None:
    assert [SqliteSubjects.serves(k) for k in ("sqlite.task", "sqlite.bug", "sqlite.", "sqlite.*", "sqlitex")] \
        == [True, True, False, False, False]
    assert LinearSubjects.serves("linear.issue") and not LinearSubjects.serves("linear.team")
    methods = LinearSubjects.manifest()["capabilities"]
    assert "linear.*/get" in methods and "linear.issue/next" in methods
    assert [id_prefix_for(k) for k in ("sqlite.task", "sqlite.tech-debt", "sqlite.9")] == ["TASK", "TECHDEBT", "ITEM"]


def test_the_sweep_removes_only_temporaries_of_dead_writers(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".TASK-001.md.{dead.pid}.0123abcd.tmp"
    live = tmp_path / f".TASK-002.md.{os.getpid()}.0123abcd.tmp"
    task = tmp_path / "TASK-001.md"
    for path in (stale, live, task):
        path.write_text("x")
    assert sweep_stale_temporaries(tmp_path) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, task.name])


# -- a daemon shared by the module -------------------------------------------------


def make_env(root: Path) -> Env:
    """An Env as conftest's ``env`` fixture builds it, for a module-scoped daemon."""
    home, project = root / "home", root / "project"
    project.mkdir()
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("ANIMUS_", "LINEAR_"))}
    environ.update({"ANIMUS_HOME": str(home), "ANIMUS_START_TIMEOUT": "60", "PYTHONUNBUFFERED": "1"})
    return Env(home, project, environ)


def stop_and_check(env: Env) -> None:
    leftovers: set[int] = set()
    for pid in env.started:
        leftovers |= _descendants(pid)
        env.run("daemon", "stop", "--shutdown-timeout-secs", "20")
    wait_until(lambda: not alive(leftovers), timeout=10, what="the daemon tree to be gone")


def wait_running(env: Env, *names: str) -> None:
    wait_until(lambda: all((n := env.node(x)) and n["state"] == "running" for x in names),
               timeout=20, what=f"{', '.join(names)} to run")


@pytest.fixture(scope="module")
def linear() -> Iterator[Any]:
    with fake_linear.FakeLinear() as fake:
        yield fake


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, linear: Any) -> Iterator[Env]:
    env = make_env(tmp_path_factory.mktemp("subjects"))
    env.env.update({"LINEAR_API_KEY": fake_linear.API_KEY, "LINEAR_API_URL": linear.url})
    env.write_config({"restart": FAST_RESTART, "ready_timeout": 10, "plugins": {
        "sqlite": {"config": {"path": "data/subjects.db"}},
        "linear": {"config": {"team_id": ENG_TEAM}},
    }})
    assert set(SUBJECT_PLUGINS) <= set(env.json("plugin", "install-defaults", "--include-subjects")["installed"])
    for provider in ("claude", "codex", "gemini", "opencode", "oai"):  # not needed here; saves start-up
        env.run("plugin", "uninstall", "--name", provider)
    env.start("--skip-preflight")
    try:
        wait_running(env, *SUBJECT_PLUGINS)
        yield env
    finally:
        stop_and_check(env)


def cli(env: Env, *args: str) -> Any:
    """``animus subject <args> --json``: the reply's payload."""
    return env.json("subject", *args)


def call(env: Env, kind: str, verb: str, **params: Any) -> Any:
    """The same through the control socket: fast setup, not what is under test."""
    return env.call("subject/call", {"kind": kind, "verb": verb, "params": params})


def fails(env: Env, *args: str) -> tuple[int, str]:
    out = env.run("subject", *args)
    assert out.returncode != 0, out.stdout
    lines = [x for x in out.stderr.strip().splitlines() if not x.startswith("hint: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr  # one line, no traceback
    return out.returncode, lines[0]


# -- the verbs, per backend ------------------------------------------------------------


@pytest.mark.parametrize("kind", ["requirement", "sqlite.task", "md.task"])
def test_every_verb_through_the_cli(shared: Env, kind: str) -> None:
    low = cli(shared, "create", "--kind", kind, "--title", "low", "--status", "ready", "--priority", "p3",
              "--labels", "ui, backend")["subject"]
    assert low["id"].startswith(f"{kind}:") and low["kind"] == kind
    assert low["labels"] == ["ui", "backend"] and low["status"] == "ready" and low["priority"] == "p3"
    for key in ("title", "description", "assignee", "parent", "children", "url", "created_at",
                "updated_at", "custom"):
        assert key in low
    high = call(shared, kind, "create", title="high", status="ready", priority="p1")
    call(shared, kind, "create", title="urgent but parked", status="backlog", priority="p0")

    assert cli(shared, "next", "--kind", kind)["subject"]["id"] == high["id"]
    got = cli(shared, "get", "--kind", kind, "--id", low["id"])["subject"]
    assert (got["title"], got["labels"]) == ("low", ["ui", "backend"])
    ready = cli(shared, "list", "--kind", kind, "--status", "ready")["subjects"]
    assert [s["id"] for s in ready] == [low["id"], high["id"]]

    changed = cli(shared, "update", "--kind", kind, "--id", low["id"], "--input-json",
                  json.dumps({"title": "low, renamed", "labels": ["ui"]}))["subject"]
    assert (changed["title"], changed["labels"]) == ("low, renamed", ["ui"])
    blocked = cli(shared, "status", "--kind", kind, "--id", high["id"], "--status", "blocked",
                  "--reason", "waiting on design")["subject"]
    assert (blocked["status"], blocked["blocked_reason"]) == ("blocked", "waiting on design")
    assert cli(shared, "next", "--kind", kind)["subject"]["id"] == low["id"]
    cli(shared, "status", "--kind", kind, "--id", low["id"], "--status", "in_progress")
    assert cli(shared, "next", "--kind", kind)["subject"] is None

    code, line = fails(shared, "get", "--kind", kind, "--id", "999")
    assert code == 3 and "not found" in line
    code, line = fails(shared, "status", "--kind", kind, "--id", low["id"], "--status", "sideways")
    assert code == 2 and "invalid" in line and "sideways" in line


def test_requirements_live_in_workflow_db_with_their_native_status(shared: Env) -> None:
    req = cli(shared, "create", "--kind", "requirement", "--title", "SSO", "--status", "po-review")["subject"]
    assert req["id"].startswith("requirement:REQ-") and req["status"] == "in-progress"
    assert req["custom"]["native_status"] == "po-review"
    db = Path(shared.status()["state_root"]) / "workflow.db"
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT native_id FROM subjects_items WHERE kind = 'requirement'").fetchall()
    assert (req["id"].split(":", 1)[1],) in rows


def test_sqlite_keeps_every_kind_under_its_glob_in_the_chosen_file(shared: Env) -> None:
    bug = cli(shared, "create", "--kind", "sqlite.bug", "--title", "crash on save")["subject"]
    assert bug["id"] == "sqlite.bug:BUG-001"
    db = shared.project / "data" / "subjects.db"  # relative to the project root
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT version FROM subjects_schema").fetchone()[0] >= 1
        kinds = {k for (k,) in conn.execute("SELECT DISTINCT kind FROM subjects_items")}
    assert "sqlite.bug" in kinds


# -- markdown: people edit the files too ------------------------------------------------


def test_markdown_picks_up_hand_edits_and_keeps_the_persons_formatting(shared: Env) -> None:
    created = cli(shared, "create", "--kind", "md.task", "--title", "Write docs", "--body", "First draft.")
    native = created["subject"]["id"].split(":", 1)[1]
    path = shared.project / ".animus" / "tasks" / f"{native}.md"
    assert path.is_file()

    text = path.read_text().replace("title: Write docs", "title: Write the docs  # renamed by hand")
    text = text.replace("First draft.", "First draft.\n\n* a list a person added\n\n\n<!-- keep me -->")
    path.write_text(text)
    got = cli(shared, "get", "--kind", "md.task", "--id", native)["subject"]
    assert got["title"] == "Write the docs" and "a list a person added" in got["description"]

    cli(shared, "status", "--kind", "md.task", "--id", native, "--status", "ready")
    after = path.read_text()
    assert "title: Write the docs  # renamed by hand" in after
    assert after.split("\n---\n", 1)[1] == text.split("\n---\n", 1)[1]  # body bytes untouched
    assert "status: ready" in after

    number = int(native.split("-")[1]) + 50
    (path.parent / f"TASK-{number:03d}.md").write_text("# Hand-made task\n\nNo front matter at all.\n")
    listed = {s["id"]: s for s in cli(shared, "list", "--kind", "md.task")["subjects"]}
    assert listed[f"md.task:TASK-{number:03d}"]["title"] == "Hand-made task"


def test_markdown_reports_a_concurrent_edit_as_a_conflict(shared: Env) -> None:
    native = call(shared, "md.task", "create", title="Release notes")["id"].split(":", 1)[1]
    path = shared.project / ".animus" / "tasks" / f"{native}.md"
    seen = cli(shared, "get", "--kind", "md.task", "--id", native)["subject"]
    assert seen["version"]

    edited = path.read_text().replace("priority: p2", "priority: p0  # a person in an editor")
    path.write_text(edited)  # saved after Animus read the file
    code, line = fails(shared, "update", "--kind", "md.task", "--id", native, "--input-json",
                       json.dumps({"status": "ready", "expected_version": seen["version"]}))
    assert code == 4 and f"{native}.md changed on disk since it was read" in line
    assert path.read_text() == edited  # the person's save survives

    fresh = cli(shared, "get", "--kind", "md.task", "--id", native)["subject"]
    done = cli(shared, "update", "--kind", "md.task", "--id", native, "--input-json",
               json.dumps({"status": "ready", "expected_version": fresh["version"]}))["subject"]
    assert (done["status"], done["priority"]) == ("ready", "p0")
    assert "priority: p0  # a person in an editor" in path.read_text()
    code, line = fails(shared, "update", "--kind", "sqlite.task", "--id", "1", "--input-json",
                       json.dumps({"title": "x", "expected_version": "abc"}))
    assert code == 2 and "expected_version" in line


# -- linear, against the fake GraphQL server -----------------------------------------


def test_linear_issues_through_the_graphql_api(shared: Env, linear: Any) -> None:
    listed = cli(shared, "list", "--kind", "linear.issue")["subjects"]
    ids = {s["id"] for s in listed}
    assert "linear.issue:ENG-1" in ids and "linear.issue:OPS-1" not in ids  # only the configured team
    assert cli(shared, "get", "--kind", "linear.issue", "--id", "ENG-3")["subject"]["title"] == \
        "Fix flaky checkout test"

    made = cli(shared, "create", "--kind", "linear.issue", "--title", "From Animus", "--status", "ready",
               "--priority", "p0", "--labels", "Bug")["subject"]
    identifier = made["id"].split(":", 1)[1]
    assert identifier.startswith("ENG-") and made["status"] == "ready" and made["labels"] == ["Bug"]
    assert made["priority"] == "p0"
    # ENG-3 is an older urgent (p0) issue in Todo: the oldest of the highest priority goes first
    assert cli(shared, "next", "--kind", "linear.issue")["subject"]["id"] == "linear.issue:ENG-3"

    renamed = cli(shared, "update", "--kind", "linear.issue", "--id", identifier, "--input-json",
                  json.dumps({"title": "From Animus, renamed"}))["subject"]
    assert renamed["title"] == "From Animus, renamed"
    blocked = cli(shared, "status", "--kind", "linear.issue", "--id", identifier, "--status", "blocked",
                  "--reason", "needs a decision")["subject"]
    assert blocked["status"] == "blocked"
    assert any(c["body"] == "Blocked by Animus: needs a decision" for c in linear.comments)
    assert all(r["headers"].get("Authorization") == fake_linear.API_KEY for r in linear.requests)

    code, line = fails(shared, "get", "--kind", "linear.issue", "--id", "ENG-999")
    assert code == 3 and "Could not find referenced Issue" in line
    code, line = fails(shared, "list", "--kind", "linear.project")  # under the glob, not served
    assert code == 3 and "linear" in line


# -- routing and failures: daemons of their own --------------------------------------


ONE_PHASE = """
phases:
  noop: {mode: command, idempotency: idempotent, command: {program: "true"}}
workflows:
  - id: noop
    phases: [noop]
default_workflow_ref: noop
"""


def test_routing_exact_beats_glob_longest_glob_wins_and_unavailable_backends(env: Env) -> None:
    env.write_config({"restart": FAST_RESTART, "ready_timeout": 10})  # sqlite: no path configured
    for name in ("LINEAR_API_KEY", "LINEAR_TEAM_ID", "LINEAR_API_URL"):  # linear: no key
        env.env.pop(name, None)
    for name in ("default", "sqlite", "linear"):
        env.run("plugin", "install", name, check=True)
    env.install_probe("catch-all", role="subject", kinds="sqlite.task,*")
    env.start("--skip-preflight")
    wait_running(env, "default", "sqlite", "linear", "catch-all")

    code, line = fails(env, "list", "--kind", "sqlite.task")  # exact kind beats the sqlite.* glob
    assert code == 3 and "catch-all does not serve" in line
    code, line = fails(env, "list", "--kind", "anything.else")  # only the catch-all matches
    assert code == 3 and "catch-all does not serve" in line
    assert cli(env, "list", "--kind", "task")["subjects"] == []  # exact: default

    code, line = fails(env, "list", "--kind", "sqlite.bug")  # sqlite.* is longer than *
    assert code == 5 and "Subject backend unavailable" in line
    assert "config key plugins.sqlite.config.path is not set" in line
    code, line = fails(env, "create", "--kind", "linear.issue", "--title", "x")
    assert code == 5 and "Subject backend unavailable" in line and "LINEAR_API_KEY" in line
    health = {row["plugin"]: row for row in env.call("daemon/health")["plugins"]}
    assert health["linear"]["status"] == "unhealthy" and "LINEAR_API_KEY" in health["linear"]["last_error"]
    assert health["sqlite"]["status"] == "unhealthy" and "plugins.sqlite.config.path" in health["sqlite"]["last_error"]
    assert health["default"]["status"] == "healthy"


def test_a_stopped_backend_is_unavailable_and_its_task_is_left_alone(env: Env) -> None:
    env.write_config({"restart": FAST_RESTART, "ready_timeout": 10,
                      "plugins": {"markdown": {"config": {"directory": "docs/tasks"}}}})
    env.write_workflows(ONE_PHASE)
    env.run("plugin", "install", "markdown", check=True)
    env.start("--skip-preflight")
    wait_running(env, "markdown")
    subject = cli(env, "create", "--kind", "md.task", "--title", "wait for me", "--status", "ready")["subject"]
    assert (env.project / "docs" / "tasks" / "TASK-001.md").is_file()

    env.call("supervisor/stop_child", {"child": "markdown"})
    wait_until(lambda: env.node("markdown")["state"] == "stopped", timeout=10, what="markdown to stop")
    code, stopped_line = fails(env, "get", "--kind", "md.task", "--id", subject["id"])
    assert code == 5
    wf = env.json("workflow", "run", "--task-id", subject["id"])
    blocked = wait_until(lambda: (w := env.call("workflow/get", {"id": wf["workflow_id"]}))["status"] == "blocked"
                         and w, timeout=10, what="the workflow to block")
    assert blocked["blocked_reason"] == "Subject backend unavailable"

    env.call("supervisor/restart_child", {"child": "markdown"})
    wait_running(env, "markdown")
    assert cli(env, "get", "--kind", "md.task", "--id", subject["id"])["subject"]["status"] == "ready"
    assert "Subject backend unavailable" in stopped_line


def test_duplicate_kinds_fail_with_both_plugins_named(env: Env) -> None:
    env.write_config({"restart": FAST_RESTART, "ready_timeout": 10})
    env.install_probe("dup-a", role="subject", kinds="x")
    env.install_probe("dup-b", role="subject", kinds="x")
    env.start("--skip-preflight")
    code, line = fails(env, "list", "--kind", "x")
    assert code == 2
    assert "subject kind 'x' is declared by both plugin 'dup-a' and plugin 'dup-b'" in line


def test_install_defaults_installs_every_subject_plugin_with_its_kinds(env: Env) -> None:
    env.run("plugin", "install-defaults", "--include-subjects", check=True)
    kinds = {p["name"]: p["kinds"] for p in env.json("plugin", "list")["plugins"] if p["role"] == "subject"}
    assert kinds == {"default": ["task"], "requirements": ["requirement"], "sqlite": ["sqlite.*"],
                     "markdown": ["md.task"], "linear": ["linear.*"]}
    out = env.run("plugin", "ping", "--name", "linear")  # env_required is checked up front
    assert out.returncode != 0 and "LINEAR_API_KEY" in out.stderr
