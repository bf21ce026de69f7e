"""What every route module of transport-http gets: the daemon link, the contract, a guard.

A route module (``routes/<area>.py``) is a function ``routes(ctx) -> [Route]``;
``create_app`` joins them. ``RouteContext.api`` wraps a handler so that an
``AnimusError`` becomes ``{"error": …}`` with its HTTP status, and checks the
request's query parameters against the operation in ``openapi.yaml`` (one
source of truth): an unknown name is a 400 (a typo would silently unfilter),
as is a value outside an enum or a non-integer where an integer is due.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from animus.errors import AnimusError, InvalidInput
from animus.plugins.transports.link import DaemonLink
from animus.plugins.transports.respond import Json, error_response, query_int

__all__ = ["Handler", "QueryRules", "RouteContext", "guard", "query_rules"]

Handler = Callable[[Request], Awaitable[Response]]
QueryRules = dict[str, dict[str, Any]]


def guard(fn: Handler, query: QueryRules | None = None) -> Handler:
    """Errors become JSON with their HTTP status; query parameters are checked against the document."""

    async def wrapped(request: Request) -> Response:
        try:
            if query is not None:
                _check_query(request, query)
            return await fn(request)
        except AnimusError as exc:
            return error_response(exc)

    return wrapped


def _check_query(request: Request, rules: QueryRules) -> None:
    for name, value in request.query_params.multi_items():
        rule = rules.get(name)
        if rule is None:
            known = ", ".join(sorted(rules)) or "none"
            raise InvalidInput(f"unknown query parameter {name!r} (known here: {known})")
        if "enum" in rule and value not in rule["enum"]:
            raise InvalidInput(f"query parameter {name} must be one of {', '.join(rule['enum'])}, got {value!r}")
        if rule.get("type") == "integer":
            query_int(request, name, int(rule.get("minimum", -(2**63))), int(rule.get("maximum", 2**63)), None)


def query_rules(doc: dict[str, Any]) -> dict[tuple[str, str], QueryRules]:
    """Each operation's query parameters and their schemas, from the OpenAPI document."""
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


@dataclass(frozen=True)
class RouteContext:
    link: DaemonLink
    config: dict[str, Any]
    openapi: dict[str, Any]
    rules: dict[tuple[str, str], QueryRules]

    def api(self, path: str, fn: Handler, method: str = "GET") -> Route:
        """A documented route: it must be in openapi.yaml (a KeyError here names the missing one)."""
        return Route(path, guard(fn, self.rules[(path, method)]), methods=[method])

    async def rpc(self, method: str, params: dict[str, Any] | None = None, status: int = 200,
                  timeout: float = 30.0) -> Response:
        """One control method, its reply as the JSON body."""
        return Json(await self.link.call(method, params or {}, timeout=timeout), status_code=status)
