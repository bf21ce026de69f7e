"""One daemon per scope, and what a crashed one left behind.

``acquire_lock`` holds ``daemon/daemon.lock`` (flock) for the daemon's life;
``write_pidfile`` / ``read_pid`` record who holds it. Every change of the
tree is recorded in ``daemon/pids.json`` (pid and create time of every
process of the tree but the workflow runners), so that the next start can
``reap_leftovers``: kill what a SIGKILLed root left running, never a process
that merely reuses a pid (the create time must match), and whatever those
processes started in their process groups. A runner dies with its zygote, and
records its own session for the workflows service's sweeps
(``animus.workflow.command_group``): the record is not rewritten twice per run.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Mapping
from typing import Any

import psutil

from animus.errors import Conflict
from animus.process import handle as process
from animus.state.files import atomic_write
from animus.state.scope import Scope

__all__ = ["acquire_lock", "create_times", "read_pid", "reap_leftovers", "record_pids", "write_pidfile"]


def create_times(children: list[dict[str, Any]], known: Mapping[int, float] | None = None) -> dict[int, float]:
    """pid -> create time of each child with a pid: as its row says (its supervisor's record), else
    as ``known`` (the last answer: a subtree is pushed on every change of any of its children), else
    looked up."""
    out = {}
    for child in children:
        if child.get("pid"):
            pid = int(child["pid"])
            if child.get("create_time"):  # its supervisor's record of the process it started
                out[pid] = float(child["create_time"])
                continue
            if known and pid in known:
                out[pid] = known[pid]
                continue
            try:
                out[pid] = psutil.Process(pid).create_time()
            except psutil.Error:
                continue
    return out


def record_pids(scope: Scope, pids: Mapping[int, float]) -> bool:
    """Write the record; False if the disk refused (a full disk must not stop supervision)."""
    data = {"root": os.getpid(), "pids": {str(k): v for k, v in pids.items()}}
    try:
        # not durable: after a machine crash the processes it names are gone too
        atomic_write(scope.root / "daemon" / "pids.json", json.dumps(data).encode(), 0o600, durable=False)
    except OSError:
        return False
    return True


def reap_leftovers(scope: Scope) -> int:
    """Kill processes of a previous crashed run (matching pid *and* create time)."""
    path = scope.root / "daemon" / "pids.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return 0
    victims = {int(pid): float(ct) for pid, ct in data.get("pids", {}).items()}
    alive = []
    for pid, ct in victims.items():
        try:
            proc = psutil.Process(pid)
            if abs(proc.create_time() - ct) < 0.01 and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.Error:
            continue
    process.kill_tree(set(alive), victims)
    # and whatever the dead tree's workers started in their process groups
    return len(alive) + process.kill_groups(victims)


def acquire_lock(scope: Scope) -> int:
    """Hold ``daemon.lock`` for the life of the daemon: one daemon per scope."""
    lock_dir = scope.root / "daemon"
    lock_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_dir / "daemon.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        pid = read_pid(scope)
        raise Conflict(f"daemon already running (pid {pid})" if pid else "daemon already running",
                       fix="animus daemon status; stop it with animus daemon stop") from None
    return fd


def write_pidfile(scope: Scope) -> None:
    create_time = psutil.Process().create_time()
    atomic_write(scope.pidfile, json.dumps({"pid": os.getpid(), "create_time": create_time,
                                            "state_root": str(scope.root)}).encode(), 0o600)


def read_pid(scope: Scope) -> int | None:
    try:
        data = json.loads(scope.pidfile.read_text())
        return int(data["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
