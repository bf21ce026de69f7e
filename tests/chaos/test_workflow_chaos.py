"""Chaos for workflows: SIGKILL runners mid-phase and the daemon mid-run, then count.

Kills are aimed by the runners' own ``phase_started`` events, a planned
number of them, some at the side-effecting phase. Every workflow must end
completed (after the operator forces the blocked ones), at least one kill
must have landed in the side-effecting phase (else its checks prove nothing),
a side-effecting phase must run again only when an operator forced it, a
completed phase must never run again, and no task transition may repeat.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from animus.testing import EventRecorder, wait_until
from conftest import Env, alive

pytestmark = pytest.mark.chaos

WORKFLOWS = """
phases:
  a: {mode: command, idempotency: idempotent,    command: {program: bash, args: [-c, "echo a $ANIMUS_WORKFLOW_ID >> {fx}; sleep 0.$((RANDOM % 5 + 3))"]}}
  b: {mode: command, idempotency: sideeffecting, command: {program: bash, args: [-c, "echo b $ANIMUS_WORKFLOW_ID >> {fx}; sleep 1.$((RANDOM % 5))"]}}
  c: {mode: command, idempotency: idempotent,    command: {program: bash, args: [-c, "sleep 0.$((RANDOM % 5 + 3)); echo c $ANIMUS_WORKFLOW_ID >> {fx}"]}}
workflows:
  - id: chaos
    phases: [a, b, c]
default_workflow_ref: chaos
"""
RUNS = 16
KILLS = 12  # runner SIGKILLs, each aimed by the runner's own phase_started event
SIDE_EFFECTING_KILLS = 4  # of which this many aim at the side-effecting phase b
DAEMON_KILL_AFTER = 8  # the daemon itself is SIGKILLed mid-phase after this many runner kills


def runner_pids(env: Env) -> dict[str, int]:
    tree = env.call("daemon/status")["tree"]
    return {c["name"]: c["pid"] for s in tree if s["name"] == "workflows" for c in s["children"] if c.get("pid")}


class PhaseKiller:
    """Kills runners mid-phase, aimed by their phase events (``phase_started`` names the
    phase; its ``src`` names the runner's pid), by a plan fixed up front."""

    def __init__(self, env: Env, rng: random.Random) -> None:
        self.env = env
        self.rng = rng
        self.log = EventRecorder.of_state_root(env.call("daemon/status")["state_root"])
        self.kills: Counter[str] = Counter()  # the phase each kill was aimed at

    def running(self, phase: str | None) -> tuple[str, int] | None:
        """A (workflow, runner pid) whose ``phase`` (any, if None) started and has not ended."""
        ended = {(e["workflow_id"], e["phase"], e["src"]) for e in self.log.select(["phase_completed", "phase_failed"])}
        runners = runner_pids(self.env)
        for e in reversed(self.log.select(["phase_started"])):
            wf, pid = e["workflow_id"], int(e["src"].rsplit(":", 1)[1])
            if (phase is None or e["phase"] == phase) and (wf, e["phase"], e["src"]) not in ended \
                    and runners.get(wf) == pid:
                return wf, pid
        return None

    def kill_runner_in(self, phase: str | None) -> None:
        """SIGKILL a runner while it is in ``phase``; try again if it finished first."""
        while True:
            _, pid = wait_until(lambda: self.running(phase), timeout=60, what=f"a runner in phase {phase or 'any'}")
            try:
                pidfd = os.pidfd_open(pid)  # this very process, even if its pid is reused later
            except ProcessLookupError:
                continue
            try:
                time.sleep(self.rng.uniform(0.02, 0.15))  # somewhere in the phase, not at its first instruction
                if alive({pid}):
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                    self.kills[phase or "any"] += 1
                    return
            except ProcessLookupError:
                pass
            finally:
                os.close(pidfd)

    def kill_daemon_mid_phase(self) -> None:
        wait_until(lambda: self.running(None), timeout=60, what="a phase under way when the daemon dies")
        root = self.env.call("daemon/status")["pid"]
        os.kill(root, signal.SIGKILL)
        wait_until(lambda: not alive({root}), timeout=30, what="the root to die")
        self.env.start()


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

    rng = random.Random(7)
    # the side-effecting kills early, while most runs have b still ahead of them
    plan: list[str | None] = ["b", None] * SIDE_EFFECTING_KILLS + [None] * (KILLS - 2 * SIDE_EFFECTING_KILLS)
    killer = PhaseKiller(env, rng)
    for n, phase in enumerate(plan, 1):
        killer.kill_runner_in(phase)
        if n == DAEMON_KILL_AFTER:
            killer.kill_daemon_mid_phase()  # the whole daemon, mid-phase; then a restart
    assert killer.kills == {"b": SIDE_EFFECTING_KILLS, "any": KILLS - SIDE_EFFECTING_KILLS}

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

    # the idempotency checks below hold trivially unless a kill landed in the side-effecting phase
    assert sum(forced.values()) >= 1, "no kill landed while the side-effecting phase ran"
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
    print(f"{dict(killer.kills)} runner kills and a daemon kill; {sum(forced.values())} forced resumes")
