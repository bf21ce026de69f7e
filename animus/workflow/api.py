"""Control methods of the workflows supervisor (``workflow/*`` on the control socket).

run, list, get, resume, cancel, approve, reject, triggers, fire, tick, stats;
and for runners on a Ray cluster: store (a remote runner's workflow.db
calls), runner (its node's started / heartbeat / exited reports), runners
(the backend, its nodes and runs, for ``daemon status``).
The root forwards each call here; replies are plain dicts the CLI renders.
"""

from __future__ import annotations

import builtins  # the classes below have a method named list, which shadows it in annotations
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from animus.errors import Conflict, InvalidInput, NotFound, Unavailable
from animus.workflow.events import WorkflowEvents
from animus.workflow.intake import Intake
from animus.workflow.model import WorkflowConfig
from animus.workflow.operations import Operations
from animus.workflow.queue import RunQueue
from animus.workflow.remote.store import serve_store_op
from animus.workflow.scheduler import Scheduler
from animus.workflow.store import STATUSES, WorkflowStore, WorkflowRow
from animus.workflow.usage import sum_usage

if TYPE_CHECKING:
    from animus.workflow.remote.ray_backend import RayBackend

__all__ = ["WorkflowApi", "summary"]


def summary(wf: WorkflowRow) -> dict[str, Any]:
    keys = ("id", "workflow_ref", "subject_id", "status", "blocked_reason", "failure_reason", "waiting",
            "current_phase", "trigger_source", "created_at", "updated_at", "completed_at", "runs", "node")
    out = {k: wf.get(k) for k in keys}
    out["workflow_id"] = wf["id"]
    out["usage"] = wf.get("usage") or {}
    return out


def _trigger_detail(tid: str, kind: str, config: dict[str, Any]) -> str:
    if kind == "cron":
        return str(config.get("cron", ""))
    if kind == "file_watcher":
        return ",".join(config.get("paths") or [])
    if kind == "webhook":
        signed = bool(config.get("secret") or config.get("secret_env"))
        return f"POST /webhooks/{tid}" + ("" if signed else " (no secret: every delivery refused)")
    return ""


def _subject_ref(task_id: str) -> tuple[str, str]:
    """``TASK-001`` or ``task:TASK-001`` → (kind, subject id)."""
    if ":" in task_id:
        kind = task_id.split(":", 1)[0]
        return kind, task_id
    return "task", f"task:{task_id}"


@dataclass(frozen=True)
class ApiParts:
    """What the control methods work with; each part owns one thing."""

    store: WorkflowStore
    queue: RunQueue
    intake: Intake
    operations: Operations
    scheduler: Scheduler
    events: WorkflowEvents
    configs: Callable[[], WorkflowConfig]
    state_root: Path
    remote: RayBackend | None = None


class WorkflowApi:
    def __init__(self, parts: ApiParts) -> None:
        self.parts = parts
        self.store = parts.store

    def handlers(self) -> dict[str, Any]:
        return {"run": self.run, "list": self.list, "get": self.get, "resume": self.resume,
                "cancel": self.cancel, "approve": self.approve, "reject": self.reject,
                "triggers": self.triggers, "fire": self.fire, "tick": self.tick, "stats": self.stats,
                "store": self.remote_store, "runner": self.remote_runner, "runners": self.runners}

    async def run(self, params: dict[str, Any]) -> dict[str, Any]:
        task_id, title = params.get("task_id"), params.get("title")
        source = "mcp" if params.get("trigger_source") == "mcp" else "manual"  # the CLI's, or an MCP client's
        if task_id:
            kind, subject_id = _subject_ref(str(task_id))
            try:
                subject = await self.parts.queue.projector.subject(kind, "get", {"id": subject_id})
            except Unavailable:
                return summary(await self.parts.intake.on_unavailable_subject(kind, subject_id,
                                                                              params.get("workflow_ref")))
            wf = await self.parts.intake.on_subject(kind, subject, params.get("workflow_ref"), source)
        elif title:
            wf = await self.parts.intake.adhoc(params.get("workflow_ref"), str(title), source)
        else:
            raise InvalidInput("workflow/run needs task_id or title")
        return summary(wf)

    async def list(self, params: dict[str, Any]) -> builtins.list[dict[str, Any]]:
        status = params.get("status")
        if status and status not in STATUSES:
            raise InvalidInput(f"unknown status {status!r}", fix=f"one of: {', '.join(STATUSES)}")
        subject = None
        if params.get("task_id"):
            subject = _subject_ref(str(params["task_id"]))[1]
        rows = self.store.list(status, int(params.get("limit") or 50), subject)
        return [summary(r) for r in rows]

    async def get(self, params: dict[str, Any]) -> dict[str, Any]:
        wf = self.store.get(str(params.get("id") or ""))
        out = summary(wf)
        out["subject"] = wf.get("subject")
        out["worktree"] = wf.get("worktree") or {}  # path, branch, base commit, removed
        out["delivery"] = wf.get("delivery") or {}  # state, commit, merge, pr, reason
        attempts = self.store.attempts(wf["id"])
        phases: dict[str, dict[str, Any]] = {}
        cfg = self.parts.configs()
        definition = cfg.workflows.get(wf["workflow_ref"])
        cfg_phases = cfg.phases
        for entry in definition.phases if definition else ():
            ph = cfg_phases.get(entry.phase_id)
            phases[entry.phase_id] = {"phase": entry.phase_id, "status": "not started", "attempts": 0,
                                      "idempotency": ph.idempotency.value if ph else "unknown",
                                      "mode": ph.mode.value if ph else None, "attempt_list": []}
        for att in attempts:
            row = phases.setdefault(att["phase"], {"phase": att["phase"], "attempt_list": [],
                                                   "idempotency": att["idempotency"], "mode": att["mode"]})
            row["attempt_list"].append(att)
            row["attempts"] = len(row["attempt_list"])
            row["status"] = att["status"]
            row["verdict"] = att.get("verdict")
        for row in phases.values():
            row["usage"] = sum_usage(a.get("usage") or {} for a in row["attempt_list"])
        out["phases"] = list(phases.values())
        if wf.get("subject_id"):
            siblings = self.store.list(None, 1000, wf["subject_id"])
            out["task_usage"] = sum_usage(w.get("usage") or {} for w in siblings)
        return out

    async def resume(self, params: dict[str, Any]) -> dict[str, Any]:
        return summary(await self.parts.operations.resume(str(params.get("id")), bool(params.get("force"))))

    async def cancel(self, params: dict[str, Any]) -> dict[str, Any]:
        return summary(await self.parts.operations.cancel(str(params.get("id"))))

    async def approve(self, params: dict[str, Any]) -> dict[str, Any]:
        return summary(await self.parts.operations.approve(str(params.get("id")), params.get("phase"), True, params.get("note")))

    async def reject(self, params: dict[str, Any]) -> dict[str, Any]:
        return summary(await self.parts.operations.approve(str(params.get("id")), params.get("phase"), False, params.get("note")))

    async def triggers(self, params: dict[str, Any]) -> builtins.list[dict[str, Any]]:
        """Schedules and ``triggers:`` entries, with when each last started a workflow."""
        cfg = self.parts.configs()
        rows = [{"id": s.id, "type": "cron", "section": "schedules", "workflow_ref": s.workflow_ref,
                 "enabled": s.enabled, "detail": s.cron, "last_run": self.store.schedule_last_run(s.id)}
                for s in cfg.schedules]
        rows += [{"id": t.id, "type": t.type.value, "section": "triggers", "workflow_ref": t.workflow_ref,
                  "enabled": t.enabled, "detail": _trigger_detail(t.id, t.type.value, t.config),
                  "last_run": self.store.schedule_last_run(t.id)} for t in cfg.triggers]
        return rows

    async def fire(self, params: dict[str, Any]) -> dict[str, Any]:
        """Route a trigger event (from a trigger plugin, the webhook, or the CLI) to its workflow.

        The id is looked up among the schedules and the ``triggers:`` entries;
        either way one ``trigger_event`` is published, which the daemon counts
        as ``trigger_events_total{plugin, routed}``.
        """
        trigger_id = str(params.get("trigger_id") or "")
        source = str(params.get("source") or "cli")
        cfg = self.parts.configs()
        entry: Any = next((s for s in cfg.schedules if s.id == trigger_id), None)
        kind = "cron"
        if entry is None:
            entry = next((t for t in cfg.triggers if t.id == trigger_id), None)
            kind = entry.type.value if entry is not None else ""
        if entry is None:
            self.parts.events.emit("trigger_event", "warn", {"plugin": source, "trigger": trigger_id, "routed": False,
                                                    "message": f"unmatched trigger {trigger_id!r} from {source}"})
            raise NotFound(f"no trigger or schedule {trigger_id!r}", fix="animus trigger list")
        payload = dict(entry.input) | dict(params.get("payload") or {})
        wf = await self.parts.intake.adhoc(entry.workflow_ref, f"trigger {trigger_id}", source, payload)
        self.store.record_schedule_run(trigger_id, time.time())
        self.parts.events.emit("trigger_event", "info", {"plugin": source, "trigger": trigger_id, "type": kind,
                                                "routed": True, "workflow_id": wf["id"]})
        return {"status": "dispatched", "workflow_id": wf["id"], "trigger_id": trigger_id}

    async def tick(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self.parts.scheduler.tick()

    # -- remote runners (the ray backend) -------------------------------------
    def _backend(self) -> RayBackend:
        if self.parts.remote is None:
            raise Conflict("runners.backend is local: no remote runners here")
        return self.parts.remote

    async def remote_store(self, params: dict[str, Any]) -> Any:
        """A remote runner's store call (``animus.workflow.remote.store``), for its own, current run only."""
        self._backend().authorize(str(params.get("wf_id")), str(params.get("run")))
        return serve_store_op(self.store, self.parts.state_root, params)

    async def remote_runner(self, params: dict[str, Any]) -> dict[str, Any]:
        """A node's report on its run: started, heartbeat, exited."""
        result: dict[str, Any] = self._backend().runner_op(params)
        return result

    async def runners(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.parts.remote is None:
            return {"backend": "local"}
        result: dict[str, Any] = await self.parts.remote.describe()
        return result

    async def stats(self, params: dict[str, Any]) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for row in self.store.conn.execute("SELECT status, COUNT(*) FROM workflows GROUP BY status"):
            counts[row[0]] = row[1]
        queue = self.parts.queue
        return {"by_status": counts, "running": sorted(queue.launcher.running()), "pool_size": queue.pool_size}
