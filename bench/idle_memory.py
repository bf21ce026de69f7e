"""Idle memory: the daemon with the 16 default plugins, against the same workers bare and under others.

Measured in the same run, after each tree is up and has settled:

* **animus**: ``animus daemon start --autonomous`` in a temp ANIMUS_HOME with
  the 16 first-party plugins; the root's RSS and USS, and the USS of every
  process of the tree by kind (root, child supervisors, zygotes, workers).
  USS (memory only that process holds) adds up honestly across forked
  processes that share pages; RSS does not.
* **bare**: the 16 bare workers of start_ready.py (python + zmq + msgpack +
  a DEALER), no supervisor: their USS in all.
* **circusd** and **supervisord** (from PyPI, skipped if they do not install)
  running those 16 bare workers: the supervisor process's own RSS and USS.

Target: root RSS <= 35 MiB. The last line says whether it is met.

Run: ``.venv/bin/python bench/idle_memory.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bytecode import compile_package
from _peers import Rendezvous, peer, supervisors_venv, worker_argv
from start_ready import WORKERS, _cli, setup

MIB = 1024 * 1024
TARGET_MIB = 35.0
SETTLE = 3.0  # seconds of idle before measuring, so start-up garbage is collected


def _kind(proc: psutil.Process) -> str:
    """By command line: a forked process carries the one it would have had if exec'd (the
    root's zygote, which lists the child supervisor's module among its preloads, included)."""
    line = " ".join(proc.cmdline())
    if "-m animus.supervision.zygote" in line:
        return "zygotes"
    if "-m animus.supervision.child" in line:
        return "child supervisors"
    return "workers"


def _uss(proc: psutil.Process) -> float:
    return float(proc.memory_full_info().uss) / MIB


def animus_idle(env: dict[str, str], project: Path) -> dict[str, object]:
    info = json.loads(_cli(env, project, "daemon", "start", "--autonomous", "--json").splitlines()[-1])
    try:
        time.sleep(SETTLE)  # idle on purpose: what an idle daemon holds, not a wait for a condition
        root = psutil.Process(int(info["pid"]))
        kinds: dict[str, list[float]] = {"root": [_uss(root)]}
        for proc in root.children(recursive=True):
            try:
                kinds.setdefault(_kind(proc), []).append(_uss(proc))
            except psutil.Error:
                continue
        return {"root_rss": root.memory_info().rss / MIB, "kinds": kinds}
    finally:
        _cli(env, project, "daemon", "stop", "--shutdown-timeout-secs", "30")


def bare_idle(folder: Path) -> float:
    meet = Rendezvous(folder)
    procs = [subprocess.Popen(worker_argv(meet.endpoint), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              start_new_session=True) for _ in range(WORKERS)]
    try:
        meet.wait(WORKERS)
        time.sleep(SETTLE)
        return sum(_uss(psutil.Process(p.pid)) for p in procs)
    finally:
        for p in procs:
            p.kill()
            p.wait()
        meet.close()


def peer_idle(kind: str, venv: Path, folder: Path) -> tuple[float, float]:
    meet = Rendezvous(folder)
    try:
        with peer(kind, venv, meet.endpoint, WORKERS) as proc:
            meet.wait(WORKERS)
            time.sleep(SETTLE)
            me = psutil.Process(proc.pid)
            return me.memory_info().rss / MIB, _uss(me)
    finally:
        meet.close()


def main() -> int:
    note = compile_package()
    venv = supervisors_venv()
    print(f"idle memory: {WORKERS} workers; {os.cpu_count()} CPUs; {note}; circusd/supervisord: "
          f"{'installed' if venv else 'not installable'}")
    tmp = Path(tempfile.mkdtemp(prefix="animus-bench-mem-"))
    try:
        env, project = setup(tmp)
        animus = animus_idle(env, project)
        bare = bare_idle(tmp)
        peers = {kind: peer_idle(kind, venv, tmp) for kind in ("circusd", "supervisord")} if venv else {}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    kinds: dict[str, list[float]] = animus["kinds"]  # type: ignore[assignment]
    total = sum(sum(v) for v in kinds.values())
    count = sum(len(v) for v in kinds.values())
    root_rss = float(animus["root_rss"])  # type: ignore[arg-type]
    print(f"  animus root                 RSS {root_rss:6.1f} MiB, USS {kinds['root'][0]:6.1f} MiB")
    for kind in ("child supervisors", "zygotes", "workers"):
        values = kinds.get(kind, [])
        if values:
            print(f"  animus {kind:<20} {len(values):2d} processes, USS {sum(values):6.1f} MiB "
                  f"({sum(values) / len(values):.1f} each)")
    print(f"  animus tree in all          {count:2d} processes, USS {total:6.1f} MiB")
    print(f"  bare: {WORKERS} workers alone        USS {bare:6.1f} MiB ({bare / WORKERS:.1f} each); "
          f"animus tree / bare {total / bare:.2f}x")
    for kind, (rss, uss) in peers.items():
        print(f"  {kind:<12} (its own process) RSS {rss:6.1f} MiB, USS {uss:6.1f} MiB; "
              f"animus root RSS / {kind} {root_rss / rss:.2f}x")
    print(f"target root RSS <= {TARGET_MIB:g} MiB: {'met' if root_rss <= TARGET_MIB else 'MISSED'} "
          f"({root_rss:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
