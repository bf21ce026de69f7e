"""The daemon as a real process tree: start, status, stop, restarts, budgets, no orphans."""

from __future__ import annotations

import hashlib
import json
import os
import signal
from pathlib import Path

import psutil

from animus.testing import wait_until
from conftest import FAST_RESTART, Env, alive


def test_start_status_stop(env: Env) -> None:
    env.write_config({"restart": FAST_RESTART})
    started = env.start("--skip-preflight")
    status = env.status()
    assert status["schema"] == "animus.daemon.status.v1"
    assert status["pid"] == started["pid"] and status["state_root"] == started["state_root"]
    names = [n["name"] for n in status["tree"]]
    assert names == ["providers", "subjects", "workflows", "triggers", "transports"]  # start order
    for node in status["tree"]:
        assert node["kind"] == "supervisor" and node["state"] == "running"
        assert set(node) >= {"name", "kind", "role", "pid", "state", "restarts", "last_error", "children"}
        assert psutil.pid_exists(node["pid"])
    # the sockets' folder: <state root>/run, or a private folder under /tmp when that
    # path is too long for a Unix socket (docs/state.md)
    state_root = started["state_root"]
    digest = hashlib.sha256(state_root.encode()).hexdigest()[:16]
    (run_dir,) = [d for d in (Path(state_root) / "run", Path(f"/tmp/animus-{os.getuid()}") / digest)
                  if (d / "control").exists()]
    assert oct(os.stat(run_dir).st_mode & 0o777) == "0o700"
    pids = env.tree_pids() | {started["pid"]}
    stopped = env.run("daemon", "stop", check=True)
    assert "daemon stopped" in stopped.stdout
    wait_until(lambda: not alive(pids), timeout=5, what="every process of the tree to exit")
    down = env.run("daemon", "status")
    assert down.returncode == 5
    assert "daemon not running: start it with animus daemon start" in down.stderr


def test_second_start_says_already_running(daemon: Env) -> None:
    pid = daemon.status()["pid"]
    again = daemon.run("daemon", "start", "--skip-preflight")
    assert again.returncode == 4
    assert f"daemon already running (pid {pid})" in again.stderr


def test_stale_pidfile_of_dead_daemon_is_cleaned(env: Env) -> None:
    env.write_config({"restart": FAST_RESTART})
    started = env.start("--skip-preflight")
    pids = env.tree_pids()
    os.kill(started["pid"], signal.SIGKILL)
    wait_until(lambda: not alive(pids | {started["pid"]}), timeout=15, what="the tree to die with its root")
    again = env.run("daemon", "start", "--skip-preflight", "--json")
    assert again.returncode == 0, again.stderr
    assert "removed the stale pidfile" in again.stderr
    env.started.append(json.loads(again.stdout)["pid"])


def test_preflight_refuses_start_without_plugins(env: Env) -> None:
    out = env.run("daemon", "start")
    assert out.returncode == 2
    assert "daemon preflight failed" in out.stderr
    assert "provider: 0 installed (need at least one)" in out.stderr
    assert "fix: animus plugin install-defaults" in out.stderr


def test_crashing_plugin_restarts_five_times_then_disabled(env: Env) -> None:
    env.write_config({"restart": FAST_RESTART, "ready_timeout": 5})
    env.install_probe("crashy", mode="crash_on_init")
    env.install_probe("steady")
    env.start("--skip-preflight")
    node = wait_until(lambda: (n := env.node("crashy")) and n["state"] == "disabled" and n, timeout=15,
                      what="crashy to be disabled")
    assert node["restarts"] == 5
    assert "crashing on init" in node["last_error"]
    assert env.node("steady")["state"] == "running"
    metrics = env.json("daemon", "metrics")
    assert metrics["counters"]["plugin_disabled_total{plugin=crashy}"] == 1
    health = env.run("daemon", "health", "--json")
    assert health.returncode == 5
    rows = {r["plugin"]: r for r in json.loads(health.stdout)["plugins"]}
    assert rows["crashy"]["status"] == "unhealthy" and rows["crashy"]["restarts"] == 5
    assert "crashing on init" in rows["crashy"]["last_error"]
    assert rows["steady"]["status"] == "healthy"
    assert json.loads(health.stdout)["daemon"]["status"] == "healthy"
    log = Path(env.status()["state_root"]) / "logs" / "events.jsonl"
    events = [json.loads(line) for line in log.read_text().splitlines()]
    disabled = [e for e in events if e["kind"] == "plugin_disabled"]
    assert len(disabled) == 1 and disabled[0]["data"]["plugin"] == "crashy"


def test_control_plane_answers_fast_during_crash_loop(env: Env) -> None:
    env.write_config({"restart": {**FAST_RESTART, "initial": 0.3, "cap": 1.5}})  # a loop of ~5 s
    env.install_probe("crashy", mode="crash_on_init")
    env.start("--skip-preflight")
    # the control plane keeps answering while the worker crash-loops: the answers show
    # the loop going on (restart after restart), not only its end
    def crashy() -> tuple[str, int]:
        node = next(c for s in env.call("daemon/status", timeout=5)["tree"] for c in s["children"]
                    if c["name"] == "crashy")
        return node["state"], node["restarts"]

    seen: set[int] = set()

    def answered_through_the_loop() -> bool:
        state, restarts = crashy()
        assert state != "disabled" or len(seen) >= 2, f"only saw restarts {sorted(seen)} before it was disabled"
        if state != "disabled":
            seen.add(restarts)
        return len(seen) >= 2

    wait_until(answered_through_the_loop, timeout=60, what="status answers through the crash loop")
    assert env.node("crashy") is not None  # and the operator's CLI sees it too


def test_operator_stop_is_not_a_crash(daemon: Env) -> None:
    daemon.install_probe("worker")
    daemon.run("daemon", "stop", check=True)
    daemon.start("--skip-preflight")
    pid = wait_until(lambda: (n := daemon.node("worker")) and n["state"] == "running" and n["pid"], timeout=10,
                     what="worker running")
    stopped = daemon.json("daemon", "stop-child", "--name", "worker")
    assert stopped["child"]["state"] == "stopped"
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    node = daemon.node("worker")
    assert node["state"] == "stopped" and node["restarts"] == 0
    started = daemon.json("daemon", "start-child", "--name", "worker")
    assert started["child"]["state"] == "running" and started["child"]["restarts"] == 0


def test_killed_worker_is_replaced_and_grandchildren_die_with_it(daemon: Env) -> None:
    daemon.install_probe("worker")
    daemon.run("daemon", "stop", check=True)
    daemon.start("--skip-preflight")
    old = wait_until(lambda: (n := daemon.node("worker")) and n["state"] == "running" and n["pid"], timeout=10,
                     what="worker running")
    reply = daemon.json("plugin", "call", "--name", "worker", "--method", "probe/spawn_grandchild")
    grandchild = reply["result"]["pid"]
    assert psutil.pid_exists(grandchild)
    os.kill(old, signal.SIGKILL)
    new = wait_until(lambda: (n := daemon.node("worker")) and n["state"] == "running" and n["pid"] != old
                     and n["pid"], timeout=3, what="worker replaced")
    assert new != old
    wait_until(lambda: not alive({grandchild}), timeout=15, what="the killed worker's grandchild to die")


def test_killed_child_supervisor_takes_workers_grandchildren_with_it(daemon: Env) -> None:
    daemon.install_probe("worker")
    daemon.run("daemon", "stop", check=True)
    daemon.start("--skip-preflight")
    wait_until(lambda: (n := daemon.node("worker")) and n["state"] == "running", timeout=10, what="worker running")
    grandchild = daemon.json("plugin", "call", "--name", "worker", "--method", "probe/spawn_grandchild")["result"]["pid"]
    providers = daemon.node("providers")
    assert providers is not None
    os.kill(providers["pid"], signal.SIGKILL)
    wait_until(lambda: not alive({grandchild}), timeout=15, what="the grandchild to die with its supervisor")
    wait_until(lambda: (n := daemon.node("worker")) and n["state"] == "running", timeout=10, what="worker back")
