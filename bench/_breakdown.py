"""Shared by the workflow benchmarks: where a run's time and CPU went.

Not a benchmark itself. ``stretches`` reads the scope's ``events.jsonl`` and
gives the median of each stretch of a run, from the events' own timestamps:
the runner's exit as the workflows supervisor saw it to the next run's
``workflow_started`` in that slot (queue, fork, runner start-up), start to
first phase (placement), each phase, the gaps between phases, the last phase
to ``workflow_completed``, and that to the runner's exit; and, once, how long
the first run waited to start. ``cpu_by_role``
gives the CPU (user + system) the daemon's processes spent per run between
two ``cpu_snapshot``s, by role; a runner's CPU (its commands' included) is
counted in its zygote's reaped children. Linux only (``/proc``).
"""

from __future__ import annotations

import json
import os
import statistics
from collections import defaultdict
from datetime import datetime
from pathlib import Path

__all__ = ["cpu_by_role", "cpu_snapshot", "stretches"]

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


def cpu_snapshot(marker: str) -> dict[int, tuple[str, float, float]]:
    """pid -> (role, own CPU ms, reaped children's CPU ms) of every process whose environment has ``marker``."""
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
        own = (int(fields[11]) + int(fields[12])) * _TICK_MS
        kids = (int(fields[13]) + int(fields[14])) * _TICK_MS
        out[int(pid)] = (role, own, kids)
    return out


def cpu_by_role(before: dict[int, tuple[str, float, float]], after: dict[int, tuple[str, float, float]],
                runs: int) -> dict[str, float]:
    """CPU ms per run spent between the snapshots, by role (zygotes' reaped children as ``runners``)."""
    spent: dict[str, float] = defaultdict(float)
    for pid, (role, own, kids) in after.items():
        _, own0, kids0 = before.get(pid, (role, 0.0, 0.0))
        spent[role] += own - own0
        spent["runners (reaped by zygotes)" if role == "zygote" else f"{role} (reaped children)"] += kids - kids0
    per_run = {k: round(v / runs, 2) for k, v in spent.items() if v > 0}
    per_run["total"] = round(sum(spent.values()) / runs, 2)
    return dict(sorted(per_run.items(), key=lambda kv: -kv[1]))
