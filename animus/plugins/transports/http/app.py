"""The REST/SSE application of ``transport-http`` (Starlette).

Every ``/api`` route is one control method, shaped for HTTP; the contract is
``openapi.yaml`` (served at ``/openapi.json``), and the routes live in
``routes/``, one module per area:

    routes.daemon      /api/status, /api/health, /api/metrics, /metrics, /api/logs, /api/charts, /api/plugins[/{name}/call]
    routes.workflows   /api/workflows[/stats|/{id}[/resume|cancel|approve|reject]], /api/triggers[/{id}/fire]
    routes.diff        /api/workflows/{id}/diff
    routes.subjects    /api/subjects/{kind}[/{id}[/status]]
    routes.events      /api/events (server-sent events from the bus)
    routes.web         /, /ui/{path} (the web UI), /openapi.json, /webhooks/{trigger_id}

Errors keep their CLI code and map to HTTP statuses (invalid_input 400,
not_found 404, conflict 409, unavailable 503). Everything but
``/webhooks/`` needs the access token (``auth``). Request bodies are
limited while they stream (``limits``: ``max_body_bytes``, and
``webhook_max_bytes`` for webhooks, 1 MiB each).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from animus.errors import NotFound
from animus.plugins.transports.auth import TokenAuth
from animus.plugins.transports.http.routes import daemon, diff, events, subjects, web, workflows
from animus.plugins.transports.http.routing import RouteContext, query_rules
from animus.plugins.transports.limits import DEFAULT_MAX_BYTES, BodyLimit
from animus.plugins.transports.link import DaemonLink
from animus.plugins.transports.respond import Json, error_response

__all__ = ["create_app", "OPENAPI_FILE"]

OPENAPI_FILE = Path(__file__).with_name("openapi.yaml")
# in the order Starlette tries them: /api/workflows/stats before /api/workflows/{id}
ROUTE_MODULES = (daemon, workflows, diff, subjects, events, web)


def _load_openapi() -> dict[str, Any]:
    """The contract, parsed once per process: with libyaml where present (the pure-Python
    parser takes ~190 ms on it), at import, so a zygote that preloads this module parses it
    once for every worker it forks."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return dict(yaml.load(OPENAPI_FILE.read_text(), Loader=loader))


_OPENAPI = _load_openapi()


def create_app(link: DaemonLink, token: str, config: dict[str, Any]) -> Any:
    openapi = copy.deepcopy(_OPENAPI)  # the app's own: nothing it does can reach the next one
    ctx = RouteContext(link, config, openapi, query_rules(openapi))
    routes = [route for module in ROUTE_MODULES for route in module.routes(ctx)]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await link.start()
        try:
            yield
        finally:
            await link.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_exception_handler(404, _not_found)
    app.add_exception_handler(405, _not_allowed)
    limit = int(config.get("max_body_bytes") or DEFAULT_MAX_BYTES)
    webhook_max = int(config.get("webhook_max_bytes") or 1 << 20)
    return BodyLimit(TokenAuth(app, token, exempt=("/webhooks/",)), limit, {"/webhooks/": webhook_max})


async def _not_found(request: Request, exc: Exception) -> Response:
    return error_response(NotFound(f"no route {request.method} {request.url.path}", fix="see /openapi.json"))


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return Json({"error": {"code": "invalid_input", "message": f"{request.method} is not allowed here"}},
                status_code=405)
