"""The soak's summary: what it did, and each loss counted by ``checks`` and ``budget``.

``LOSSES`` are the counts that must all be 0 for the target to be met. The
summary (schema ``animus.soak.v1``) also says how much chaos there was and
where it landed, so that a zero can be told apart from a soak that proved
nothing; the details of each loss are returned beside it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from _soak import checks, setup
from _soak.budget import replay
from _soak.chaos import Chaos
from _soak.events import LogFollower, epoch, read_events
from _soak.workload import Feeder, Resolver, Resume, Stream, SubjectWriter, Worker, db_rows

LOSSES = ("lost_workflows", "duplicate_side_effects", "orphans", "budget_mismatches", "lost_events",
          "lost_records", "duplicate_records")


@dataclass(frozen=True)
class Load:
    feeder: Feeder
    writer: SubjectWriter
    resolver: Resolver

    @property
    def workers(self) -> tuple[Worker, ...]:
        return (self.feeder, self.writer, self.resolver)


@dataclass
class Outcome:
    """One soak, as it went: filled in by the chaos phase, then by the end phase."""

    soak: setup.SoakEnv
    chaos: Chaos
    load: Load
    stream: Stream
    follower: LogFollower
    began: float
    stages: dict[str, float]
    resumes: list[Resume] = field(default_factory=list)
    stored: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    orphans: list[str] = field(default_factory=list)
    stop_exit: int | None = None


def _budget(run: Outcome, log: Any) -> Any:
    """The restart budget replayed; a supervisor that died right after an exit took its decision along."""
    died = {f"supervisor/{e['data']['child']}:{e['data']['pid']}": epoch(e["ts"]) for e in read_events(log)
            if e["kind"] == "child_exited" and (e.get("data") or {}).get("supervisor") == "root"}
    died.update(run.chaos.tally.root_deaths)
    return replay(read_events(log), setup.RESTART, setup.SUPERVISOR, died)


def summarize(run: Outcome, seed: int) -> tuple[dict[str, Any], dict[str, list[str]]]:
    soak, t, load, mark = run.soak, run.chaos.tally, run.load, time.monotonic()
    log = soak.state_root / "logs" / "events.jsonl"
    dups, ledger_stats = checks.duplicate_side_effects(soak, run.resumes)
    lost_wf, statuses = checks.lost_workflows(soak, load.feeder.accepted)
    lost_subj, dup_records = checks.subject_records(load.writer.writes, run.stored)
    lost_ev_records = checks.event_records(soak, read_events(log), run.stored["task"])
    lost_ev, stream_stats = checks.lost_events(read_events(log), run.stream.out, t.lifetimes)
    budget = _budget(run, log)
    stalls = checks.unanswered_while_up([c for w in load.workers for c in w.unanswered],
                                        list(t.root_deaths.values()))
    run.stages["checks"] = time.monotonic() - mark
    chaos_minutes = run.stages["chaos"] / 60
    summary: dict[str, Any] = {
        "schema": "animus.soak.v1", "seed": seed,
        "kills": sum(t.kills.values()), "daemon_kills": t.daemon_kills,
        "side_effecting_kills": t.side_effecting_kills,
        "workflows": len(db_rows(soak, "SELECT id FROM workflows")),
        "lost_workflows": lost_wf.count, "duplicate_side_effects": dups.count, "orphans": len(run.orphans),
        "budget_mismatches": len(budget.mismatches), "lost_events": lost_ev.count,
        "lost_records": lost_subj.count + lost_ev_records.count, "duplicate_records": dup_records.count,
        "stops": sum(t.stops.values()), "crash_loops": t.crash_loops,
        "kills_by_kind": dict(t.kills), "worker_kills_by_role": dict(t.worker_roles),
        "stops_by_kind": dict(t.stops),
        "forced_resumes": sum(1 for r in run.resumes if r.outcome == "ok"),
        "workflow_statuses": statuses, "ledger": ledger_stats, "stream": stream_stats,
        "budget": {"decisions": budget.decisions, "restarts": budget.restarts, "disabled": budget.disabled,
                   "escalations": budget.escalations},
        "subject_writes": sum(1 for w in load.writer.writes if w.ok),
        "unanswered_calls": sum(len(w.unanswered) for w in load.workers),
        "unanswered_while_up": len(stalls),
        "client_errors": {type(w).__name__: dict(w.errors.most_common(5)) for w in load.workers},
        "daemon_stop_exit": run.stop_exit,
        "chaos_minutes": round(chaos_minutes, 2), "minutes": round((time.monotonic() - run.began) / 60, 2),
        "kills_per_minute": round(sum(t.kills.values()) / max(chaos_minutes, 1e-9), 1),
        "timing": {k: round(v, 1) for k, v in t.timing.items()},
        "stages_seconds": {k: round(v, 1) for k, v in run.stages.items()},
        "chaos_step_errors": dict(t.step_errors.most_common(5)),
    }
    details = {"lost_workflows": lost_wf.details, "duplicate_side_effects": dups.details,
               "orphans": run.orphans[:20], "budget_mismatches": budget.mismatches[:20],
               "lost_events": lost_ev.details, "lost_records": lost_subj.details + lost_ev_records.details,
               "duplicate_records": dup_records.details, "unanswered_while_up": stalls[:20]}
    return summary, details
