"""The floor of one process per run, for ``bench/workflow_throughput.py``.

Not a benchmark itself (run without arguments, as ``make bench`` does, it does
nothing). ``python bench/_run_floor.py <runs> <pool>`` imports what the
daemon's runner zygote preloads, then runs ``runs`` runs, ``pool`` at a time:
each a child forked from it that runs the three phases' commands in order
(started as a runner starts them: own process group, output on a pipe read
to its end) and exits, reaped by its parent. No bus, no workflow.db, no
supervisor: what a daemon with a process per run cannot go below, fork
tax included. Prints the wall seconds.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time

PRELOAD = ("animus.workflow.runner", "animus.workflow.agent_phase")  # as animus.daemon.tree's lean zygote
PHASES = 3


def _run() -> None:
    """In the forked child: the run's commands, then exit."""
    code = 1
    try:
        for _ in range(PHASES):
            child = subprocess.Popen(["true"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, process_group=0)
            assert child.stdout is not None
            while child.stdout.read(65536):
                pass
            if child.wait() != 0:
                return
        code = 0
    finally:
        os._exit(code)


def main(runs: int, pool: int) -> None:
    for name in PRELOAD:
        importlib.import_module(name)
    started = live = 0
    t0 = time.perf_counter()
    while started < runs or live:
        while live < pool and started < runs:
            if os.fork() == 0:
                _run()
            started += 1
            live += 1
        _, status = os.wait()
        live -= 1
        if status != 0:
            raise SystemExit(f"a run's commands failed (wait status {status})")
    print(f"{time.perf_counter() - t0:.6f}")


if __name__ == "__main__" and len(sys.argv) == 3:
    main(int(sys.argv[1]), int(sys.argv[2]))
