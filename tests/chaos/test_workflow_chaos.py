"""Chaos for workflows: SIGKILL runners at random points and the daemon mid-run, then count.

Every workflow must end completed (after the operator forces the blocked
ones), a side-effecting phase must run again only when an operator forced it,
a completed phase must never run again, and no task transition may repeat.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from animus.testing import wait_until
from conftest import Env

pytestmark = pytest.mark.chaos

WORKFLOWS = """
phases:
  a: {mode: command, idempotency: idempotent,    command: {program: bash, args: [-c, "echo a $ANIMUS_WORKFLOW_ID >> {fx}; sleep 0.$((RANDOM % 5 + 3))"]}}
  b: {mode: command, idempotency: sideeffecting, command: {program: bash, args: [-c, "echo b $ANIMUS_WORKFLOW_ID >> {fx}; sleep 0.$((RANDOM % 5 + 3))"]}}
  c: {mode: command, idempotency: idempotent,    command: {program: bash, args: [-c, "sleep 0.$((RANDOM % 5 + 3)); echo c $ANIMUS_WORKFLOW_ID >> {fx}"]}}
workflows:
  - id: chaos
    phases: [a, b, c]
default_workflow_ref: chaos
"""
RUNS = 16


def runner_pids(env: Env) -> list[int]:
    tree = env.call("daemon/status")["tree"]
    return [c["pid"] for s in tree if s["name"] == "workflows" for c in s["children"] if c.get("pid")]


def test_kill_runners_and_daemon_nothing_lost(env: Env, tmp_path: Path) -> None:
    fx = tmp_path / "effects.log"
    env.write_config({"pool_size": 2, "interval_secs": 0.2,
                      "restart": {"initial": 0.05, "cap": 0.2, "healthy_window": 1}})
    env.write_workflows(WORKFLOWS.replace("{fx}", str(fx)))
    env.run("plugin", "install-defaults", "--include-subjects", check=True)
    env.install_probe("probe-provider")
    env.start()
    ids = []
    for i in range(RUNS):
        tid = env.call("subject/call", {"kind": "task", "verb": "create", "params": {"title": f"t{i}", "status": "ready"}})["id"]
        ids.append(env.call("workflow/run", {"task_id": tid})["workflow_id"])

    kills = Counter()
    stop = threading.Event()
    rng = random.Random(7)

    def killer() -> None:
        while not stop.is_set() and kills["runner"] < 12:
            try:
                pids = runner_pids(env)
            except Exception:
                continue
            if pids:
                time.sleep(rng.uniform(0.05, 0.4))
                try:
                    os.kill(rng.choice(pids), signal.SIGKILL)
                    kills["runner"] += 1
                except ProcessLookupError:
                    pass
            stop.wait(0.05)

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        wait_until(lambda: kills["runner"] >= 6, timeout=60, what="some runner kills")
    finally:
        stop.set()
        thread.join()
    # now the whole daemon, mid-run
    root = env.call("daemon/status")["pid"]
    os.kill(root, signal.SIGKILL)
    wait_until(lambda: not Path(f"/proc/{root}").exists() or "Z" in Path(f"/proc/{root}/stat").read_text().split()[2],
               timeout=5, what="the root to die")
    env.start()

    def settled() -> bool:
        rows = [env.call("workflow/get", {"id": w}) for w in ids]
        return all(r["status"] in ("completed", "blocked") for r in rows)

    wait_until(settled, timeout=120, interval=0.2, what="every workflow to settle")
    forced: Counter[str] = Counter()
    for _round in range(5):
        blocked = [env.call("workflow/get", {"id": w}) for w in ids]
        blocked = [w for w in blocked if w["status"] == "blocked"]
        if not blocked:
            break
        for wf in blocked:
            assert wf["blocked_reason"] == "Idempotency: phase requires explicit retry decision"
            crashed = [p for p in wf["phases"] if p["attempt_list"] and p["attempt_list"][-1]["status"] == "crashed"]
            assert [p["phase"] for p in crashed] == ["b"], wf["phases"]  # only the side-effecting phase blocks
            env.call("workflow/resume", {"id": wf["id"], "force": True})
            forced[wf["id"]] += 1
        wait_until(settled, timeout=60, interval=0.2, what="forced workflows to settle")

    finals = {w: env.call("workflow/get", {"id": w}) for w in ids}
    assert {w: f["status"] for w, f in finals.items()} == {w: "completed" for w in ids}  # zero lost

    effects = Counter(tuple(line.split()) for line in fx.read_text().splitlines())
    for wf_id, wf in finals.items():
        for phase in wf["phases"]:
            attempts = phase["attempt_list"]
            started = len(attempts)
            assert [a["status"] for a in attempts].count("completed") == 1  # never again once completed
            if phase["phase"] == "b":
                assert started == 1 + forced[wf_id]  # re-run only on the operator's word
                # a runner may die between recording the attempt and the command's first write
                assert 1 <= effects[("b", wf_id)] <= started
            else:
                assert effects[(phase["phase"], wf_id)] <= started
    state_root = Path(env.call("daemon/status")["state_root"])
    events = [json.loads(x) for x in (state_root / "logs" / "events.jsonl").read_text().splitlines()]
    transitions = Counter((e["data"]["subject_id"], e["data"]["to_status"])
                          for e in events if e["kind"] == "task_transition")
    assert transitions and max(transitions.values()) == 1, transitions  # no duplicated task transition
    done = [e for e in events if e["kind"] == "task_transition" and e["data"]["to_status"] == "done"]
    assert len(done) == RUNS
