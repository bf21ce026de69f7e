"""The subject tools: the board, through ``subject/call`` as ``animus subject`` uses it.

Each is one control call routed to the subject plugin that serves the kind
(the default board for ``task``, the requirements backend, Markdown files,
Linear …), with the CLI's ``--json`` schema names. ``id`` may be left out
for the run's own task (``ANIMUS_TASK_ID``); the kind follows the id's prefix
(``requirement:REQ-1``) unless given.
"""

from __future__ import annotations

from typing import Any

from animus.errors import InvalidInput
from animus.mcp.arguments import integer, mapping, obj, string, strings
from animus.mcp.calls import Call, Tool
from animus.mcp.comments import MAX_BODY, comment_fields, comments_of
from animus.mcp.run_env import kind_of

__all__ = ["SUBJECT_TOOLS"]

KIND = string("Subject kind: task (the default), requirement, or any kind a subject plugin serves, e.g. linear.issue.")
ID = string("Subject id, e.g. task:TASK-001 (or TASK-001 with kind task). Leave out for the task this run works on.")
STATUS_TEXT = ("backlog, ready, in-progress, blocked, done, cancelled; requirements also take their own "
               "statuses (draft, planned, po-review, …)")
PRIORITY = string("Priority.", ("p0", "p1", "p2", "p3"))


def _subject_ref(call: Call) -> tuple[str, str]:
    subject_id = call.run.task(call.tool, call.opt("id"))
    return kind_of(subject_id, call.opt("kind")), subject_id


async def subject_list(call: Call) -> dict[str, Any]:
    kind = call.opt("kind") or "task"
    params: dict[str, Any] = {k: call.args[k] for k in ("status", "limit", "labels") if k in call.args}
    items = await call.link.subject(kind, "list", params)
    return {"schema": "animus.subject.list.v1", "kind": kind, "subjects": items}


async def subject_get(call: Call) -> dict[str, Any]:
    kind, subject_id = _subject_ref(call)
    subject = await call.link.subject(kind, "get", {"id": subject_id})
    return {"schema": "animus.subject.get.v1", "subject": subject, "comments": comments_of(subject)}


async def subject_create(call: Call) -> dict[str, Any]:
    kind = call.opt("kind") or "task"
    params = {k: v for k, v in call.args.items() if k != "kind"}
    subject = await call.link.subject(kind, "create", params)
    return {"schema": "animus.subject.create.v1", "subject": subject}


async def subject_update(call: Call) -> dict[str, Any]:
    kind, subject_id = _subject_ref(call)
    if not call.args["fields"]:
        raise InvalidInput(f"{call.tool}: 'fields' is empty: name at least one field to change")
    subject = await call.link.subject(kind, "update", {"id": subject_id, "fields": call.args["fields"]})
    return {"schema": "animus.subject.update.v1", "subject": subject}


async def subject_status(call: Call) -> dict[str, Any]:
    kind, subject_id = _subject_ref(call)
    params = {"id": subject_id, "status": call.args["status"], "reason": call.opt("reason")}
    subject = await call.link.subject(kind, "status", params)
    return {"schema": "animus.subject.status.v1", "subject": subject}


async def subject_next(call: Call) -> dict[str, Any]:
    subject = await call.link.subject(call.opt("kind") or "task", "next", {})
    return {"schema": "animus.subject.next.v1", "subject": subject}


def _author(call: Call) -> str:
    if call.opt("author"):
        return str(call.args["author"])
    return f"workflow {call.run.workflow_id}" if call.run.workflow_id else "mcp"


async def subject_comment(call: Call) -> dict[str, Any]:
    kind, subject_id = _subject_ref(call)
    body = str(call.args["body"]).strip()
    if len(body) > MAX_BODY:
        raise InvalidInput(f"{call.tool}: 'body' is {len(body)} characters: at most {MAX_BODY}",
                           fix="put long output in a file in the working directory and point to it")
    key, fields = comment_fields(body, _author(call))
    subject = await call.link.subject(kind, "update", {"id": subject_id, "fields": fields})
    thread = comments_of(subject)
    added = next((c for c in thread if c["id"] == key), None)
    return {"schema": "animus.subject.comment.v1", "subject_id": subject["id"], "comment": added,
            "comments": thread}


SUBJECT_TOOLS = (
    Tool("subject_list", "List subjects (tasks by default), oldest first, optionally by status or labels.",
         obj({"kind": KIND, "status": string(f"Only this status: {STATUS_TEXT}."),
              "limit": integer("At most this many.", 1, 1000), "labels": strings("Only subjects with all these labels.")}),
         subject_list),
    Tool("subject_get", "One subject with its description, status, labels and comments. "
         "Without id: the task this run works on.", obj({"kind": KIND, "id": ID}), subject_get),
    Tool("subject_create", "Create a subject, e.g. a follow-up task. Returns it with its new id.",
         obj({"kind": KIND, "title": string("Title.", min_length=1), "description": string("Body text (Markdown)."),
              "status": string(f"Initial status (default backlog): {STATUS_TEXT}."), "priority": PRIORITY,
              "labels": strings("Labels."), "parent": string("Parent subject id, e.g. your own task's id."),
              "assignee": string("Assignee.")}, required=("title",)),
         subject_create),
    Tool("subject_update", "Change fields of a subject (title, description, priority, labels, assignee, "
         "parent, url, custom, status, blocked_reason). Without id: the task this run works on.",
         obj({"kind": KIND, "id": ID, "fields": mapping('Fields to change, e.g. {"title": "…", "labels": ["x"]}.')},
             required=("fields",)),
         subject_update),
    Tool("subject_status", f"Set a subject's status ({STATUS_TEXT}); blocked takes a reason. "
         "Without id: the task this run works on.",
         obj({"kind": KIND, "id": ID, "status": string("New status.", min_length=1),
              "reason": string("Why (kept as blocked_reason when blocked).")}, required=("status",)),
         subject_status),
    Tool("subject_next", "The highest-priority ready subject of a kind, or null.", obj({"kind": KIND}), subject_next),
    Tool("subject_comment", "Add a comment (a note) to a subject; returns the whole comment thread. "
         "Without id: the task this run works on.",
         obj({"kind": KIND, "id": ID, "body": string("The comment text.", min_length=1),
              "author": string("Who writes it (default: the workflow run, or mcp).")}, required=("body",)),
         subject_comment),
)
