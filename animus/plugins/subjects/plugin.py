"""One adapter from the plugin protocol to any subject backend.

A subject plugin serves ``<kind>/list|get|create|update|status|next`` for
each kind it declares, by calling the matching ``SubjectBackend`` method.
Operator-facing errors keep their meaning across the wire: the JSON-RPC
error carries ``data.error_code`` (``not_found``, ``conflict``,
``invalid_input``, ``unavailable``) and ``data.fix``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from animus.errors import AnimusError
from animus.plugins.subjects.backend import SubjectBackend
from animus.workers.protocol import INTERNAL_ERROR, INVALID_PARAMS, RpcError
from animus.workers.sdk import Plugin, RequestContext

__all__ = ["SubjectPlugin", "VERBS"]

VERBS = ("list", "get", "create", "update", "status", "next")


class SubjectPlugin(Plugin):
    role = "subject"

    def __init__(self) -> None:
        super().__init__()
        self._backends: dict[str, SubjectBackend] = {}

    def make_backend(self, kind: str) -> SubjectBackend:
        raise NotImplementedError

    def backend(self, kind: str) -> SubjectBackend:
        if kind not in self._backends:
            self._backends[kind] = self.make_backend(kind)
        return self._backends[kind]

    @classmethod
    def extra_methods(cls) -> list[str]:
        return [f"{kind}/{verb}" for kind in cls.subject_kinds for verb in VERBS]

    def route(self, method_name: str) -> Callable[..., Any] | None:
        kind, _, verb = method_name.rpartition("/")
        if kind in self.subject_kinds and verb in VERBS:
            return functools.partial(self._serve, kind, verb)
        return None

    def _serve(self, kind: str, verb: str, params: dict[str, Any], ctx: RequestContext) -> Any:
        try:
            return self._call(self.backend(kind), verb, params)
        except AnimusError as exc:
            code = INVALID_PARAMS if exc.code in ("invalid_input", "not_found", "conflict") else INTERNAL_ERROR
            raise RpcError(code, exc.message, {"error_code": exc.code, "fix": exc.fix}) from None

    @staticmethod
    def _call(backend: SubjectBackend, verb: str, params: dict[str, Any]) -> Any:
        if verb == "list":
            limit = params.get("limit")
            items = backend.list(params.get("status"), int(limit) if limit else None, params.get("labels"))
            return [s.to_dict() for s in items]
        if verb == "get":
            return backend.get(str(params.get("id", ""))).to_dict()
        if verb == "create":
            fields = {k: params[k] for k in ("description", "status", "priority", "labels", "assignee",
                                             "parent", "custom") if params.get(k) is not None}
            return backend.create(str(params.get("title") or ""), **fields).to_dict()
        if verb == "update":
            return backend.update(str(params.get("id", "")), **dict(params.get("fields") or {})).to_dict()
        if verb == "status":
            return backend.set_status(str(params.get("id", "")), str(params.get("status", "")),
                                      params.get("reason")).to_dict()
        found = backend.next()
        return found.to_dict() if found else None

    def health(self) -> dict[str, Any]:
        try:
            for kind in self.subject_kinds:
                self.backend(kind).list(limit=1)
        except Exception as exc:
            return {"status": "unhealthy", "last_error": f"{type(exc).__name__}: {exc}"}
        return super().health()
