"""The workflow tools: runs, their phases and usage, their events; and the daemon's status.

``workflow/list|get|run`` as ``animus workflow`` calls them; a run's events
come from ``daemon/logs`` (the daemon reads ``logs/events.jsonl`` with the
reader ``animus logs tail`` uses) filtered on the workflow id. Without an id,
``workflow_get`` and ``workflow_events`` mean the run this server was started
for (``ANIMUS_WORKFLOW_ID``), and ``workflow_run`` runs on its task.
"""

from __future__ import annotations

from typing import Any

from animus.mcp.arguments import integer, obj, string
from animus.mcp.calls import Call, Tool
from animus.workflow.store import STATUSES

__all__ = ["WORKFLOW_TOOLS"]

LEVELS = ("debug", "info", "warn", "error")
WF_ID = string("Workflow id. Leave out for the run this server was started for.")


async def workflow_list(call: Call) -> dict[str, Any]:
    params = {"status": call.opt("status"), "limit": call.opt("limit") or 50, "task_id": call.opt("task_id")}
    rows = await call.link.call("workflow/list", params)
    return {"schema": "animus.workflow.list.v1", "workflows": rows}


async def workflow_get(call: Call) -> dict[str, Any]:
    wf = await call.link.call("workflow/get", {"id": call.run.workflow(call.tool, call.opt("id"))})
    return {"schema": "animus.workflow.get.v1", "workflow": wf}


async def workflow_run(call: Call) -> dict[str, Any]:
    title = call.opt("title")
    task_id = call.opt("task_id") or (None if title else call.run.task(call.tool, None, "task_id"))
    result = await call.link.call("workflow/run", {"task_id": task_id, "workflow_ref": call.opt("workflow_ref"),
                                                   "title": title, "trigger_source": "mcp"}, timeout=30)
    return {"schema": "animus.workflow.run.v1", **result}


async def workflow_events(call: Call) -> dict[str, Any]:
    wf_id = call.run.workflow(call.tool, call.opt("id"))
    await call.link.call("workflow/get", {"id": wf_id})  # an unknown id is not_found, not an empty list
    params = {"workflow_id": wf_id, "limit": call.opt("limit") or 50, "level": call.opt("level"),
              "cat": call.opt("cat")}
    entries = await call.link.call("daemon/logs", params)
    return {"schema": "animus.workflow.events.v1", "workflow_id": wf_id, "events": entries}


async def daemon_status(call: Call) -> dict[str, Any]:
    result: dict[str, Any] = await call.link.call("daemon/status")
    return result


WORKFLOW_TOOLS = (
    Tool("workflow_list", "Workflow runs, newest first, with status, current phase and usage.",
         obj({"status": string("Only this status.", STATUSES), "limit": integer("At most this many (default 50).", 1, 1000),
              "task_id": string("Only runs on this task, e.g. TASK-001.")}),
         workflow_list),
    Tool("workflow_get", "One workflow run: status, blocked or failure reason, every phase with its attempts, "
         "verdicts, output tail and token/cost usage, and the task's total usage.", obj({"id": WF_ID}), workflow_get),
    Tool("workflow_run", "Start a workflow run on a task (queued beyond the concurrency limit). Without task_id "
         "or title: on the task this run works on.",
         obj({"task_id": string("Task to run it on, e.g. TASK-001 or task:TASK-001."),
              "workflow_ref": string("Workflow id (default: the project's default workflow)."),
              "title": string("Run on an ad-hoc subject with this title instead of a task.")}),
         workflow_run),
    Tool("workflow_events", "The most recent events of a workflow run (phase starts and ends, agent tool calls, "
         "output), oldest first.",
         obj({"id": WF_ID, "limit": integer("At most this many (default 50).", 1, 1000),
              "level": string("Minimum level.", LEVELS), "cat": string("Only categories starting with this.")}),
         workflow_events),
    Tool("daemon_status", "The daemon: pid, project root, uptime, and its supervision tree.", obj({}), daemon_status),
)
