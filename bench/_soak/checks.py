"""The losses, counted from outside Animus where possible: the ledger, the stream, psutil.

- ``duplicate_side_effects``: the ledger against ``workflow.db``'s attempts.
  A side-effecting (or unannotated) phase may write its line again only on
  a new attempt that something authorised: the previous attempt ended with
  a verdict that the workflow routes back to the phase (``failed``), or it
  crashed and the operator then sent ``workflow resume --force``. The same
  attempt twice, an attempt the database does not know, a re-run after a
  completed attempt or after a crash with no forced resume: duplicates.
- ``lost_workflows``: accepted (acknowledged, or in the database) and not
  completed at the end, after the forced resumes.
- ``lost_records``: an acknowledged subject write missing or not what was
  acknowledged; a ``phase_completed`` or ``workflow_completed`` event (published
  only after its transaction committed) that the database does not hold; a
  completed workflow whose task is not ``done``.
- ``duplicate_records``: a subject created twice (one title, two records).
- ``lost_events``: an event of the capture lane the stream neither received
  nor reported as a gap: inside the stream's own view of a publisher (a
  silent jump), or published while the stream was connected.
- orphans: ``scan_orphans``, psutil over the whole machine by the marker.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from _soak.events import epoch
from _soak.setup import SIDE_EFFECTING, SoakEnv
from _soak.workload import Accepted, Resume, Write, db_rows

EPS = 0.05


@dataclass
class Finding:
    count: int = 0
    details: list[str] = field(default_factory=list)

    def add(self, detail: str, n: int = 1) -> None:
        self.count += n
        if len(self.details) < 20:
            self.details.append(detail)


def attempts(soak: SoakEnv) -> dict[tuple[str, str, int], dict[str, Any]]:
    rows = db_rows(soak, "SELECT workflow_id, phase, attempt, status, idempotency, started_at, ended_at "
                         "FROM phase_attempts")
    return {(r["workflow_id"], r["phase"], r["attempt"]): dict(r) for r in rows}


def duplicate_side_effects(soak: SoakEnv, resumes: list[Resume]) -> tuple[Finding, dict[str, int]]:
    found = Finding()
    table = attempts(soak)
    forced = defaultdict(list)
    for r in resumes:
        if r.outcome != "refused":
            forced[r.workflow_id].append(r.at)
    lines = Counter(tuple(line.split()) for line in soak.ledger.read_text().splitlines() if line.strip())
    stats = Counter[str]()
    for key, n in lines.items():
        wf, phase, attempt = key[0], key[1], int(key[2])
        row = table.get((wf, phase, attempt))
        if row is None:
            found.add(f"{wf} {phase} attempt {attempt}: a ledger line for an attempt the database does not know",
                      n)
            continue
        stats["ledger_lines"] += n
        if row["idempotency"] not in SIDE_EFFECTING:
            if any(table.get((wf, phase, k), {}).get("status") == "completed" for k in range(1, attempt)):
                stats["idempotent_reruns_after_completion"] += 1
            continue
        stats["side_effecting_lines"] += n
        if n > 1:
            found.add(f"{wf} {phase} attempt {attempt}: ledger line written {n} times", n - 1)
        if attempt == 1:
            continue
        prev = table.get((wf, phase, attempt - 1))
        why = _authorised(prev, row, forced[wf])
        if why is None:
            found.add(f"{wf} {phase} attempt {attempt} ran after attempt {attempt - 1} "
                      f"{prev['status'] if prev else 'unknown'} with no forced resume")
        else:
            stats[why] += 1
    return found, dict(stats)


def _authorised(prev: dict[str, Any] | None, row: dict[str, Any], forced: list[float]) -> str | None:
    if prev is None:
        return None
    if prev["status"] in ("failed", "waiting"):
        return "reruns_by_verdict"  # the workflow routes a failed phase back to itself; a parked one resumes
    if prev["status"] == "crashed":
        lo, hi = (prev["ended_at"] or prev["started_at"]) - EPS, row["started_at"] + EPS
        if any(lo <= t <= hi for t in forced):
            return "reruns_by_forced_resume"
    return None


def lost_workflows(soak: SoakEnv, accepted: list[Accepted]) -> tuple[Finding, dict[str, int]]:
    found = Finding()
    rows = {r["id"]: dict(r) for r in db_rows(soak, "SELECT id, status, blocked_reason, failure_reason "
                                                    "FROM workflows")}
    for a in accepted:
        if a.workflow_id not in rows:
            found.add(f"{a.workflow_id} ({a.ref}) was accepted and is not in workflow.db")
    for wf in rows.values():
        if wf["status"] != "completed":
            found.add(f"{wf['id']} ended {wf['status']}: {wf['blocked_reason'] or wf['failure_reason'] or ''}")
    return found, dict(Counter(r["status"] for r in rows.values()))


def subject_records(writes: list[Write], stored: dict[str, list[dict[str, Any]]]) -> tuple[Finding, Finding]:
    lost, dup = Finding(), Finding()
    by_id = {(k, s["id"]): s for k, subjects in stored.items() for s in subjects}
    for kind, subjects in stored.items():
        titles = Counter(str(s.get("title", "")).removesuffix(" u") for s in subjects)
        for title, n in titles.items():
            if n > 1 and title.startswith("soak "):
                dup.add(f"{kind} {title!r} stored {n} times", n - 1)
    updated = {(w.kind, w.id) for w in writes if w.op == "update" and w.ok}
    in_doubt = {(w.kind, w.id) for w in writes if w.op == "update" and not w.ok}
    for w in writes:
        if not w.ok or w.op != "create":
            continue
        got = by_id.get((w.kind, w.id))
        if got is None:
            lost.add(f"acknowledged create of {w.kind} {w.id} ({w.title!r}) is missing")
            continue
        title = str(got.get("title"))
        want = {f"{w.title} u"} if (w.kind, w.id) in updated else {w.title}
        if (w.kind, w.id) in in_doubt:
            want = {w.title, f"{w.title} u"}
        if title not in want:
            lost.add(f"{w.kind} {w.id}: title {title!r}, acknowledged {sorted(want)}")
    return lost, dup


def event_records(soak: SoakEnv, events: Iterable[dict[str, Any]], tasks: list[dict[str, Any]]) -> Finding:
    found = Finding()
    table = attempts(soak)
    statuses = {r["id"]: r["status"] for r in db_rows(soak, "SELECT id, status FROM workflows")}
    subjects = {r["id"]: r["subject_id"] for r in db_rows(soak, "SELECT id, subject_id FROM workflows")}
    for e in events:
        if e["kind"] == "phase_completed" and str(e.get("src", "")).startswith("runner/"):
            data = e.get("data") or {}
            row = table.get((e.get("workflow_id"), e.get("phase"), int(data.get("attempt") or 0)))
            if row is None or row["status"] != data.get("status"):
                found.add(f"{e.get('workflow_id')} {e.get('phase')} attempt {data.get('attempt')}: event says "
                          f"{data.get('status')}, workflow.db says {row['status'] if row else 'nothing'}")
        elif e["kind"] == "workflow_completed" and statuses.get(str(e.get("workflow_id"))) != "completed":
            found.add(f"{e.get('workflow_id')}: workflow_completed published, workflow.db says "
                      f"{statuses.get(str(e.get('workflow_id')))}")
    task_status = {t["id"]: t.get("status") for t in tasks}
    for wf, status in statuses.items():
        if status == "completed" and subjects.get(wf) and task_status.get(subjects[wf]) != "done":
            found.add(f"{wf} completed, its task {subjects[wf]} is {task_status.get(subjects[wf])}")
    return found


def lost_events(log: Iterable[dict[str, Any]], stream_out: Path, windows: list[tuple[float, float]],
                margin: tuple[float, float] = (2.0, 3.0)) -> tuple[Finding, dict[str, int]]:
    """``windows``: (from, to) wall-clock spans when the stream was connected to a live daemon."""
    found = Finding()
    got: dict[str, set[int]] = defaultdict(set)
    gaps: dict[str, list[tuple[int, int]]] = defaultdict(list)
    received = reported = 0
    with stream_out.open("rb") as fh:
        for line in fh:
            if not line.endswith(b"\n"):
                continue
            e = json.loads(line)
            if e.get("kind") == "stream_gap":
                gaps[e["src"]].append((int(e["from_seq"]), int(e["to_seq"])))
                reported += int(e["missing"])
            elif isinstance(e.get("seq"), int):
                got[e["src"]].add(e["seq"])
                received += 1

    def known(src: str, seq: int) -> bool:
        return seq in got.get(src, ()) or any(a <= seq <= b for a, b in gaps.get(src, ()))

    for src in set(got) | set(gaps):
        seqs = got.get(src, set()) | {s for a, b in gaps.get(src, ()) for s in (a, b)}
        lo, hi = min(seqs), max(seqs)
        silent = [s for s in range(lo, hi + 1) if not known(src, s)]
        if silent:
            found.add(f"{src}: seq {silent[:5]} neither received nor reported as a gap", len(silent))
    inside = [(a + margin[0], b - margin[1]) for a, b in windows]
    logged = 0
    for e in log:
        logged += 1
        ts = epoch(e["ts"])
        if any(a <= ts <= b for a, b in inside) and not known(e["src"], int(e["seq"])):
            found.add(f"{e['src']} seq {e['seq']} ({e['kind']}) logged while the stream was connected, "
                      "neither received nor reported")
    return found, {"stream_received": received, "stream_gap_reported": reported, "logged": logged}


def unanswered_while_up(calls: list[tuple[float, float, str]], root_deaths: list[float]) -> list[str]:
    """Client calls that got no answer at all although no daemon kill fell while they waited
    (a call in flight when its daemon dies is lost with it; any other should be answered,
    with an error if need be). Not a loss of state: reported beside the losses."""
    return [f"{method} sent at {sent:.3f} got no answer in {end - sent:.0f}s with the daemon up"
            for sent, end, method in calls if not any(sent - 1.0 <= d <= end for d in root_deaths)]


def scan_orphans(soak: SoakEnv) -> list[str]:
    """Every process on the machine with this run's marker, but us."""
    out = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        if proc.info["pid"] == os.getpid() or proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            if soak.has_marker(proc.environ()):
                out.append(f"{proc.info['pid']} {' '.join(proc.info['cmdline'] or [])[:160]}")
        except psutil.Error:
            continue
    return out


def kill_marked(soak: SoakEnv) -> None:
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.pid != os.getpid() and soak.has_marker(proc.environ()):
                proc.kill()
        except psutil.Error:
            continue
