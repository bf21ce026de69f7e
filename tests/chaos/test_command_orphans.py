"""Nothing a command phase started outlives its runner, its shell or its daemon (found by bench/soak.py).

A command phase runs in a process group of its own (so that a daemon stop's
SIGTERM to the runner's group lets the phase finish), which puts it out of
reach of "a dead worker's process group dies with it": a runner SIGKILLed
mid-command left the command's background helpers running for good. What
reaches them is the runner's session, which they share. Each case here starts a
"server" in the background of a command (``sleep 600 &``, stopped by the
shell's own trap on a normal exit) and kills something above it: the shell,
the runner, the whole daemon. The server must be gone each time.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
import pytest

from animus.testing import wait_until
from conftest import Env, alive

pytestmark = pytest.mark.chaos

WORKFLOWS = """
phases:
  serve: {mode: command, idempotency: sideeffecting, command: {program: bash, args: [-c, "sleep 600 >/dev/null 2>&1 & echo $! > {pids}/$ANIMUS_WORKFLOW_ID.$ANIMUS_ATTEMPT; trap 'kill $!' EXIT; sleep 5"]}}
  first: {mode: command, command: {program: bash, args: ["{check}"]}}
workflows:
  - id: serve
    phases: [serve]
  - id: first
    phases: [first]
default_workflow_ref: serve
"""
# bash builtins only: the very first thing the command does is look for its session's record
CHECK = """#!/bin/bash
rec=; [[ -f "$RUNS/$ANIMUS_WORKFLOW_ID/runner.json" ]] && read -r rec < "$RUNS/$ANIMUS_WORKFLOW_ID/runner.json"
read -r -a stat < /proc/$$/stat
if [[ $rec == *"\\"sid\\": ${stat[5]},"* ]]; then seen=recorded; else seen=unrecorded; fi
echo "$seen" > "$OUT/$ANIMUS_WORKFLOW_ID"
"""


def start_one(env: Env, pids: Path) -> tuple[str, int, int]:
    """A workflow whose command is under way: (workflow id, its shell's pid, its server's pid)."""
    wf = env.call("workflow/run", {"title": "serve"})["workflow_id"]
    server_file = pids / f"{wf}.1"
    server = wait_until(lambda: server_file.exists() and int(server_file.read_text()), timeout=30,
                        what="the command's background server to start")
    shell = psutil.Process(server).ppid()
    assert psutil.Process(shell).cmdline()[0] == "bash"
    return wf, shell, server


def test_a_commands_background_processes_die_with_its_shell_runner_or_daemon(env: Env, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    env.write_config({"pool_size": 3, "restart": {"initial": 0.05, "cap": 0.2}})
    check = tmp_path / "check.sh"
    env.write_workflows(WORKFLOWS.replace("{pids}", str(pids)).replace("{check}", str(check)))
    env.run("plugin", "install-defaults", "--include-subjects", check=True)
    env.start()

    # the command's session is on record before it runs anything: a runner killed at any moment
    # leaves nothing that no one knows of (a command's group used to be recorded after it started)
    check.write_text(CHECK.replace("$RUNS", str(Path(env.call("daemon/status")["state_root"]) / "runs"))
                     .replace("$OUT", str(pids)))
    firsts = [env.call("workflow/run", {"title": "first", "workflow_ref": "first"})["workflow_id"] for _ in range(3)]
    seen = {wf: wait_until(lambda wf=wf: (pids / wf).exists() and (pids / wf).read_text().strip(), timeout=30,
                           what="the command to look for its record") for wf in firsts}
    assert seen == {wf: "recorded" for wf in firsts}

    # the shell killed: the runner records the phase's failure and stops what the shell left behind
    wf, shell, server = start_one(env, pids)
    os.kill(shell, signal.SIGKILL)
    wait_until(lambda: env.call("workflow/get", {"id": wf})["status"] == "failed", timeout=30,
               what="the phase whose shell was killed to fail")
    wait_until(lambda: not alive({server}), timeout=10, what=f"the killed shell's server {server} to be stopped")

    # the runner killed: the workflows supervisor stops what its command left behind
    wf, shell, server = start_one(env, pids)
    runner = psutil.Process(shell).ppid()
    os.kill(runner, signal.SIGKILL)
    wait_until(lambda: env.call("workflow/get", {"id": wf})["status"] == "blocked", timeout=30,
               what="the side-effecting phase to block")
    wait_until(lambda: not alive({shell, server}), timeout=10, what=f"the killed runner's server {server} to die")

    # the daemon killed: the whole tree dies with it, the command's server too, before any restart
    wf, shell, server = start_one(env, pids)
    root = env.call("daemon/status")["pid"]
    os.kill(root, signal.SIGKILL)
    wait_until(lambda: not alive({root, shell, server}), timeout=15,
               what=f"the killed daemon's command server {server} to die with it")
