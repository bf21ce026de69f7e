"""The workflow store of a remote runner: ``workflow.db`` through the daemon.

A runner on another host never opens the SQLite file. It gets a
``RemoteStore`` with exactly the part of ``WorkflowStore`` the runner uses
(get, update, set_status, begin_attempt, and, inside ``tx()``,
update / finish_attempt / checkpoint / cancel_running_attempts), and each
call becomes one ``workflow/store`` request on the daemon's tcp control
socket (with the daemon's token). ``tx()`` yields a ``Batch``: the calls made
with it are sent together when the block ends and run in one SQLite
transaction by the workflows supervisor — a crash still leaves the old step
or the new one, never half of each.

The server side (:func:`serve_store_op`) runs in the workflows supervisor. It
trusts nothing it is sent: the op names, the columns a runner may write and
the workflow (the run's own, checked by the backend's fencing before this is
reached) are all checked, because the SQL is built from field names.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from animus.errors import InvalidInput, NotFound
from animus.state.files import atomic_json
from animus.workflow.store import STATUSES, WorkflowStore, WorkflowRow

if TYPE_CHECKING:
    from animus.bus.rpc import ControlClient

__all__ = [
    "ENV_DAEMON_PROJECT",
    "ENV_DAEMON_STATE",
    "ENV_NODE",
    "ENV_RUN",
    "ENV_TOKEN",
    "Batch",
    "RemoteStore",
    "RunnerStore",
    "open_store",
    "serve_store_op",
]

ENV_RUN = "ANIMUS_RUN_ID"  # set only for remote runners: "<workflow id>.<run number>"
ENV_TOKEN = "ANIMUS_CONTROL_TOKEN"
ENV_NODE = "ANIMUS_RUNNER_NODE"  # where the runner runs, as events show it
ENV_DAEMON_STATE = "ANIMUS_DAEMON_STATE_ROOT"  # the daemon's state root (paths the daemon's plugins use)
ENV_DAEMON_PROJECT = "ANIMUS_DAEMON_PROJECT_ROOT"

# What a runner may write: nothing else reaches the SQL.
WORKFLOW_FIELDS = frozenset({"status", "started_at", "phase_index", "current_phase", "waiting", "not_before",
                             "blocked_reason", "failure_reason", "completed_at", "resume_session", "usage",
                             "rework", "feedback", "worktree", "delivery"})
ATTEMPT_FIELDS = frozenset({"verdict", "exit_code", "output_tail", "usage", "session_id", "decision", "error"})
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


class RunnerStore(Protocol):
    """What the runner uses of a store; ``c`` is what ``tx()`` yields."""

    def tx(self) -> AbstractContextManager[Any]: ...
    def get(self, wf_id: str) -> WorkflowRow: ...
    def update(self, wf_id: str, c: Any = None, **fields: Any) -> None: ...
    def set_status(self, wf_id: str, status: str, reason: str | None = None, checkpoint: str | None = None,
                   **fields: Any) -> WorkflowRow: ...
    def begin_attempt(self, wf_id: str, phase: str, index: int, idempotency: str, mode: str,
                      provider: str | None) -> tuple[int, int]: ...
    def finish_attempt(self, attempt_id: int, c: Any, status: str, **fields: Any) -> None: ...
    def checkpoint(self, c: Any, wf_id: str, reason: str, phase: str | None) -> None: ...
    def cancel_running_attempts(self, c: Any, wf_id: str) -> None: ...
    def close(self) -> None: ...


class Batch:
    """What ``RemoteStore.tx()`` yields: calls to run in one transaction."""

    def __init__(self) -> None:
        self.ops: list[list[Any]] = []


class RemoteStore:
    def __init__(self, endpoint: str, token: str | None, wf_id: str, run: str, timeout: float = 30.0) -> None:
        self.endpoint, self.token, self.wf_id, self.run, self.timeout = endpoint, token, wf_id, run, timeout
        self.client = self._connect()
        self._busy = False

    def _connect(self) -> ControlClient:
        from animus.bus.rpc import ControlClient  # pyzmq: a remote runner's only, never a local one's

        return ControlClient(self.endpoint, self.timeout, self.token)

    def _call(self, op: str, **params: Any) -> Any:
        params = {"op": op, "wf_id": self.wf_id, "run": self.run, **params}
        if self._busy:
            # A signal handler (SIGTERM: cancel or drain?) interrupted a call in
            # flight; the socket is mid-request, so ask on a socket of its own.
            client = self._connect()
            try:
                return client.call("workflow/store", params)
            finally:
                client.close()
        self._busy = True
        try:
            return self.client.call("workflow/store", params)
        finally:
            self._busy = False

    def _mine(self, wf_id: str) -> None:
        if wf_id != self.wf_id:
            raise InvalidInput(f"a remote runner of {self.wf_id} cannot touch {wf_id}")

    @contextmanager
    def tx(self) -> Iterator[Batch]:
        batch = Batch()
        yield batch
        if batch.ops:
            self._call("batch", ops=batch.ops)

    def get(self, wf_id: str) -> WorkflowRow:
        self._mine(wf_id)
        return cast(WorkflowRow, dict(self._call("get")))

    def update(self, wf_id: str, c: Batch | None = None, **fields: Any) -> None:
        self._mine(wf_id)
        op = ["update", {"fields": fields}]
        if c is None:
            self._call("batch", ops=[op])
        else:
            c.ops.append(op)

    def set_status(self, wf_id: str, status: str, reason: str | None = None, checkpoint: str | None = None,
                   **fields: Any) -> WorkflowRow:
        self._mine(wf_id)
        return cast(WorkflowRow, dict(self._call("set_status", status=status, reason=reason, checkpoint=checkpoint,
                                                 fields=fields)))

    def begin_attempt(self, wf_id: str, phase: str, index: int, idempotency: str, mode: str,
                      provider: str | None) -> tuple[int, int]:
        self._mine(wf_id)
        attempt_id, number = self._call("begin_attempt", phase=phase, index=index, idempotency=idempotency,
                                        mode=mode, provider=provider)
        return int(attempt_id), int(number)

    def finish_attempt(self, attempt_id: int, c: Batch, status: str, **fields: Any) -> None:
        c.ops.append(["finish_attempt", {"attempt_id": attempt_id, "status": status, "fields": fields}])

    def checkpoint(self, c: Batch, wf_id: str, reason: str, phase: str | None) -> None:
        self._mine(wf_id)
        c.ops.append(["checkpoint", {"reason": reason, "phase": phase}])

    def cancel_running_attempts(self, c: Batch, wf_id: str) -> None:
        self._mine(wf_id)
        c.ops.append(["cancel_running_attempts", {}])

    def record_session(self, phase: str, data: dict[str, Any]) -> None:
        """Mirror ``<phase>.session.json`` into the daemon's ``runs/`` (recovery reads it there)."""
        self._call("record_session", phase=phase, data=data)

    def close(self) -> None:
        self.client.close()


def open_store(state_root: Path, wf_id: str) -> RunnerStore:
    """The runner's store: ``workflow.db`` itself, or the daemon's for a remote runner."""
    run = os.environ.get(ENV_RUN)
    if not run:
        return WorkflowStore(state_root / "workflow.db", ensure_schema=False)  # the supervisor made it
    from animus.plugin_runtime import protocol as p

    return RemoteStore(os.environ[p.ENV_CONTROL], os.environ.get(ENV_TOKEN), wf_id, run)


# -- the daemon's side ---------------------------------------------------------
def _fields(raw: Any, allowed: frozenset[str], what: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise InvalidInput(f"{what}: fields must be a map")
    bad = sorted(set(raw) - allowed)
    if bad:
        raise InvalidInput(f"{what}: a runner may not write {bad[0]!r}")
    return dict(raw)


def _status(value: Any) -> str:
    if value not in STATUSES:
        raise InvalidInput(f"unknown status {value!r}")
    return str(value)


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise InvalidInput(f"bad {what} {value!r}")
    return value


def serve_store_op(store: WorkflowStore, state_root: Path, params: dict[str, Any]) -> Any:
    """Run one ``workflow/store`` request against ``workflow.db`` (the caller fenced the run)."""
    wf_id = _name(params.get("wf_id"), "workflow id")
    op = params.get("op")
    if op == "get":
        return store.get(wf_id)
    if op == "set_status":
        checkpoint = params.get("checkpoint")
        return store.set_status(wf_id, _status(params.get("status")), params.get("reason"),
                                str(checkpoint) if checkpoint else None,
                                **_fields(params.get("fields") or {}, WORKFLOW_FIELDS, "set_status"))
    if op == "begin_attempt":
        return store.begin_attempt(wf_id, _name(params.get("phase"), "phase"), int(params.get("index", 0)),
                                   str(params.get("idempotency")), str(params.get("mode")), params.get("provider"))
    if op == "batch":
        ops = params.get("ops")
        if not isinstance(ops, list):
            raise InvalidInput("batch: ops must be a list")
        with store.tx() as c:
            for entry in ops:
                _batch_op(store, c, wf_id, entry)
        return {"ok": True}
    if op == "record_session":
        path = state_root / "runs" / wf_id / f"{_name(params.get('phase'), 'phase')}.session.json"
        data = params.get("data")
        if not isinstance(data, dict):
            raise InvalidInput("record_session: data must be a map")
        atomic_json(path, data)
        return {"ok": True}
    raise InvalidInput(f"unknown workflow/store op {op!r}")


def _batch_op(store: WorkflowStore, c: Any, wf_id: str, entry: Any) -> None:
    if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], dict)):
        raise InvalidInput("batch: each op is [name, args]")
    name, args = entry
    if name == "update":
        store.update(wf_id, c, **_fields(args.get("fields"), WORKFLOW_FIELDS, "update"))
    elif name == "finish_attempt":
        attempt_id = int(args.get("attempt_id", 0))
        owner = c.execute("SELECT workflow_id FROM phase_attempts WHERE id=?", (attempt_id,)).fetchone()
        if owner is None or owner[0] != wf_id:
            raise NotFound(f"no attempt {attempt_id} of {wf_id}")
        store.finish_attempt(attempt_id, c, _status_of_attempt(args.get("status")),
                             **_fields(args.get("fields") or {}, ATTEMPT_FIELDS, "finish_attempt"))
    elif name == "checkpoint":
        phase = args.get("phase")
        store.checkpoint(c, wf_id, _name(args.get("reason"), "checkpoint reason"),
                         _name(phase, "phase") if phase is not None else None)
    elif name == "cancel_running_attempts":
        store.cancel_running_attempts(c, wf_id)
    else:
        raise InvalidInput(f"unknown batch op {name!r}")


def _status_of_attempt(value: Any) -> str:
    if value not in ("completed", "failed", "waiting", "cancelled", "crashed"):
        raise InvalidInput(f"unknown attempt status {value!r}")
    return str(value)
