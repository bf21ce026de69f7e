"""The child supervisors are forked from the root's zygote, and outlive it.

The root forks one zygote from itself at start; the child supervisors are
forked from it *detached*: no parent-death signal ties them to the zygote,
each watches the root through a pidfd, and the root watches each the same
way. So killing the zygote costs nothing, a supervisor that dies after it is
still noticed and restarted (from a new zygote), and killing the root still
takes the whole tree with it. Real daemon, real signals.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import psutil

from animus.testing import EventRecorder, wait_until
from conftest import FAST_RESTART, Env, alive

SUPERVISORS = ("providers", "subjects", "workflows", "triggers", "transports")


def supervisor_pids(env: Env) -> dict[str, int]:
    return {s["name"]: s["pid"] for s in env.tree() if s["name"] in SUPERVISORS and s["state"] == "running"}


def test_supervisors_outlive_the_roots_zygote_and_die_with_the_root(env: Env) -> None:
    env.write_config({"restart": FAST_RESTART})
    env.install_probe("alpha")
    root = env.start("--skip-preflight")["pid"]
    sups = supervisor_pids(env)
    assert set(sups) == set(SUPERVISORS)
    zygote = psutil.Process(sups["providers"]).parent()
    # forked from the root's zygote, named as if exec'd
    assert zygote.ppid() == root and "animus.supervision.zygote" in " ".join(zygote.cmdline())
    for name, pid in sups.items():
        proc = psutil.Process(pid)
        assert proc.ppid() == zygote.pid, name
        assert f"supervisors/{name}.json" in " ".join(proc.cmdline())

    zygote.kill()
    wait_until(lambda: not alive({zygote.pid}), timeout=10, what="the root's zygote gone")
    # nothing went with it: a round trip through the providers supervisor to its worker
    assert env.call("plugin/call", {"name": "alpha", "method": "probe/pid"})["result"]["pid"]
    assert supervisor_pids(env) == sups
    assert all(s["restarts"] == 0 for s in env.tree())
    recorder = EventRecorder.of_state_root(env.call("daemon/status")["state_root"])
    assert [d for d in recorder.of("child_exited", supervisor="root")] == []

    # a supervisor that dies now has no zygote to report it: the root's pidfd does
    os.kill(sups["triggers"], signal.SIGKILL)
    exited = recorder.wait_for("child_exited", timeout=15, supervisor="root", child="triggers")[0]
    assert exited["pid"] == sups["triggers"] and not exited["requested"]
    new = wait_until(lambda: (p := supervisor_pids(env).get("triggers")) not in (None, sups["triggers"]) and p,
                     timeout=20, what="triggers restarted")
    fresh = psutil.Process(new).parent()
    assert fresh.pid != zygote.pid and "animus.supervision.zygote" in " ".join(fresh.cmdline())
    assert fresh.ppid() == root  # a new zygote, still the root's

    # the root killed outright: every supervisor and worker follows it (no orphans)
    everything = env.tree_pids() | {fresh.pid}
    os.kill(root, signal.SIGKILL)
    wait_until(lambda: not alive(everything), timeout=20, what=f"the tree gone: {alive(everything)}")


def test_the_workflows_supervisor_starts_held_and_goes_once_the_subjects_are_settled(env: Env) -> None:
    """It needs providers and subjects up first. It is spawned with everyone, prepares, and starts
    its service only when they are settled: here a subject hangs its handshake until the 2 s
    ready timeout, and the same workflows supervisor process, alive all along, then goes."""
    import subprocess

    from conftest import ANIMUS

    env.write_config({"restart": FAST_RESTART, "ready_timeout": 2})
    env.install_probe("stuck", role="subject", mode="hang_handshake", kinds="stuck")
    starting = subprocess.Popen([*ANIMUS, "daemon", "start", "--skip-preflight", "--json"], cwd=env.project,
                                env=env.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        held = wait_until(lambda: (n := next((s for s in env.tree() if s["name"] == "workflows"), None))
                          and n["pid"], timeout=20, what="the workflows supervisor spawned")
        recorder = EventRecorder.of_state_root(env.call("daemon/status")["state_root"])
        assert not recorder.of("child_start_timeout", child="stuck")  # spawned while subjects still start
        assert not recorder.of("child_started", supervisor="root", child="workflows")  # held, not started
        out, err = starting.communicate(timeout=60)
        assert starting.returncode == 0, err
        env.started.append(json.loads(out.splitlines()[-1])["pid"])
    finally:
        if starting.poll() is None:
            starting.kill()
    recorder.wait_for("child_start_timeout", supervisor="subjects", child="stuck")
    began = recorder.wait_for("child_started", supervisor="root", child="workflows")[0]
    assert began["pid"] == held  # the process spawned at once is the one that went
    first: dict[tuple[str, str], str] = {}
    for e in recorder.select(["child_start_timeout", "child_started"]):
        first.setdefault((e["kind"], e["data"].get("child")), e["ts"])
    assert first[("child_start_timeout", "stuck")] < first[("child_started", "workflows")]


def test_a_call_in_flight_fails_at_once_when_its_supervisor_dies(env: Env, tmp_path: Path) -> None:
    """A plugin call waits on the supervisor that carries it: if that one dies, the call fails
    then, naming it, instead of waiting out its timeout (up to a phase's: found by the soak)."""
    import threading
    import time

    from animus.errors import AnimusError

    env.install_probe("sleepy")
    env.start("--skip-preflight")
    providers = supervisor_pids(env)["providers"]
    outcome: list[object] = []

    def ask() -> None:
        try:
            outcome.append(env.call("plugin/call", {"name": "sleepy", "method": "probe/sleep", "timeout": 120,
                                                     "params": {"seconds": 60, "mark": str(mark)}}, timeout=120))
        except AnimusError as exc:
            outcome.append(exc)

    mark = tmp_path / "arrived"
    asking = threading.Thread(target=ask)
    asking.start()
    wait_until(mark.exists, timeout=10, what="the call to reach the plugin")
    sent = time.monotonic()
    os.kill(providers, signal.SIGKILL)
    asking.join(60)
    assert not asking.is_alive() and time.monotonic() - sent < 30
    assert isinstance(outcome[0], AnimusError) and "providers supervisor exited" in str(outcome[0])
