"""Resolvers: each field of ``schema.graphql`` is one control method or the bus.

Errors from the daemon become GraphQL errors carrying the CLI's code in
``extensions.code`` (and ``extensions.fix``); a query for one workflow or
subject that does not exist resolves to null instead. Field names are
converted from the daemon's snake_case by Ariadne (``convert_names_case``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from ariadne import (
    MutationType,
    ObjectType,
    QueryType,
    ScalarType,
    SubscriptionType,
    make_executable_schema,
)
from graphql import GraphQLError, GraphQLSchema

from animus.bus.metrics import render_prometheus
from animus.errors import AnimusError, NotFound
from animus.bus.subscriber import EventFilter
from animus.plugins.transports.diff import workflow_diff
from animus.plugins.transports.link import DaemonLink

__all__ = ["build_schema", "SCHEMA_FILE"]

SCHEMA_FILE = Path(__file__).with_name("schema.graphql")


def _plain(value: Any) -> Any:
    """JSON-safe: bytes become text, tuples lists, keys strings."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def _graphql_error(exc: AnimusError) -> GraphQLError:
    return GraphQLError(exc.message, extensions={"code": exc.code, **({"fix": exc.fix} if exc.fix else {})})


def build_schema(link: DaemonLink) -> GraphQLSchema:
    daemon = _Daemon(link)
    query, mutation, subscription = QueryType(), MutationType(), SubscriptionType()
    workflow_type, metrics_type, health_row = ObjectType("Workflow"), ObjectType("Metrics"), ObjectType("PluginHealth")
    json_scalar = ScalarType("JSON", serializer=_plain, value_parser=lambda v: v)
    _queries(daemon, query)
    _object_fields(daemon, workflow_type, metrics_type, health_row)
    _mutations(daemon, mutation)
    _subscriptions(link, subscription)
    return make_executable_schema(SCHEMA_FILE.read_text(), query, mutation, subscription, workflow_type,
                                  metrics_type, health_row, json_scalar, convert_names_case=True)


def _given(**kwargs: Any) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if v is not None}


class _Daemon:
    """The daemon's control methods, their errors as GraphQL errors."""

    def __init__(self, link: DaemonLink) -> None:
        self.link = link

    async def call(self, method: str, params: dict[str, Any] | None = None, missing_is_null: bool = False) -> Any:
        try:
            return await self.link.call(method, params or {})
        except AnimusError as exc:
            if missing_is_null and isinstance(exc, NotFound):
                return None
            raise _graphql_error(exc) from None

    async def subject(self, kind: str, verb: str, params: dict[str, Any], missing_is_null: bool = False) -> Any:
        return await self.call("subject/call", {"kind": kind, "verb": verb, "params": params, "origin": "graphql"},
                               missing_is_null)


def _queries(daemon: _Daemon, query: QueryType) -> None:
    call = daemon.call
    # fields answered by one control method without arguments
    for field, method in (("status", "daemon/status"), ("health", "daemon/health"), ("metrics", "daemon/metrics"),
                          ("plugins", "plugin/list"), ("workflowStats", "workflow/stats"),
                          ("triggers", "workflow/triggers")):
        query.set_field(field, lambda *_, method=method: call(method))

    @query.field("workflows")
    async def workflows(*_: Any, status: str | None = None, limit: int = 50, task_id: str | None = None) -> Any:
        return await call("workflow/list", _given(status=status, limit=limit, task_id=task_id))

    @query.field("workflow")
    async def workflow(*_: Any, id: str) -> Any:
        return await call("workflow/get", {"id": id}, missing_is_null=True)

    @query.field("subjects")
    async def subjects(*_: Any, kind: str = "task", status: str | None = None, limit: int | None = None) -> Any:
        return await daemon.subject(kind, "list", _given(status=status, limit=limit))

    @query.field("subject")
    async def subject(*_: Any, id: str, kind: str = "task") -> Any:
        return await daemon.subject(kind, "get", {"id": id}, missing_is_null=True)

    @query.field("logs")
    async def logs(*_: Any, limit: int = 100, level: str | None = None, cat: str | None = None,
                   workflow_id: str | None = None, search: str | None = None) -> Any:
        return await call("daemon/logs", _given(limit=limit, level=level, cat=cat, workflow_id=workflow_id,
                                                 search=search))


def _object_fields(daemon: _Daemon, workflow_type: ObjectType, metrics_type: ObjectType,
                   health_row: ObjectType) -> None:
    health_row.set_field("details", lambda row, *_: row)
    metrics_type.set_field("prometheus", lambda snapshot, *_: render_prometheus(snapshot))

    @workflow_type.field("phases")
    async def phases(wf: dict[str, Any], *_: Any) -> Any:
        if "phases" in wf:
            return wf["phases"]
        return (await daemon.call("workflow/get", {"id": wf["id"]}))["phases"]

    @workflow_type.field("diff")
    async def diff(wf: dict[str, Any], *_: Any) -> Any:
        try:
            return await workflow_diff(daemon.link, str(wf["id"]))
        except AnimusError as exc:
            raise _graphql_error(exc) from None


def _mutations(daemon: _Daemon, mutation: MutationType) -> None:
    call = daemon.call

    @mutation.field("runWorkflow")
    async def run_workflow(*_: Any, task_id: str | None = None, title: str | None = None,
                           workflow_ref: str | None = None) -> Any:
        return await call("workflow/run", _given(task_id=task_id, title=title, workflow_ref=workflow_ref))

    @mutation.field("resumeWorkflow")
    async def resume(*_: Any, id: str, force: bool = False) -> Any:
        return await call("workflow/resume", {"id": id, "force": bool(force)})

    @mutation.field("cancelWorkflow")
    async def cancel(*_: Any, id: str) -> Any:
        return await call("workflow/cancel", {"id": id})

    for field, method in (("approveWorkflow", "workflow/approve"), ("rejectWorkflow", "workflow/reject")):
        async def decide(*_: Any, id: str, phase: str | None = None, note: str | None = None,
                         method: str = method) -> Any:
            return await call(method, _given(id=id, phase=phase, note=note))
        mutation.set_field(field, decide)

    @mutation.field("fireTrigger")
    async def fire(*_: Any, id: str, payload: Any = None) -> Any:
        if payload is not None and not isinstance(payload, dict):
            raise GraphQLError("payload must be a JSON object", extensions={"code": "invalid_input"})
        return await call("workflow/fire", {"trigger_id": id, "payload": payload or {}, "source": "graphql"})

    @mutation.field("setSubjectStatus")
    async def set_status(*_: Any, id: str, status: str, kind: str = "task", reason: str | None = None) -> Any:
        return await daemon.subject(kind, "status", _given(id=id, status=status, reason=reason))

    @mutation.field("createSubject")
    async def create_subject(*_: Any, title: str, kind: str = "task", **fields: Any) -> Any:
        return await daemon.subject(kind, "create", _given(title=title, **fields))

    @mutation.field("updateSubject")
    async def update_subject(*_: Any, id: str, fields: Any, kind: str = "task") -> Any:
        if not isinstance(fields, dict) or not fields:
            raise GraphQLError("fields must be a JSON object with the fields to change",
                               extensions={"code": "invalid_input"})
        return await daemon.subject(kind, "update", {"id": id, "fields": fields})


def _subscriptions(link: DaemonLink, subscription: SubscriptionType) -> None:
    @subscription.source("events")
    async def event_source(*_: Any, workflow_id: str | None = None, run_id: str | None = None,
                           cat: str | None = None, level: str | None = None) -> AsyncGenerator[dict[str, Any], None]:
        try:
            keep = EventFilter(workflow=workflow_id, run=run_id, cat=cat, level=level)
        except ValueError as exc:
            raise GraphQLError(str(exc), extensions={"code": "invalid_input"}) from None
        if not await link.wait_bus(10) or link.hub is None:
            raise GraphQLError("the event stream is not live yet", extensions={"code": "unavailable"})
        sub = link.hub.subscribe(keep)
        try:
            yield {"kind": "stream_ready", "cat": "bus", "level": "info", "ts": time.time(), "data": {}}
            while True:
                event = await sub.get(None)
                if event is not None:
                    yield event
        finally:
            link.hub.unsubscribe(sub)

    subscription.set_field("events", lambda event, *_, **__: event)
