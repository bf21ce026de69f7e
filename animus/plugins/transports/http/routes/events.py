"""``GET /api/events``: bus events as server-sent events, filtered like ``animus daemon stream``.

``workflow`` (or ``workflow_id``), ``run``, ``cat``, ``level``; ``tail=N``
replays the last N matching events from the log first (``sse``), so a page
opened late still shows what happened.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from animus.bus.subscriber import EventFilter
from animus.errors import InvalidInput, Unavailable
from animus.plugins.transports.http.routing import RouteContext
from animus.plugins.transports.respond import query_int, query_text
from animus.plugins.transports.sse import event_stream

__all__ = ["routes"]


def routes(ctx: RouteContext) -> list[Route]:
    async def events(request: Request) -> Response:
        try:
            keep = EventFilter(workflow=query_text(request, "workflow") or query_text(request, "workflow_id"),
                               run=query_text(request, "run"), cat=query_text(request, "cat"),
                               level=query_text(request, "level"))
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        tail = query_int(request, "tail", 0, 10_000, 0) or 0
        if not await ctx.link.wait_bus(10):
            raise Unavailable("the event stream is not live yet", fix="retry in a moment; animus daemon health")
        return StreamingResponse(event_stream(ctx.link, keep, tail), media_type="text/event-stream",
                                 headers={"cache-control": "no-store", "x-accel-buffering": "no"})

    return [ctx.api("/api/events", events)]
