"""Subject routes: the task board, through whichever backend serves the kind (``subject/call``).

    GET   /api/subjects/{kind}                list (``status``, ``limit``)
    POST  /api/subjects/{kind}                create {title, description?, status?, priority?, labels?}
    GET   /api/subjects/{kind}/{id}           get
    PATCH /api/subjects/{kind}/{id}           update: the body is the fields to change ({priority: p1})
    POST  /api/subjects/{kind}/{id}/status    status {status, reason?}

Each is what ``animus subject list|create|get|update|status`` calls, so a
task made from the web UI is the same record the CLI and the scheduler see;
the daemon's ``subject_*`` event for a change says it came over HTTP
(``origin``), and every open page refreshes its board on it.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from animus.errors import InvalidInput
from animus.plugins.transports.http.routing import RouteContext
from animus.plugins.transports.respond import json_body, query_int, query_text

__all__ = ["routes"]

_CREATE = ("title", "description", "status", "priority", "labels", "assignee", "parent", "custom")


def routes(ctx: RouteContext) -> list[Route]:
    async def subject(kind: str, verb: str, params: dict[str, Any], status: int = 200) -> Response:
        return await ctx.rpc("subject/call", {"kind": kind, "verb": verb, "params": params, "origin": "http"},
                             status=status)

    async def subjects(request: Request) -> Response:
        params: dict[str, Any] = {}
        if query_text(request, "status"):
            params["status"] = query_text(request, "status")
        limit = query_int(request, "limit", 1, 10_000, None)
        if limit is not None:
            params["limit"] = limit
        return await subject(request.path_params["kind"], "list", params)

    async def subject_create(request: Request) -> Response:
        body = await json_body(request)
        if not isinstance(body.get("title"), str) or not body["title"].strip():
            raise InvalidInput("body needs title (a non-empty string)")
        unknown = sorted(set(body) - set(_CREATE))
        if unknown:
            raise InvalidInput(f"unknown field(s) {', '.join(unknown)}: expected {', '.join(_CREATE)}")
        return await subject(request.path_params["kind"], "create", body, status=201)

    async def subject_get(request: Request) -> Response:
        return await subject(request.path_params["kind"], "get", {"id": request.path_params["id"]})

    async def subject_update(request: Request) -> Response:
        fields = await json_body(request)
        if not fields:
            raise InvalidInput("body needs the fields to change, e.g. {\"priority\": \"p1\"}")
        return await subject(request.path_params["kind"], "update", {"id": request.path_params["id"],
                                                                     "fields": fields})

    async def subject_status(request: Request) -> Response:
        body = await json_body(request)
        if not isinstance(body.get("status"), str) or not body["status"]:
            raise InvalidInput("body needs status (a string)")
        params = {"id": request.path_params["id"], "status": body["status"]}
        if isinstance(body.get("reason"), str):
            params["reason"] = body["reason"]
        return await subject(request.path_params["kind"], "status", params)

    return [
        ctx.api("/api/subjects/{kind}", subjects),
        ctx.api("/api/subjects/{kind}", subject_create, "POST"),
        ctx.api("/api/subjects/{kind}/{id}", subject_get),
        ctx.api("/api/subjects/{kind}/{id}", subject_update, "PATCH"),
        ctx.api("/api/subjects/{kind}/{id}/status", subject_status, "POST"),
    ]
