"""One adapter from the plugin protocol to any subject backend.

A subject plugin serves ``<kind>/list|get|create|update|status|next`` for
each kind it declares, by calling the matching ``SubjectBackend`` method.
A declared kind is exact (``task``) or a glob with a trailing ``*``
(``linear.*``): the plugin then serves every kind under that prefix, and
``make_backend`` decides which of them it can really build.

Operator-facing errors keep their meaning across the wire: the JSON-RPC
error carries ``data.error_code`` (``not_found``, ``conflict``,
``invalid_input``, ``unavailable``) and ``data.fix``. Two rules make a
broken backend read the same everywhere:

- a backend that cannot be built (a config key unset, an API key missing, a
  file that cannot be opened) answers ``unavailable`` with
  ``"Subject backend unavailable: <why>"``, and ``health/check`` reports the
  same line as ``last_error``; the scheduler leaves such kinds alone;
- storage failing under a request (``OSError``, ``sqlite3.Error``) is
  ``unavailable`` too, in one line, never a traceback.

A backend that offers ``get_with_version`` (the Markdown store) adds a
``version`` key to the subjects ``get``/``update``/``status`` return; passing
it back as ``expected_version`` (in the params, or among the update
``fields``) makes the write refuse with ``conflict`` if the record changed
meanwhile, e.g. because a person saved the file in an editor.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

from animus.errors import AnimusError, InvalidInput, Unavailable
from animus.plugin_runtime.protocol import INTERNAL_ERROR, INVALID_PARAMS, RpcError
from animus.plugin_runtime.sdk import Plugin, RequestContext
from animus.plugins.subjects.backend import SubjectBackend
from animus.plugins.subjects.model import Subject, parse_kind

__all__ = ["UNAVAILABLE", "VERBS", "SubjectPlugin"]

VERBS = ("list", "get", "create", "update", "status", "next")
UNAVAILABLE = "Subject backend unavailable"
_CREATE_FIELDS = ("description", "status", "priority", "labels", "assignee", "parent", "custom")


class SubjectPlugin(Plugin):
    role = "subject"
    # Concrete kinds under a declared glob that the plugin is known to serve:
    # listed in its capabilities and probed by health/check.
    known_kinds: list[str] = []

    def __init__(self) -> None:
        super().__init__()
        self._local = threading.local()  # handlers run in a thread pool: a backend per thread

    def make_backend(self, kind: str) -> SubjectBackend:
        raise NotImplementedError

    # -- kinds -----------------------------------------------------------------------

    @classmethod
    def serves(cls, kind: str) -> bool:
        """True if ``kind`` is declared exactly or falls under a declared glob
        (with something after the prefix: ``linear.`` is not a ``linear.*`` kind)."""
        try:
            parse_kind(kind)
        except InvalidInput:
            return False
        return any(kind == k or (k.endswith("*") and kind.startswith(k[:-1]) and len(kind) >= len(k))
                   for k in cls.subject_kinds)

    def backend(self, kind: str) -> SubjectBackend:
        """The backend of ``kind`` for this thread, built once; a failure to build is ``unavailable``.

        One per handler thread because an SQLite connection may only be used
        by the thread that opened it; the stores already coordinate several
        writers (transactions, a directory lock), whether threads or processes.
        """
        backends: dict[str, SubjectBackend] = self._local.__dict__.setdefault("backends", {})
        if kind not in backends:
            try:
                backends[kind] = self.make_backend(kind)
            except Unavailable:
                raise
            except (AnimusError, OSError, sqlite3.Error) as exc:
                message = exc.message if isinstance(exc, AnimusError) else _one_line(exc)
                fix = exc.fix if isinstance(exc, AnimusError) else None
                raise Unavailable(f"{UNAVAILABLE}: {message}", fix=fix) from None
        return backends[kind]

    @classmethod
    def extra_methods(cls) -> list[str]:
        """``<kind>/<verb>`` per declared kind (a glob stays a glob: ``linear.*/get``)
        and per known kind under a glob (``linear.issue/get``)."""
        kinds = list(dict.fromkeys([*cls.subject_kinds, *cls.known_kinds]))
        return [f"{kind}/{verb}" for kind in kinds for verb in VERBS]

    def route(self, method_name: str) -> Callable[..., Any] | None:
        kind, _, verb = method_name.rpartition("/")
        if verb in VERBS and self.serves(kind):
            return functools.partial(self._serve, kind, verb)
        return None

    # -- serving ---------------------------------------------------------------------

    def _serve(self, kind: str, verb: str, params: dict[str, Any], ctx: RequestContext) -> Any:
        try:
            return self._call(self.backend(kind), verb, dict(params or {}))
        except AnimusError as exc:
            raise _rpc_error(exc) from None
        except (OSError, sqlite3.Error) as exc:  # the storage itself failed
            self.last_error = _one_line(exc)
            raise _rpc_error(Unavailable(f"{UNAVAILABLE}: {self.last_error}")) from None

    @staticmethod
    def _call(backend: SubjectBackend, verb: str, params: dict[str, Any]) -> Any:
        if verb == "list":
            limit = params.get("limit")
            items = backend.list(params.get("status"), int(limit) if limit else None, params.get("labels"))
            return [s.to_dict() for s in items]
        if verb == "get":
            return _versioned(backend, backend.get(str(params.get("id", ""))))
        if verb == "create":
            fields = {k: params[k] for k in _CREATE_FIELDS if params.get(k) is not None}
            return _versioned(backend, backend.create(str(params.get("title") or ""), **fields))
        if verb in ("update", "status"):
            fields = dict(params.get("fields") or {}) if verb == "update" else {}
            expected = params.get("expected_version") or fields.pop("expected_version", None)
            extra: dict[str, Any] = {}
            if expected is not None:
                if not hasattr(backend, "get_with_version"):
                    raise InvalidInput(f"kind {backend.kind!r} has no record versions: drop expected_version")
                extra["expected_version"] = str(expected)
            subject_id = str(params.get("id", ""))
            if verb == "update":
                subject = backend.update(subject_id, **fields, **extra)
            else:
                subject = backend.set_status(subject_id, str(params.get("status", "")), params.get("reason"),
                                             **extra)
            return _versioned(backend, subject)
        found = backend.next()
        return found.to_dict() if found else None

    def health(self) -> dict[str, Any]:
        try:
            for kind in [*(k for k in self.subject_kinds if not k.endswith("*")), *self.known_kinds]:
                self.backend(kind).list(limit=1)
        except AnimusError as exc:
            return {"status": "unhealthy", "last_error": exc.one_line()}
        except Exception as exc:
            return {"status": "unhealthy", "last_error": _one_line(exc)}
        return super().health()


def _versioned(backend: SubjectBackend, subject: Subject) -> dict[str, Any]:
    """The wire dict, plus ``version`` when the backend keeps record versions."""
    get_with_version = getattr(backend, "get_with_version", None)
    if get_with_version is None:
        return subject.to_dict()
    current, version = get_with_version(subject.id)
    return dict(current.to_dict(), version=version)


def _rpc_error(exc: AnimusError) -> RpcError:
    code = INVALID_PARAMS if exc.code in ("invalid_input", "not_found", "conflict") else INTERNAL_ERROR
    return RpcError(code, exc.message, {"error_code": exc.code, "fix": exc.fix})


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "no detail"
    return f"{type(exc).__name__}: {text}"
