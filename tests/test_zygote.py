"""First-party Python workers are forked from a preloaded zygote; the rest is exec'd.

What an operator relies on must not change: exit codes, restarts, budgets,
no orphans. These tests check it through a real daemon.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import psutil
import yaml

from animus.testing import EventRecorder, wait_until
from conftest import FAST_RESTART, Env, alive


def install_first_party_probe(env: Env, name: str) -> None:
    """The probe as a first-party Python command (``{python} -m animus.…``): zygote-eligible."""
    folder = env.home / "src" / name
    folder.mkdir(parents=True)
    (folder / "animus-plugin.yaml").write_text(yaml.safe_dump({
        "name": name, "role": "provider", "version": "0.0.1", "protocol": "1.0.0",
        "command": ["{python}", "-m", "animus.testing_worker"],
        "env_required": [{"name": "PROBE_MODE", "required": False}]}))
    env.run("plugin", "install", str(folder), check=True)


def running_pid(env: Env, name: str, not_pid: int | None = None) -> int:
    """The pid of ``name`` once its start is acknowledged (``child_started``): ``daemon
    status`` already shows a child as running while its handshake is under way."""
    pid: int = wait_until(lambda: (n := env.node(name)) and n["state"] == "running" and n["pid"] != not_pid
                          and n["pid"], timeout=10, what=f"{name} running")
    EventRecorder.of_state_root(env.call("daemon/status")["state_root"]).wait_for(
        "child_started", timeout=15, child=name, pid=pid)
    return pid


def parent_cmdline(pid: int) -> str:
    return " ".join(psutil.Process(pid).parent().cmdline())


def test_forked_worker_restarts_like_any_other(env: Env) -> None:
    env.write_config({"restart": FAST_RESTART})
    install_first_party_probe(env, "forked")
    env.start("--skip-preflight")
    pid = running_pid(env, "forked")
    assert "animus.supervision.zygote" in parent_cmdline(pid)
    assert env.call("plugin/call", {"name": "forked", "method": "probe/pid"})["result"]["pid"] == pid
    os.kill(pid, signal.SIGKILL)
    new = running_pid(env, "forked", not_pid=pid)
    assert env.node("forked")["restarts"] == 1
    assert env.call("plugin/call", {"name": "forked", "method": "probe/pid"})["result"]["pid"] == new
    # a forked worker runs its module as __main__ as cleanly as an exec'd one: nothing on its stderr
    recorder = EventRecorder.of_state_root(env.call("daemon/status")["state_root"])
    said = [d["line"] for d in recorder.of("child_stderr", child="forked")]
    assert said == [], said


def test_forked_worker_exit_codes_and_budget(env: Env) -> None:
    env.env["PROBE_MODE"] = "exit:7"
    env.write_config({"restart": FAST_RESTART})
    install_first_party_probe(env, "exiter")
    env.start("--skip-preflight")
    node = wait_until(lambda: (n := env.node("exiter")) and n["state"] == "disabled" and n, timeout=20,
                      what="exiter disabled")
    assert node["restarts"] == 5
    log = Path(env.call("daemon/status")["state_root"]) / "logs" / "events.jsonl"
    exits = [e["data"] for e in map(json.loads, log.read_text().splitlines())
             if e["kind"] == "child_exited" and e["data"].get("child") == "exiter"]
    assert len(exits) == 6 and all(x["exit_code"] == 7 for x in exits)


def test_killed_zygote_takes_its_workers_and_they_come_back(env: Env) -> None:
    env.write_config({"restart": FAST_RESTART})
    install_first_party_probe(env, "forked")
    env.start("--skip-preflight")
    pid = running_pid(env, "forked")
    zygote = psutil.Process(pid).parent()
    zygote.kill()
    wait_until(lambda: not alive({pid}), timeout=15, what="the worker to die with its zygote")
    new = running_pid(env, "forked", not_pid=pid)
    assert "animus.supervision.zygote" in parent_cmdline(new)
    assert psutil.Process(new).parent().pid != zygote.pid  # a new zygote


def test_zygote_can_be_turned_off(env: Env) -> None:
    env.env["ANIMUS_ZYGOTE"] = "0"
    env.write_config({"restart": FAST_RESTART})
    install_first_party_probe(env, "execd")
    env.start("--skip-preflight")
    pid = running_pid(env, "execd")
    assert "animus.supervision.child" in parent_cmdline(pid)
