"""Shared by the workflow benchmarks: where a run's time and CPU went.

Not a benchmark itself. ``stretches`` reads the scope's ``events.jsonl`` and
gives the median of each stretch of a run, from the events' own timestamps:
the runner's exit as the workflows supervisor saw it to the next run's
``workflow_started`` in that slot (queue, fork, runner start-up), start to
first phase (placement), each phase, the gaps between phases, the last phase
to ``workflow_completed``, and that to the runner's exit; and, once, how long
the first run waited to start. ``per_run`` gives what the daemon's processes
spent per run between two ``cpu_snapshot``s, by role: CPU (user + kernel),
its kernel part, or page faults (a forked runner's are mostly copy-on-write:
each page it writes that it shares with its zygote is copied). A runner's
count (its commands' included) is in its zygote's reaped children. Linux
only (``/proc``).
"""

from __future__ import annotations

import json
import os
import statistics
from collections import defaultdict
from datetime import datetime
from pathlib import Path

__all__ = ["cpu_snapshot", "per_run", "stretches"]

_TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def _ts(event: dict) -> float:
    return datetime.fromisoformat(event["ts"].replace("Z", "+00:00")).timestamp()


def _run_of(event: dict) -> str | None:
    data = event.get("data") or {}
    wf = data.get("workflow_id") or event.get("workflow_id") or data.get("child")
    return str(wf) if wf and str(wf).startswith("wf-") else None


def stretches(events_file: Path) -> dict[str, float]:
    """Median ms of each stretch of a run (see the module doc)."""
    runs: dict[str, list[tuple[float, str]]] = defaultdict(list)
    queued = []
    for line in events_file.read_text().splitlines():
        event = json.loads(line)
        if event["kind"] == "workflow_queued":
            queued.append(_ts(event))
        elif (wf := _run_of(event)) and event["kind"] != "child_stderr":
            runs[wf].append((_ts(event), event["kind"]))
    out: dict[str, list[float]] = defaultdict(list)
    exits, starts = [], []
    for evs in runs.values():
        evs.sort()
        kinds = [k for _, k in evs]
        for (t0, k0), (t1, k1) in zip(evs, evs[1:]):
            out[f"{k0} -> {k1}"].append((t1 - t0) * 1000)
        if "child_exited" in kinds:
            exits.append(evs[kinds.index("child_exited")][0])
        if "workflow_started" in kinds:
            starts.append(evs[kinds.index("workflow_started")][0])
    exits.sort()
    for start in sorted(starts):  # each start takes the slot of the latest exit before it
        before = [e for e in exits if e <= start]
        if before:
            out["runner exited -> next workflow_started"].append((start - before[-1]) * 1000)
            exits.remove(before[-1])
    medians = {k: round(statistics.median(v), 2) for k, v in out.items() if len(v) >= 10}
    if queued and starts:  # once: the first run waits for what starts on demand (the zygote)
        medians["first run: workflow_queued -> workflow_started"] = round((min(starts) - min(queued)) * 1000, 2)
    return medians


# /proc/<pid>/stat's counters kept by a snapshot (fields 10-17: minflt, cminflt, majflt, cmajflt,
# utime, stime, cutime, cstime), and which of them each measure adds up: (own, reaped children's, unit,
# the least per run a role is shown with, digits: None for a whole number)
_MEASURES = {
    "cpu_ms": ((4, 5), (6, 7), _TICK_MS, 0.1, 2),
    "kernel_cpu_ms": ((5,), (7,), _TICK_MS, 0.1, 2),
    "page_faults": ((0,), (1,), 1.0, 1.0, None),
}

Snapshot = dict[int, tuple[str, tuple[int, ...]]]


def cpu_snapshot(marker: str) -> Snapshot:
    """pid -> (role, its counters) of every process whose environment has ``marker``."""
    out = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                if marker.encode() not in fh.read():
                    continue
            with open(f"/proc/{pid}/cmdline", "rb") as fh:  # a forked process may show one spaced string
                argv = fh.read().replace(b"\0", b" ").split()
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        module = argv[2].decode() if len(argv) > 2 and argv[1] == b"-m" else (argv or [b"?"])[0].decode()
        role = {"animus.daemon.main": "daemon root", "animus.supervision.zygote": "zygote"}.get(module, module)
        if module == "animus.supervision.child":
            role = f"supervisor {Path(argv[3].decode()).stem}" if len(argv) > 3 else "supervisor"
        out[int(pid)] = (role, tuple(int(f) for f in fields[7:15]))
    return out


def per_run(before: Snapshot, after: Snapshot, runs: int, measure: str = "cpu_ms") -> dict[str, float]:
    """``measure`` (CPU ms, its kernel part, or page faults) per run between the snapshots, by role
    (a zygote's reaped children as ``runners``: their commands are theirs)."""
    own_at, kids_at, unit, least, digits = _MEASURES[measure]
    spent: dict[str, float] = defaultdict(float)
    for pid, (role, now) in after.items():
        then = before.get(pid, (role, (0,) * len(now)))[1]
        spent[role] += sum(now[i] - then[i] for i in own_at) * unit
        kids = "runners (reaped by zygotes)" if role == "zygote" else f"{role} (reaped children)"
        spent[kids] += sum(now[i] - then[i] for i in kids_at) * unit
    per = {k: round(v / runs, digits) for k, v in spent.items() if v / runs >= least}
    per["total"] = round(sum(spent.values()) / runs, digits)
    return dict(sorted(per.items(), key=lambda kv: -kv[1]))
