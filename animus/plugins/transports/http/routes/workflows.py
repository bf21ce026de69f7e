"""Workflow routes: the same control methods ``animus workflow …`` calls.

    GET  /api/workflows, POST /api/workflows        workflow/list, workflow/run
    GET  /api/workflows/stats                       workflow/stats
    GET  /api/workflows/{id}                        workflow/get
    POST /api/workflows/{id}/{resume|cancel|approve|reject}
    GET  /api/triggers, POST /api/triggers/{id}/fire    workflow/triggers|fire

Resume takes ``{force}`` (the runbook's ``--force``: a run blocked by the
idempotency rule needs it); approve and reject take ``{phase, note}``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from animus.errors import InvalidInput
from animus.plugins.transports.http.routing import Handler, RouteContext
from animus.plugins.transports.respond import json_body, query_int, query_text

__all__ = ["routes", "ACTIONS"]

ACTIONS = ("resume", "cancel", "approve", "reject")


def routes(ctx: RouteContext) -> list[Route]:
    async def workflows(request: Request) -> Response:
        return await ctx.rpc("workflow/list", {"status": query_text(request, "status"),
                                               "limit": query_int(request, "limit", 1, 1000, 50),
                                               "task_id": query_text(request, "task_id")})

    async def workflow_run(request: Request) -> Response:
        body = await json_body(request)
        params = {k: body[k] for k in ("task_id", "title", "workflow_ref") if isinstance(body.get(k), str) and body[k]}
        if "task_id" not in params and "title" not in params:
            raise InvalidInput("body needs task_id or title")
        return await ctx.rpc("workflow/run", params, status=201)

    async def workflow_stats(request: Request) -> Response:
        return await ctx.rpc("workflow/stats")

    async def workflow_get(request: Request) -> Response:
        return await ctx.rpc("workflow/get", {"id": request.path_params["id"]})

    def workflow_action(verb: str) -> Handler:
        async def act(request: Request) -> Response:
            body = await json_body(request)
            params: dict[str, Any] = {"id": request.path_params["id"]}
            if verb == "resume":
                params["force"] = body.get("force") is True
            if verb in ("approve", "reject"):
                for key in ("phase", "note"):
                    if isinstance(body.get(key), str) and body[key]:
                        params[key] = body[key]
            return await ctx.rpc(f"workflow/{verb}", params)

        return act

    async def triggers(request: Request) -> Response:
        return await ctx.rpc("workflow/triggers")

    async def trigger_fire(request: Request) -> Response:
        body = await json_body(request)
        payload = body.get("payload", {})
        if not isinstance(payload, dict):
            raise InvalidInput("payload must be a JSON object")
        return await ctx.rpc("workflow/fire", {"trigger_id": request.path_params["id"], "payload": payload,
                                               "source": "http"})

    return [
        ctx.api("/api/workflows", workflows),
        ctx.api("/api/workflows", workflow_run, "POST"),
        ctx.api("/api/workflows/stats", workflow_stats),  # before /{id}
        ctx.api("/api/workflows/{id}", workflow_get),
        *(ctx.api(f"/api/workflows/{{id}}/{verb}", workflow_action(verb), "POST") for verb in ACTIONS),
        ctx.api("/api/triggers", triggers),
        ctx.api("/api/triggers/{id}/fire", trigger_fire, "POST"),
    ]
