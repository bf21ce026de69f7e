"""Control methods of the workflows supervisor (``workflow/*`` on the control socket).

run, list, get, resume, cancel, approve, reject, triggers, fire, tick, stats;
and for runners on a Ray cluster: store (a remote runner's workflow.db
calls), runner (its node's started / heartbeat / exited reports), runners
(the backend, its nodes and runs, for ``daemon status``).
The root forwards each call here; replies are plain dicts the CLI renders.
"""

from __future__ import annotations

import time
import builtins  # the classes below have a method named list, which shadows it in annotations
from typing import TYPE_CHECKING, Any

from animus.errors import Conflict, InvalidInput, NotFound, Unavailable
from animus.workflow.remote.store import serve_store_op
from animus.workflow.store import STATUSES

if TYPE_CHECKING:
    from animus.workflow.service import WorkflowSupervisor

__all__ = ["WorkflowApi", "summary"]


def summary(wf: dict[str, Any]) -> dict[str, Any]:
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


def _sum_usage(items: Any) -> dict[str, float]:
    total: dict[str, float] = {}
    for usage in items:
        for key in ("input_tokens", "output_tokens", "cost_usd"):
            if isinstance(usage.get(key), (int, float)):
                total[key] = round(total.get(key, 0) + usage[key], 6)
    return total


class WorkflowApi:
    def __init__(self, sup: WorkflowSupervisor) -> None:
        self.sup = sup
        self.store = sup.store

    def handlers(self) -> dict[str, Any]:
        return {"run": self.run, "list": self.list, "get": self.get, "resume": self.resume,
                "cancel": self.cancel, "approve": self.approve, "reject": self.reject,
                "triggers": self.triggers, "fire": self.fire, "tick": self.tick, "stats": self.stats,
                "store": self.remote_store, "runner": self.remote_runner, "runners": self.runners}

    def _workflow_ref(self, ref: str | None) -> str:
        cfg = self.sup.workflow_config()
        ref = ref or cfg.default_workflow_ref or "standard"
        if ref not in cfg.workflows:
            raise NotFound(f"no workflow {ref!r} in the workflow config",
                           fix=f"known: {', '.join(sorted(cfg.workflows))}; see animus workflow validate")
        return ref

    async def start_on_subject(self, kind: str, subject: dict[str, Any], workflow_ref: str | None,
                               source: str) -> dict[str, Any]:
        ref = self._workflow_ref(workflow_ref or (subject.get("custom") or {}).get("workflow_ref"))
        wf = self.store.create(ref, subject | {"kind": kind}, source)
        try:
            await self.sup.projector.set_task(kind, subject["id"], "in-progress")
        except Unavailable:
            self.sup.block(wf["id"], "Subject backend unavailable")
            return self.store.get(wf["id"])
        self.sup.emit_wf("workflow_queued", "info", wf["id"], workflow_ref=ref, subject_id=subject["id"],
                         trigger_source=source)
        await self.sup.fill()
        return self.store.get(wf["id"])

    async def start_adhoc(self, workflow_ref: str | None, title: str, source: str,
                          payload: dict[str, Any] | None = None) -> dict[str, Any]:
        ref = self._workflow_ref(workflow_ref)
        wf = self.store.create(ref, {"title": title, "input": payload or {}}, source)
        self.sup.emit_wf("workflow_queued", "info", wf["id"], workflow_ref=ref, trigger_source=source)
        await self.sup.fill()
        return self.store.get(wf["id"])

    async def run(self, params: dict[str, Any]) -> dict[str, Any]:
        task_id, title = params.get("task_id"), params.get("title")
        if task_id:
            kind, subject_id = _subject_ref(str(task_id))
            try:
                subject = await self.sup.control.call("subject/call", {"kind": kind, "verb": "get",
                                                                       "params": {"id": subject_id}}, timeout=15)
            except Unavailable:
                wf = self.store.create(self._workflow_ref(params.get("workflow_ref")),
                                       {"id": subject_id, "kind": kind}, "manual")
                self.sup.block(wf["id"], "Subject backend unavailable")
                return summary(self.store.get(wf["id"]))
            wf = await self.start_on_subject(kind, subject, params.get("workflow_ref"), "manual")
        elif title:
            wf = await self.start_adhoc(params.get("workflow_ref"), str(title), "manual")
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
        attempts = self.store.attempts(wf["id"])
        phases: dict[str, dict[str, Any]] = {}
        definition = self.sup.workflow_config().workflows.get(wf["workflow_ref"])
        cfg_phases = self.sup.workflow_config().phases
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
            row["usage"] = _sum_usage(a.get("usage") or {} for a in row["attempt_list"])
        out["phases"] = list(phases.values())
        if wf.get("subject_id"):
            siblings = self.store.list(None, 1000, wf["subject_id"])
            out["task_usage"] = _sum_usage(w.get("usage") or {} for w in siblings)
        return out

    async def resume(self, params: dict[str, Any]) -> dict[str, Any]:
        return summary(await self.sup.resume(str(params.get("id")), bool(params.get("force"))))

    async def cancel(self, params: dict[str, Any]) -> dict[str, Any]:
        return summary(await self.sup.cancel(str(params.get("id"))))

    async def approve(self, params: dict[str, Any]) -> dict[str, Any]:
        return summary(await self.sup.approve(str(params.get("id")), params.get("phase"), True, params.get("note")))

    async def reject(self, params: dict[str, Any]) -> dict[str, Any]:
        return summary(await self.sup.approve(str(params.get("id")), params.get("phase"), False, params.get("note")))

    async def triggers(self, params: dict[str, Any]) -> builtins.list[dict[str, Any]]:
        """Schedules and ``triggers:`` entries, with when each last started a workflow."""
        cfg = self.sup.workflow_config()
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
        cfg = self.sup.workflow_config()
        entry: Any = next((s for s in cfg.schedules if s.id == trigger_id), None)
        kind = "cron"
        if entry is None:
            entry = next((t for t in cfg.triggers if t.id == trigger_id), None)
            kind = entry.type.value if entry is not None else ""
        if entry is None:
            self.sup.emit("trigger_event", "warn", {"plugin": source, "trigger": trigger_id, "routed": False,
                                                    "message": f"unmatched trigger {trigger_id!r} from {source}"})
            raise NotFound(f"no trigger or schedule {trigger_id!r}", fix="animus trigger list")
        payload = dict(entry.input) | dict(params.get("payload") or {})
        wf = await self.start_adhoc(entry.workflow_ref, f"trigger {trigger_id}", source, payload)
        self.store.record_schedule_run(trigger_id, time.time())
        self.sup.emit("trigger_event", "info", {"plugin": source, "trigger": trigger_id, "type": kind,
                                                "routed": True, "workflow_id": wf["id"]})
        return {"status": "dispatched", "workflow_id": wf["id"], "trigger_id": trigger_id}

    async def tick(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self.sup.tick()

    # -- remote runners (the ray backend) -------------------------------------
    def _backend(self) -> Any:
        if self.sup.backend is None:
            raise Conflict("runners.backend is local: no remote runners here")
        return self.sup.backend

    async def remote_store(self, params: dict[str, Any]) -> Any:
        """A remote runner's store call (``animus.workflow.remote.store``), for its own, current run only."""
        self._backend().authorize(str(params.get("wf_id")), str(params.get("run")))
        return serve_store_op(self.store, self.sup.state_root, params)

    async def remote_runner(self, params: dict[str, Any]) -> dict[str, Any]:
        """A node's report on its run: started, heartbeat, exited."""
        result: dict[str, Any] = self._backend().runner_op(params)
        return result

    async def runners(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.sup.backend is None:
            return {"backend": "local"}
        result: dict[str, Any] = await self.sup.backend.describe()
        return result

    async def stats(self, params: dict[str, Any]) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for row in self.store.conn.execute("SELECT status, COUNT(*) FROM workflows GROUP BY status"):
            counts[row[0]] = row[1]
        return {"by_status": counts, "running": sorted(self.sup.running_ids()), "pool_size": self.sup.pool_size}
