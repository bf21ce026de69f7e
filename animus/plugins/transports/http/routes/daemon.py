"""Daemon and plugin routes: status, health, metrics (JSON and Prometheus text), logs, plugins.

    GET  /api/status, /api/health, /api/metrics     daemon/status|health|metrics
    GET  /metrics                                   daemon/metrics as Prometheus text
    GET  /api/logs                                  daemon/logs
    GET  /api/charts                                the web UI's charts, counted from the log (``charts``)
    GET  /api/plugins                               plugin/list
    POST /api/plugins/{name}/call                   plugin/call
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from animus.bus.metrics import render_prometheus
from animus.bus.subscriber import EventFilter
from animus.errors import InvalidInput
from animus.plugins.transports.charts import chart_data
from animus.plugins.transports.http.routing import RouteContext
from animus.plugins.transports.respond import Json, json_body, query_int, query_text

__all__ = ["routes"]


def routes(ctx: RouteContext) -> list[Route]:
    async def status(request: Request) -> Response:
        return await ctx.rpc("daemon/status")

    async def health(request: Request) -> Response:
        return await ctx.rpc("daemon/health")

    async def metrics_json(request: Request) -> Response:
        return await ctx.rpc("daemon/metrics")

    async def metrics_text(request: Request) -> Response:
        snapshot = await ctx.link.call("daemon/metrics", {})
        return PlainTextResponse(render_prometheus(snapshot), media_type="text/plain; version=0.0.4")

    async def logs(request: Request) -> Response:
        level = query_text(request, "level")
        try:
            EventFilter(level=level)  # the same check the stream applies
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        params = {"limit": query_int(request, "limit", 1, 10_000, 100), "level": level,
                  "cat": query_text(request, "cat"), "workflow_id": query_text(request, "workflow_id"),
                  "search": query_text(request, "search")}
        return await ctx.rpc("daemon/logs", params)

    async def charts(request: Request) -> Response:
        return Json(await chart_data(ctx.link, query_int(request, "hours", 1, 168, 24) or 24))

    async def plugins(request: Request) -> Response:
        return await ctx.rpc("plugin/list")

    async def plugin_call(request: Request) -> Response:
        body = await json_body(request)
        method = body.get("method")
        params = body.get("params", {})
        timeout = body.get("timeout", 30)
        if not isinstance(method, str) or not method:
            raise InvalidInput("body needs method (a string)")
        if not isinstance(params, dict):
            raise InvalidInput("params must be a JSON object")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 600:
            raise InvalidInput("timeout must be a number of seconds between 0 and 600")
        return await ctx.rpc("plugin/call", {"name": request.path_params["name"], "method": method,
                                             "params": params, "timeout": float(timeout)}, timeout=timeout + 10)

    return [
        ctx.api("/api/status", status),
        ctx.api("/api/health", health),
        ctx.api("/api/metrics", metrics_json),
        ctx.api("/api/logs", logs),
        ctx.api("/api/charts", charts),
        ctx.api("/api/plugins", plugins),
        ctx.api("/api/plugins/{name}/call", plugin_call, "POST"),
        ctx.api("/metrics", metrics_text),
    ]
