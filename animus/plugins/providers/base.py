"""What every provider plugin shares: ``agent/run`` bookkeeping, bus events, the result shape.

``ProviderPlugin`` serves ``agent/run`` / ``agent/resume`` / ``agent/cancel``
for any engine; a subclass implements ``execute`` (``cli_plugin`` for the agent
CLIs, ``http_plugin`` for OpenAI-compatible servers). The contract itself,
pure, is ``run_contract``; how the plugins fit together is in ``plugin``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from animus.plugins.providers.cli_process import KILL_GRACE, owner_token, reap_orphans
from animus.plugins.providers.events import EnvVar, ProviderEvent, RunResult, SessionStarted
from animus.plugins.providers.run_contract import (
    RunRequest,
    bus_event,
    confine,
    failed,
    record_session_id,
    shape_result,
    usage_of,
)
from animus.plugin_runtime import protocol as p
from animus.plugin_runtime.sdk import Plugin, RequestContext, RpcError, method

__all__ = [
    "DEFAULT_TIMEOUT",
    "PLUGIN_VERSION",
    "OnEvent",
    "ProviderPlugin",
    "config_error",
    "env_dicts",
    "timeout_of",
]

PLUGIN_VERSION = "0.5.0"
DEFAULT_TIMEOUT = 3600.0  # one agent turn; a phase may set its own
OnEvent = Callable[[ProviderEvent], None]


def env_dicts(env_required: Sequence[EnvVar]) -> list[dict[str, Any]]:
    return [var.to_dict() for var in env_required]


@dataclass
class _ActiveRun:
    cancel: threading.Event
    done: threading.Event = field(default_factory=threading.Event)


class ProviderPlugin(Plugin):
    """What every provider shares: params, bookkeeping, bus events, the result shape."""

    role = "provider"
    version = PLUGIN_VERSION

    def __init__(self) -> None:
        super().__init__()
        self._runs: dict[str, _ActiveRun] = {}
        self._runs_lock = threading.Lock()
        self._owner = ""

    def on_initialize(self, params: dict[str, Any]) -> None:
        self._owner = owner_token(self._owner_scope())
        try:
            killed = reap_orphans(self._owner_scope())
        except Exception as exc:  # noqa: BLE001 - a sweep that fails must not keep the provider down
            self.last_error = f"orphan sweep failed: {exc}"
            return
        if killed:
            self._emit(
                "agent_orphans_reaped",
                "warn",
                {"provider": self.name, "pids": killed},
                {"workflow_id": None, "run_id": None, "phase": None},
            )

    def _owner_scope(self) -> str:
        return f"{self.state_root}|{self.name}"

    # -- methods -------------------------------------------------------------
    @method("agent/run")
    def agent_run(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        return self._serve(RunRequest.from_params(params, resume=False), ctx)

    @method("agent/resume")
    def agent_resume(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        return self._serve(RunRequest.from_params(params, resume=True), ctx)

    @method("agent/cancel")
    async def agent_cancel(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        """Runs on the event loop, so a cancel is served even when every handler thread is busy."""
        key = params.get("run_key") if isinstance(params, dict) else None
        with self._runs_lock:
            run = self._runs.get(str(key)) if key else None
        if run is None:
            return {"cancelled": False, "reason": f"no run with run_key {key!r} is in progress"}
        run.cancel.set()
        deadline = time.monotonic() + KILL_GRACE + 1.0  # one stop, reaped; under a 5 s caller
        while not run.done.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return {"cancelled": True, "stopped": run.done.is_set()}

    # -- one run -------------------------------------------------------------
    def _serve(self, request: RunRequest, ctx: RequestContext) -> dict[str, Any]:
        confine(request, self.state_root, self.project_root)
        run = self._claim(request, ctx)
        started = time.monotonic()
        tags = request.tags()
        model = request.model or self.default_model()
        self._emit("agent_run_started", "info", {"provider": self.name, "model": model}, tags)
        try:
            result = self._execute(request, run, tags)
            level = "info" if result["verdict"] in ("advance", "skip", "rework") else "warn"
            self._emit("agent_run_finished", level, {
                "provider": self.name, "model": model, "verdict": result["verdict"],
                "usage": result["usage"], "session_id": result["session_id"],
                "duration_ms": round((time.monotonic() - started) * 1000, 1),
                "error": result["error"], "rate_limited": result["rate_limited"],
            }, tags)
            return result
        finally:
            with self._runs_lock:
                self._runs.pop(request.run_key, None)
            run.done.set()

    def _claim(self, request: RunRequest, ctx: RequestContext) -> _ActiveRun:
        """One request per run key at a time: a second is refused, not run beside the first."""
        run = _ActiveRun(ctx.cancelled)
        with self._runs_lock:
            if request.run_key in self._runs:
                raise RpcError(p.INVALID_PARAMS, f"run_key {request.run_key!r} is already running")
            self._runs[request.run_key] = run
        return run

    def _execute(self, request: RunRequest, run: _ActiveRun, tags: dict[str, Any]) -> dict[str, Any]:
        """The CLI's run as the phase result; a bug here is a failed phase, never a dead request."""
        recorded: list[str] = []

        def on_event(event: ProviderEvent) -> None:
            if isinstance(event, SessionStarted):
                self._remember_session(request, event.session_id, recorded, tags)
            elif (shaped := bus_event(event)) is not None:
                self._emit(*shaped, tags)

        try:
            raw = self.execute(request, on_event, run.cancel)
            if raw.session_id:
                self._remember_session(request, raw.session_id, recorded, tags)
            return shape_result(raw, request.allow_missing_decision)
        except Exception as exc:  # noqa: BLE001
            self.last_error = f"{type(exc).__name__}: {exc}"
            return {"summary": "", "session_id": None, "usage": usage_of(RunResult(self.name)),
                    "rate_limited": None, **failed(f"{self.name} plugin error: {self.last_error}")}

    def _remember_session(
        self, request: RunRequest, session_id: str, recorded: list[str], tags: dict[str, str | None]
    ) -> None:
        if not request.session_file or session_id in recorded:
            return
        recorded.append(session_id)
        path = Path(request.session_file)  # absolute and inside the run's directory: confine()
        try:
            record_session_id(path, session_id)
        except OSError as exc:  # the run goes on; the runner still gets the id in the result
            self._emit(
                "agent_session_file_failed",
                "warn",
                {"provider": self.name, "path": str(path), "error": str(exc)},
                tags,
            )

    def _emit(
        self, kind: str, level: str, data: dict[str, Any], tags: dict[str, str | None]
    ) -> None:
        try:
            self.publish("agent", kind, level, data=data, **tags)
        except Exception as exc:  # noqa: BLE001 - the bus being down must not fail an agent run
            self.last_error = f"cannot publish {kind}: {exc}"

    # -- per provider --------------------------------------------------------
    def default_model(self) -> str | None:
        model = self.config.get("model")
        return model if isinstance(model, str) and model else None

    def execute(self, request: RunRequest, on_event: OnEvent, cancel: threading.Event) -> RunResult:
        raise NotImplementedError


def config_error(name: str, key: str, problem: str) -> ValueError:
    return ValueError(f"plugins.{name}.config.{key} {problem} (fix it in .animus/config.yaml)")


def timeout_of(config: dict[str, Any], name: str) -> float:
    value = config.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise config_error(name, "timeout", f"must be a positive number of seconds, got {value!r}")
    return float(value)


