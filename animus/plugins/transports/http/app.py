"""The REST/SSE application of ``transport-http`` (Starlette).

Every ``/api`` route is one control method, shaped for HTTP (the contract is
``openapi.yaml``, served at ``/openapi.json``):

    GET  /api/status, /api/health, /api/metrics     daemon/status|health|metrics
    GET  /api/logs                                  daemon/logs
    GET  /api/plugins                               plugin/list
    POST /api/plugins/{name}/call                   plugin/call
    GET  /api/workflows, POST /api/workflows        workflow/list, workflow/run
    GET  /api/workflows/stats                       workflow/stats
    GET  /api/workflows/{id}                        workflow/get
    POST /api/workflows/{id}/{resume|cancel|approve|reject}
    GET  /api/triggers, POST /api/triggers/{id}/fire    workflow/triggers|fire
    GET  /api/subjects/{kind}, POST /api/subjects/{kind}            subject/call list|create
    GET  /api/subjects/{kind}/{id}, POST …/{id}/status              subject/call get|status
    GET  /api/events                                server-sent events from the bus
    GET  /metrics                                   Prometheus text
    POST /webhooks/{trigger_id}                     to the webhook trigger plugin
    GET  /, /ui/{path}                              the web UI (from the web-ui plugin)

Errors keep their CLI code and map to HTTP statuses (invalid_input 400,
not_found 404, conflict 409, unavailable 503). Everything but
``/webhooks/`` needs the access token (``auth``). Request bodies are
limited while they stream (``limits``: ``max_body_bytes``, and
``webhook_max_bytes`` for webhooks, 1 MiB each).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from animus.bus.metrics import render_prometheus
from animus.errors import AnimusError, InvalidInput, NotFound, Unavailable
from animus.plugins.transports.http.ui import UI_HEADERS, UiAssets
from animus.plugins.transports.auth import TokenAuth
from animus.bus.subscriber import EventFilter
from animus.plugins.transports.limits import DEFAULT_MAX_BYTES, BodyLimit
from animus.plugins.transports.link import DaemonLink
from animus.plugins.transports.respond import Json, error_response, json_body, query_int, query_text
from animus.plugins.transports.sse import event_stream

__all__ = ["create_app", "OPENAPI_FILE"]

OPENAPI_FILE = Path(__file__).with_name("openapi.yaml")
Handler = Callable[[Request], Awaitable[Response]]
_WEBHOOK_HEADERS = ("content-type", "x-hub-signature-256", "x-hub-signature", "x-github-event",
                    "x-github-delivery", "user-agent", "webhook-id", "webhook-timestamp", "webhook-signature",
                    "webhook-event")


def _guard(fn: Handler, query: dict[str, dict[str, Any]] | None = None) -> Handler:
    """Errors become JSON with their HTTP status; query parameters are checked against the document."""

    async def wrapped(request: Request) -> Response:
        try:
            if query is not None:
                _check_query(request, query)
            return await fn(request)
        except AnimusError as exc:
            return error_response(exc)

    return wrapped


def _check_query(request: Request, rules: dict[str, dict[str, Any]]) -> None:
    """Unknown names (a typo would silently unfilter), values outside an enum, non-integers: 400."""
    for name, value in request.query_params.multi_items():
        rule = rules.get(name)
        if rule is None:
            known = ", ".join(sorted(rules)) or "none"
            raise InvalidInput(f"unknown query parameter {name!r} (known here: {known})")
        if "enum" in rule and value not in rule["enum"]:
            raise InvalidInput(f"query parameter {name} must be one of {', '.join(rule['enum'])}, got {value!r}")
        if rule.get("type") == "integer":
            query_int(request, name, int(rule.get("minimum", -(2**63))), int(rule.get("maximum", 2**63)), None)


def _query_rules(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, dict[str, Any]]]:
    """Each operation's query parameters and their schemas, from the OpenAPI document (one source of truth)."""
    schemas = doc.get("components", {}).get("schemas", {})

    def resolve(schema: dict[str, Any]) -> dict[str, Any]:
        ref = schema.get("$ref", "")
        return dict(schemas[ref.rsplit("/", 1)[-1]]) if ref.startswith("#/components/schemas/") else schema

    out = {}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            out[(path, method.upper())] = {p["name"]: resolve(p.get("schema", {}))
                                           for p in op.get("parameters", []) if p.get("in") == "query"}
    return out


def create_app(link: DaemonLink, token: str, config: dict[str, Any]) -> Any:
    ui = UiAssets(link, str(config.get("ui_plugin") or "web-ui"))
    webhook_plugin = str(config.get("webhook_plugin") or "webhook")
    webhook_max = int(config.get("webhook_max_bytes") or 1 << 20)
    openapi = yaml.safe_load(OPENAPI_FILE.read_text())

    async def rpc(method: str, params: dict[str, Any] | None = None, status: int = 200,
                  timeout: float = 30.0) -> Response:
        return Json(await link.call(method, params or {}, timeout=timeout), status_code=status)

    # -- daemon ------------------------------------------------------------
    async def status(request: Request) -> Response:
        return await rpc("daemon/status")

    async def health(request: Request) -> Response:
        return await rpc("daemon/health")

    async def metrics_json(request: Request) -> Response:
        return await rpc("daemon/metrics")

    async def metrics_text(request: Request) -> Response:
        snapshot = await link.call("daemon/metrics", {})
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
        return await rpc("daemon/logs", params)

    # -- plugins -----------------------------------------------------------
    async def plugins(request: Request) -> Response:
        return await rpc("plugin/list")

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
        return await rpc("plugin/call", {"name": request.path_params["name"], "method": method,
                                         "params": params, "timeout": float(timeout)}, timeout=timeout + 10)

    # -- workflows ---------------------------------------------------------
    async def workflows(request: Request) -> Response:
        return await rpc("workflow/list", {"status": query_text(request, "status"),
                                           "limit": query_int(request, "limit", 1, 1000, 50),
                                           "task_id": query_text(request, "task_id")})

    async def workflow_run(request: Request) -> Response:
        body = await json_body(request)
        params = {k: body[k] for k in ("task_id", "title", "workflow_ref") if isinstance(body.get(k), str) and body[k]}
        if "task_id" not in params and "title" not in params:
            raise InvalidInput("body needs task_id or title")
        return await rpc("workflow/run", params, status=201)

    async def workflow_stats(request: Request) -> Response:
        return await rpc("workflow/stats")

    async def workflow_get(request: Request) -> Response:
        return await rpc("workflow/get", {"id": request.path_params["id"]})

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
            return await rpc(f"workflow/{verb}", params)

        return act

    async def triggers(request: Request) -> Response:
        return await rpc("workflow/triggers")

    async def trigger_fire(request: Request) -> Response:
        body = await json_body(request)
        payload = body.get("payload", {})
        if not isinstance(payload, dict):
            raise InvalidInput("payload must be a JSON object")
        return await rpc("workflow/fire", {"trigger_id": request.path_params["id"], "payload": payload,
                                           "source": "http"})

    # -- subjects ----------------------------------------------------------
    async def subject(kind: str, verb: str, params: dict[str, Any], status: int = 200) -> Response:
        return await rpc("subject/call", {"kind": kind, "verb": verb, "params": params}, status=status)

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
        return await subject(request.path_params["kind"], "create", body, status=201)

    async def subject_get(request: Request) -> Response:
        return await subject(request.path_params["kind"], "get", {"id": request.path_params["id"]})

    async def subject_status(request: Request) -> Response:
        body = await json_body(request)
        if not isinstance(body.get("status"), str) or not body["status"]:
            raise InvalidInput("body needs status (a string)")
        params = {"id": request.path_params["id"], "status": body["status"]}
        if isinstance(body.get("reason"), str):
            params["reason"] = body["reason"]
        return await subject(request.path_params["kind"], "status", params)

    # -- events ------------------------------------------------------------
    async def events(request: Request) -> Response:
        try:
            keep = EventFilter(workflow=query_text(request, "workflow") or query_text(request, "workflow_id"),
                               run=query_text(request, "run"), cat=query_text(request, "cat"),
                               level=query_text(request, "level"))
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        tail = query_int(request, "tail", 0, 10_000, 0) or 0
        if not await link.wait_bus(10):
            raise Unavailable("the event stream is not live yet", fix="retry in a moment; animus daemon health")
        return StreamingResponse(event_stream(link, keep, tail), media_type="text/event-stream",
                                 headers={"cache-control": "no-store", "x-accel-buffering": "no"})

    # -- webhooks ----------------------------------------------------------
    async def webhook(request: Request) -> Response:
        body = await request.body()  # BodyLimit stops the read past webhook_max_bytes: 413
        headers = {k: request.headers[k] for k in _WEBHOOK_HEADERS if k in request.headers}
        try:
            reply = await link.call("plugin/call", {"name": webhook_plugin, "method": "webhook/deliver", "params": {
                "trigger_id": request.path_params["trigger_id"], "headers": headers, "body": body}, "timeout": 10},
                timeout=20)
        except NotFound:
            raise Unavailable(f"the {webhook_plugin} trigger plugin is not installed",
                              fix="animus plugin install-defaults --include-triggers, then restart the daemon") from None
        if "error" in reply:
            err = reply["error"] or {}
            code = (err.get("data") or {}).get("error_code") or "invalid_input"
            status = {"unauthorized": 401, "not_found": 404, "invalid_input": 400}.get(code, 503)
            return Json({"error": {"code": code, "message": str(err.get("message", "refused"))}}, status_code=status)
        result = reply.get("result") or {}
        return Json(result, status_code=200 if result.get("duplicate") else 202)  # a replay starts nothing

    # -- the UI and the contract -------------------------------------------
    async def index(request: Request) -> Response:
        return await _asset(request, await ui.entry())

    async def asset(request: Request) -> Response:
        return await _asset(request, request.path_params["path"])

    async def _asset(request: Request, path: str) -> Response:
        found = await ui.get(path)
        etag = f'"{found.sha256[:32]}"'
        headers = {"etag": etag, "cache-control": "no-cache", **UI_HEADERS}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(found.body, media_type=found.content_type, headers=headers)

    async def openapi_doc(request: Request) -> Response:
        return Json(openapi)

    async def favicon(request: Request) -> Response:
        return RedirectResponse("/ui/favicon.svg", status_code=308)

    allowed = _query_rules(openapi)

    def api(path: str, fn: Handler, method: str = "GET") -> Route:
        return Route(path, _guard(fn, allowed[(path, method)]), methods=[method])

    routes = [
        api("/api/status", status),
        api("/api/health", health),
        api("/api/metrics", metrics_json),
        api("/api/logs", logs),
        api("/api/plugins", plugins),
        api("/api/plugins/{name}/call", plugin_call, "POST"),
        api("/api/workflows", workflows),
        api("/api/workflows", workflow_run, "POST"),
        api("/api/workflows/stats", workflow_stats),
        api("/api/workflows/{id}", workflow_get),
        *(api(f"/api/workflows/{{id}}/{verb}", workflow_action(verb), "POST")
          for verb in ("resume", "cancel", "approve", "reject")),
        api("/api/triggers", triggers),
        api("/api/triggers/{id}/fire", trigger_fire, "POST"),
        api("/api/subjects/{kind}", subjects),
        api("/api/subjects/{kind}", subject_create, "POST"),
        api("/api/subjects/{kind}/{id}", subject_get),
        api("/api/subjects/{kind}/{id}/status", subject_status, "POST"),
        api("/api/events", events),
        api("/metrics", metrics_text),
        api("/webhooks/{trigger_id}", webhook, "POST"),
        Route("/openapi.json", openapi_doc),
        Route("/favicon.ico", favicon),
        Route("/", _guard(index)),
        Route("/ui/{path:path}", _guard(asset)),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await link.start()
        try:
            yield
        finally:
            await link.close()

    app = Starlette(routes=routes, lifespan=lifespan)

    async def not_found(request: Request, exc: Exception) -> Response:
        return error_response(NotFound(f"no route {request.method} {request.url.path}", fix="see /openapi.json"))

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return Json({"error": {"code": "invalid_input", "message": f"{request.method} is not allowed here"}},
                    status_code=405)

    app.add_exception_handler(404, not_found)
    app.add_exception_handler(405, not_allowed)
    limit = int(config.get("max_body_bytes") or DEFAULT_MAX_BYTES)
    return BodyLimit(TokenAuth(app, token, exempt=("/webhooks/",)), limit, {"/webhooks/": webhook_max})
