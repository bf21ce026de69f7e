"""SIGKILL each subject backend mid-write, under load, and count what was lost.

A client process (``fixtures/subjects/chaos_client.py``) creates and then
updates subjects of every kind in a loop through the daemon, and runs the
real ``animus subject create`` beside it. Meanwhile each backend plugin
(requirements, sqlite, markdown, linear) is SIGKILLed three times, each
time after its writes were seen to go through again. Afterwards:

- every command succeeded, or failed with exit 5 (unavailable) in one line;
- every acknowledged create is present exactly once, with its id; every
  acknowledged update is what the record holds; an unacknowledged write
  left the record old or new, never twice;
- nothing is torn: every Markdown file parses and no temporary file is left
  behind; the SQLite files pass ``PRAGMA integrity_check``.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import FAST_RESTART, Env

from animus.plugins.subjects import frontmatter
from animus.plugins.subjects.markdown_store import MarkdownStore
from animus.testing import wait_until

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE / "fixtures" / "linear"))
import fake_linear

pytestmark = pytest.mark.chaos

CLIENT = HERE / "fixtures" / "subjects" / "chaos_client.py"
ENG_TEAM = "7b37946e-7c1a-59b4-b872-672e4ac349c0"
BACKENDS = {"requirements": "requirement", "sqlite": "sqlite.task", "markdown": "md.task",
            "linear": "linear.issue"}
KILLS_PER_BACKEND = 3


def read_outcomes(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.endswith("}")]  # the last line may be mid-write


def acknowledged(path: Path, kind: str) -> int:
    return sum(1 for o in read_outcomes(path) if o["kind"] == kind and o["ok"])


def node(env: Env, name: str) -> dict[str, Any]:
    for sup in env.call("daemon/status")["tree"]:
        for child in sup.get("children", []):
            if child["name"] == name:
                return child  # type: ignore[no-any-return]
    raise AssertionError(f"{name} is not in the daemon's tree")


def kill_mid_write(env: Env, plugin: str, kind: str, outcomes: Path) -> None:
    """Wait until the backend's writes go through again, then SIGKILL it and wait for its restart."""
    seen = acknowledged(outcomes, kind)
    wait_until(lambda: acknowledged(outcomes, kind) >= seen + 3, timeout=20,
               what=f"{kind} writes to go through")
    pid = node(env, plugin)["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: (n := node(env, plugin))["state"] == "running" and n["pid"] not in (None, pid),
               timeout=20, what=f"{plugin} to be restarted")


def all_subjects(env: Env, kind: str) -> list[dict[str, Any]]:
    return env.call("subject/call", {"kind": kind, "verb": "list", "params": {}}, timeout=30)  # type: ignore[no-any-return]


def check_no_loss(kind: str, outcomes: list[dict[str, Any]], stored: list[dict[str, Any]]) -> None:
    mine = [o for o in outcomes if o["kind"] == kind]
    by_id = {s["id"]: s for s in stored}
    titles = Counter(s["title"].removesuffix(" u") for s in stored)
    assert all(count == 1 for count in titles.values()), [t for t, c in titles.items() if c > 1]
    updated = {o["id"] for o in mine if o["op"] == "update" and o["ok"]}
    for o in mine:
        if o["ok"] and o["op"] in ("create", "cli-create"):
            assert o["id"] in by_id, f"acknowledged create of {o['id']} ({o['title']}) was lost"
            subject = by_id[o["id"]]
            assert subject["title"].removesuffix(" u") == o["title"]
            if o["id"] in updated:
                assert (subject["title"], subject["status"]) == (f"{o['title']} u", "ready")
    assert sum(1 for o in mine if o["ok"] and o["op"] != "update") >= KILLS_PER_BACKEND * 3


def test_killing_backends_mid_write_loses_and_tears_nothing(env: Env, tmp_path: Path) -> None:
    with fake_linear.FakeLinear() as linear:
        env.env.update({"LINEAR_API_KEY": fake_linear.API_KEY, "LINEAR_API_URL": linear.url})
        env.write_config({"restart": FAST_RESTART, "ready_timeout": 10, "plugins": {
            "sqlite": {"config": {"path": "data/subjects.db"}},
            "linear": {"config": {"team_id": ENG_TEAM}},
        }})
        for plugin in BACKENDS:
            env.run("plugin", "install", plugin, check=True)
        env.start("--skip-preflight")
        wait_until(lambda: all(node(env, p)["state"] == "running" for p in BACKENDS), timeout=20,
                   what="every backend to run")

        outcomes, stop = tmp_path / "outcomes.jsonl", tmp_path / "stop"
        client = subprocess.Popen([sys.executable, str(CLIENT), str(env.project), str(outcomes), str(stop),
                                   *BACKENDS.values()], cwd=env.project, env=env.env,
                                  stderr=subprocess.PIPE, text=True)
        try:
            for _ in range(KILLS_PER_BACKEND):
                for plugin, kind in BACKENDS.items():
                    kill_mid_write(env, plugin, kind, outcomes)
            # a kill between two requests proves less: keep killing (bounded) until one lands mid-request
            for extra in range(12):
                if any("exited while handling" in o["message"] for o in read_outcomes(outcomes) if not o["ok"]):
                    break
                plugin, kind = list(BACKENDS.items())[extra % len(BACKENDS)]
                kill_mid_write(env, plugin, kind, outcomes)
            for kind in BACKENDS.values():  # every backend serves again after its last kill
                seen = acknowledged(outcomes, kind)
                wait_until(lambda k=kind, s=seen: acknowledged(outcomes, k) > s, timeout=20,  # type: ignore[misc]
                           what=f"{kind} to serve again")
        finally:
            stop.touch()
            _, stderr = client.communicate(timeout=60)
        assert client.returncode == 0, stderr

        results = read_outcomes(outcomes)
        failures = [o for o in results if not o["ok"]]
        for o in failures:
            assert o["exit_code"] == 5, o
            assert o["message"] and "\n" not in o["message"], o
        assert any("exited while handling" in o["message"] for o in failures), "no kill landed mid-request"

        stored = {kind: all_subjects(env, kind) for kind in BACKENDS.values()}
        for kind, subjects in stored.items():
            check_no_loss(kind, results, subjects)
        created = Counter(i["title"] for i in linear.data["issues"])  # the server's own view
        assert all(count == 1 for count in created.values())

    tasks = env.project / ".animus" / "tasks"
    files = sorted(tasks.iterdir())
    assert [f.name for f in files if not f.name.endswith(".md")] == []  # no temporary left behind
    for path in files:
        assert frontmatter.parse(path.read_text(), path.name).data["title"]
    assert len(MarkdownStore(tasks, "md.task").list()) == len(files) == len(stored["md.task"])
    state_root = Path(env.call("daemon/status")["state_root"])
    for db in (env.project / "data" / "subjects.db", state_root / "workflow.db"):
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
