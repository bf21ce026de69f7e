"""Start to ready: ``animus daemon start --autonomous`` with the 16 default plugins, against baselines.

Measured in the same run, round by round (so machine load hits all alike):

* **animus**: the real CLI in a temp ANIMUS_HOME with the 16 first-party
  plugins installed (providers, subjects, transports, triggers); the clock
  stops when ``daemon start`` returns, which is when every child supervisor
  and every worker has acknowledged its start. Also shown: the part inside
  the daemon (``daemon_startup`` -> ``daemon_ready`` in its event log).
* **bare**: 16 Python processes started at once, each importing zmq and
  msgpack and connecting a DEALER that says hello to our ROUTER; the clock
  stops at the 16th hello. The floor for 16 supervised Python workers.
* **circusd** and **supervisord** (installed from PyPI into a cached venv,
  skipped if that fails) each starting the same 16 bare workers; the clock
  stops at the 16th hello.

Every bare worker gets its own session, as every Animus worker does: with
the kernel's autogroup scheduling (on where this was written), a session is
a scheduling group, and on a shared, loaded machine 16 workers in one
session start ~3x slower than 16 in their own sessions. circusd and
supervisord are started in a session of their own and arrange their
workers as they do.

Target: animus <= 1.5x bare. The last line says whether it is met.

Run: ``.venv/bin/python bench/start_ready.py [--runs N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bytecode import compile_package
from _peers import Rendezvous, peer, supervisors_venv, worker_argv

ANIMUS = [sys.executable, "-m", "animus.cli.main"]
WORKERS = 16
TARGET = 1.5


def _cli(env: dict[str, str], cwd: Path, *args: str) -> str:
    proc = subprocess.run([*ANIMUS, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=180)
    if proc.returncode != 0:
        raise SystemExit(f"animus {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")
    return proc.stdout


def setup(tmp: Path) -> tuple[dict[str, str], Path]:
    project = tmp / "project"
    project.mkdir()
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANIMUS_")}
    env.update({"ANIMUS_HOME": str(tmp / "home"), "PYTHONUNBUFFERED": "1"})
    _cli(env, project, "plugin", "install-defaults", "--include-subjects", "--include-transports",
         "--include-triggers")
    return env, project


def animus_start(env: dict[str, str], project: Path) -> tuple[float, float]:
    """(seconds until ``daemon start`` returned, seconds from daemon_startup to daemon_ready)."""
    t0 = time.perf_counter()
    info = json.loads(_cli(env, project, "daemon", "start", "--autonomous", "--json").splitlines()[-1])
    took = time.perf_counter() - t0
    try:
        status = json.loads(_cli(env, project, "daemon", "status", "--json"))
        workers = [c for s in status["tree"] for c in s["children"] if c.get("kind") == "worker"]
        if len(workers) != WORKERS or any(w["state"] != "running" for w in workers):
            raise SystemExit(f"expected {WORKERS} running workers, got {[(w['name'], w['state']) for w in workers]}")
        events = [json.loads(line) for line in (Path(info["state_root"]) / "logs" / "events.jsonl").read_text()
                  .splitlines() if '"daemon_startup"' in line or '"daemon_ready"' in line]
        stamps = [datetime.fromisoformat(e["ts"].replace("Z", "+00:00")) for e in events[-2:]]
        inside = (stamps[1] - stamps[0]).total_seconds()
    finally:
        _cli(env, project, "daemon", "stop", "--shutdown-timeout-secs", "30")
    return took, inside


def bare_start(folder: Path) -> float:
    meet = Rendezvous(folder)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        t0 = time.perf_counter()
        procs = [subprocess.Popen(worker_argv(meet.endpoint), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  start_new_session=True) for _ in range(WORKERS)]
        meet.wait(WORKERS)
        return time.perf_counter() - t0
    finally:
        for p in procs:
            p.kill()
            p.wait()
        meet.close()


def peer_start(kind: str, venv: Path, folder: Path) -> float:
    meet = Rendezvous(folder)
    try:
        t0 = time.perf_counter()
        with peer(kind, venv, meet.endpoint, WORKERS):
            meet.wait(WORKERS)
            return time.perf_counter() - t0
    finally:
        meet.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    note = compile_package()
    venv = supervisors_venv()
    print(f"start to ready: {WORKERS} workers, {a.runs} rounds; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}; {note}; circusd/supervisord: "
          f"{'installed' if venv else 'not installable'}")
    tmp = Path(tempfile.mkdtemp(prefix="animus-bench-start-"))
    results: dict[str, list[float]] = {"bare": [], "animus": [], "inside": []}
    peers = ("circusd", "supervisord") if venv else ()
    for kind in peers:
        results[kind] = []
    try:
        env, project = setup(tmp)
        animus_start(env, project)  # warm: page cache, compiled config, bytecode
        bare_start(tmp)
        for _ in range(a.runs):
            results["bare"].append(bare_start(tmp))
            took, inside = animus_start(env, project)
            results["animus"].append(took)
            results["inside"].append(inside)
            for kind in peers:
                assert venv is not None
                results[kind].append(peer_start(kind, venv, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    bare = statistics.median(results["bare"])
    rows = [("bare: 16 x (python + zmq + msgpack + DEALER)", "bare"), ("animus daemon start --autonomous", "animus"),
            ("  of which daemon_startup -> daemon_ready", "inside"), *((f"{k} starting the 16 bare workers", k)
                                                                      for k in peers)]
    for label, key in rows:
        med = statistics.median(results[key])
        print(f"  {label:<46} median {med * 1000:7.0f} ms  {med / bare:4.2f}x bare")
    ratio = statistics.median(results["animus"]) / bare
    print(f"target animus start <= {TARGET:g}x bare: {'met' if ratio <= TARGET else 'MISSED'} ({ratio:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
