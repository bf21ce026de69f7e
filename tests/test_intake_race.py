"""A run on a task is not started before its task is in progress (found by bench/soak.py).

The intake creates the run, then moves its task to ``in-progress`` through
the subject backend. The run used to be dispatchable meanwhile: a queue fill
(another runner's exit, the scheduler's tick) started it, it could complete,
and when the intake then gave up on a frozen backend it blocked the run
anyway — the soak saw "workflow_completed published, workflow.db says blocked".

Through a real daemon: the subject backend is a real plugin
(``fixtures/held_subjects``) whose ``get`` of one task can be held, then fail.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any

import yaml

from animus.testing import wait_until
from conftest import FAST_RESTART, Env

PLUGIN = Path(__file__).resolve().parent / "fixtures" / "held_subjects" / "held.py"
WORKFLOWS = """
phases:
  quick: {mode: command, idempotency: idempotent, command: {program: "true"}}
workflows:
  - id: quick
    phases: [quick]
default_workflow_ref: quick
"""


def install_held_subjects(env: Env, folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "animus-plugin.yaml").write_text(yaml.safe_dump({
        "name": "held-subjects", "role": "subject", "version": "0.0.1", "protocol": "1.0.0", "kinds": ["task"],
        "command": [sys.executable, str(PLUGIN)],
        "env_required": [{"name": "HELD_SUBJECTS_DIR", "required": False}]}))
    env.run("plugin", "install", str(folder), check=True)


def started(env: Env, wf: str) -> bool:
    log = Path(env.call("daemon/status")["state_root"]) / "logs" / "events.jsonl"
    return any(e["kind"] == "workflow_started" and e.get("workflow_id") == wf
               for e in map(json.loads, log.read_text().splitlines()))


def test_a_run_waits_for_its_intake_and_a_frozen_backend_blocks_it_unstarted(env: Env, tmp_path: Path) -> None:
    held = tmp_path / "held"
    held.mkdir()
    env.env["HELD_SUBJECTS_DIR"] = str(held)
    install_held_subjects(env, tmp_path / "plugin")
    env.write_config({"restart": FAST_RESTART, "pool_size": 2, "interval_secs": 0.2})
    env.write_workflows(WORKFLOWS)
    env.start("--skip-preflight")
    task = env.json("subject", "create", "--title", "HOLD me", "--status", "ready")["subject"]["id"]

    (held / "hold").touch()
    answer: dict[str, Any] = {}
    intake = threading.Thread(target=lambda: answer.update(
        env.call("workflow/run", {"task_id": task}, timeout=90)))
    intake.start()
    wait_until(lambda: (held / "holding").exists(), timeout=20, what="the backend to hold the intake's call")
    (pending,) = wait_until(lambda: [w["id"] for w in env.call("workflow/list", {"status": "pending"})],
                            timeout=10, what="the run to be created")

    # the queue fills while the intake waits: another run starts, ends, and the pool has room
    other = env.call("workflow/run", {"title": "meanwhile"})["workflow_id"]
    wait_until(lambda: env.call("workflow/get", {"id": other})["status"] == "completed", timeout=30,
               what="the other run to complete")
    assert not started(env, pending), "the run started before its task was in progress"
    assert env.call("workflow/get", {"id": pending})["status"] == "pending"

    (held / "hold").unlink()  # the backend gives up: the run is blocked, never having started
    intake.join(60)
    assert answer["status"] == "blocked" and answer["blocked_reason"] == "Subject backend unavailable", answer
    wait_until(lambda: env.call("workflow/get", {"id": other})["status"] == "completed", timeout=5)
    assert env.call("workflow/get", {"id": pending})["status"] == "blocked"
    assert not started(env, pending)
