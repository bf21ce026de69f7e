"""Provider plugins: the vendor engines wired to the plugin host.

One class serves every agent CLI (``CliProviderPlugin``, parametrised by a
vendor module: claude, codex, gemini, opencode) and one serves
OpenAI-compatible servers (``OaiProviderPlugin``). Both answer the same
methods, so the workflow runner never knows which vendor it talks to:

* ``agent/run`` / ``agent/resume`` run one agent turn and return the phase
  decision ``{verdict, reason, confidence, risk, evidence, summary,
  session_id, usage, rate_limited, error}``. Nothing the agent or its CLI does
  raises out of them: a crash, a timeout, a cancel or an unusable verdict
  block is ``verdict: "fail"`` with ``error`` saying why; a quota limit is
  ``verdict: null`` with ``rate_limited`` so the runner parks the phase
  (the contract itself, pure, is ``run_contract``).
* ``agent/cancel {run_key}`` stops that run's process group (SIGTERM, 2 s,
  SIGKILL, as ``run_cli`` does) and answers once it is stopped.

While a run goes, its events go on the bus (category ``agent``), tagged with
the caller's workflow_id / run_id / phase: ``agent_run_started`` first (the
daemon counts ``agent_runs_total`` from it), then ``agent_text``,
``agent_tool_call``, ``agent_tool_result``, ``agent_usage``,
``agent_rate_limited``, and ``agent_run_finished`` last.

Process ownership: ``run_cli`` runs in the handler thread that owns the run
(the CLI's parent-death signal is tied to that thread). If the plugin itself
is SIGKILLed, the kernel kills each CLI, but tools the CLI started would be
orphaned; every CLI therefore carries an owner token in its environment, and
the next instance of the plugin kills what a dead instance left behind
(``cli_process.reap_orphans``) before it says it is initialized.

SIGTERM (an operator stop, a daemon stop): the SDK cancels every run in
progress; each CLI group gets SIGTERM, 2 s, SIGKILL; each pending call is
answered ``verdict: "fail", error: "cancelled"``, and the process exits in
about 2.5 s at most, within the host's 5 s shutdown timeout.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from animus.plugins.providers.oai import engine as oai
from animus.plugins.providers.cli_process import (
    KILL_GRACE,
    OWNER_ENV,
    owner_token,
    probe_version,
    reap_orphans,
    run_cli,
)
from animus.plugins.providers.events import (
    EnvVar,
    ProviderError,
    ProviderEvent,
    RunResult,
    SessionStarted,
    StreamParser,
)
from animus.plugins.providers.run_contract import (
    RunRequest,
    bus_event,
    failed,
    record_session_id,
    shape_result,
    usage_of,
)
from animus.plugin_runtime import protocol as p
from animus.plugin_runtime.sdk import Plugin, RequestContext, RpcError, method

__all__ = [
    "CliProviderPlugin",
    "CliSettings",
    "CliVendor",
    "OaiProviderPlugin",
    "OaiSettings",
    "ProviderPlugin",
    "env_dicts",
]

PLUGIN_VERSION = "0.5.0"
DEFAULT_TIMEOUT = 3600.0  # one agent turn; a phase may set its own
VERSION_PROBE_SECS = 2.5  # inside the host's 3 s health/check deadline, so our reason reaches it
# The plugin's own wiring to its host: an agent's tools have no business with it.
_HOST_ONLY_ENV = (
    p.ENV_ENDPOINT,
    p.ENV_ID,
    p.ENV_BUS,
    p.ENV_CONTROL,
    p.ENV_CONFIG,
    "ANIMUS_PARENT_PID",
    "ANIMUS_HOST_SILENCE_SECS",
)
OnEvent = Callable[[ProviderEvent], None]


class CliVendor(Protocol):
    """What a vendor module (``providers.claude`` …) offers; see ``providers/__init__``."""

    NAME: str
    install_hint: str
    env_required: tuple[EnvVar, ...]

    def build_argv(
        self,
        binary: str,
        prompt: str,
        model: str | None,
        session_id: str | None = None,
        system_prompt: str | None = None,
        extra_args: Sequence[str] = (),
    ) -> list[str]: ...

    @property
    def StreamParser(self) -> Callable[[], StreamParser]: ...  # the module's parser class


def env_dicts(env_required: Sequence[EnvVar]) -> list[dict[str, Any]]:
    return [var.to_dict() for var in env_required]


# -- the plugin ------------------------------------------------------------------------------


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
        run = _ActiveRun(ctx.cancelled)
        with self._runs_lock:
            if request.run_key in self._runs:
                raise RpcError(p.INVALID_PARAMS, f"run_key {request.run_key!r} is already running")
            self._runs[request.run_key] = run
        started = time.monotonic()
        tags = request.tags()
        model = request.model or self.default_model()
        self._emit("agent_run_started", "info", {"provider": self.name, "model": model}, tags)
        recorded: list[str] = []

        def on_event(event: ProviderEvent) -> None:
            if isinstance(event, SessionStarted):
                self._remember_session(request, event.session_id, recorded, tags)
            elif (shaped := bus_event(event)) is not None:
                self._emit(*shaped, tags)

        try:
            try:
                raw = self.execute(request, on_event, run.cancel)
                if raw.session_id:
                    self._remember_session(request, raw.session_id, recorded, tags)
                result = shape_result(raw, request.allow_missing_decision)
            except Exception as exc:  # noqa: BLE001 - a bug here is a failed phase, never a dead request
                self.last_error = f"{type(exc).__name__}: {exc}"
                result = {
                    "summary": "",
                    "session_id": None,
                    "usage": usage_of(RunResult(self.name)),
                    "rate_limited": None,
                    **failed(f"{self.name} plugin error: {self.last_error}"),
                }
            duration_ms = round((time.monotonic() - started) * 1000, 1)
            level = "info" if result["verdict"] in ("advance", "skip", "rework") else "warn"
            self._emit(
                "agent_run_finished",
                level,
                {
                    "provider": self.name,
                    "model": model,
                    "verdict": result["verdict"],
                    "usage": result["usage"],
                    "session_id": result["session_id"],
                    "duration_ms": duration_ms,
                    "error": result["error"],
                    "rate_limited": result["rate_limited"],
                },
                tags,
            )
            return result
        finally:
            with self._runs_lock:
                self._runs.pop(request.run_key, None)
            run.done.set()

    def _remember_session(
        self, request: RunRequest, session_id: str, recorded: list[str], tags: dict[str, str | None]
    ) -> None:
        if not request.session_file or session_id in recorded:
            return
        recorded.append(session_id)
        path = Path(request.session_file)
        if not path.is_absolute():
            path = Path(self.project_root) / path
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


def _config_error(name: str, key: str, problem: str) -> ValueError:
    return ValueError(f"plugins.{name}.config.{key} {problem} (fix it in .animus/config.yaml)")


def _timeout_of(config: dict[str, Any], name: str) -> float:
    value = config.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise _config_error(name, "timeout", f"must be a positive number of seconds, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class CliSettings:
    """The operator's config for a CLI provider; ``from_config`` names the bad key."""

    binary: str
    model: str | None = None
    extra_args: tuple[str, ...] = ()
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_config(cls, config: dict[str, Any], name: str) -> CliSettings:
        binary = config.get("binary") or name
        if not isinstance(binary, str):
            raise _config_error(name, "binary", f"must be a path or a command name, got {binary!r}")
        extra = config.get("extra_args") or []
        if (
            isinstance(extra, str)
            or not isinstance(extra, list)
            or not all(isinstance(a, str) for a in extra)
        ):
            raise _config_error(name, "extra_args", f"must be a list of strings, got {extra!r}")
        model = config.get("model")
        if model is not None and not isinstance(model, str):
            raise _config_error(name, "model", f"must be a string, got {model!r}")
        return cls(
            os.path.expanduser(binary), model or None, tuple(extra), _timeout_of(config, name)
        )


class CliProviderPlugin(ProviderPlugin):
    """An agent CLI as a provider; a subclass sets ``name``, ``vendor`` and ``env_required``."""

    vendor: ClassVar[CliVendor]

    def settings(self) -> CliSettings:
        settings = CliSettings.from_config(self.config, self.vendor.NAME)
        if os.sep in settings.binary and not os.path.isabs(settings.binary):
            # a run may have another cwd; a relative path means the project's
            binary = os.path.join(self.project_root, settings.binary)
            settings = dataclasses.replace(settings, binary=binary)
        return settings

    def health(self) -> dict[str, Any]:
        try:
            settings = self.settings()
        except ValueError as exc:
            return {"status": "unhealthy", "last_error": str(exc)}
        path = shutil.which(settings.binary)
        if path is None:
            where = (
                "not found on PATH"
                if os.sep not in settings.binary
                else "not found or not executable"
            )
            return {
                "status": "unhealthy",
                "last_error": f"{settings.binary} {where} (install: {self.vendor.install_hint})",
            }
        version = probe_version(path, VERSION_PROBE_SECS)
        if version is None:
            return {
                "status": "unhealthy",
                "binary": path,
                "last_error": f"{path} --version failed or did not answer "
                f"within {VERSION_PROBE_SECS:g} s",
            }
        return {
            "status": "healthy",
            "version": version,
            "binary": path,
            "last_error": self.last_error,
        }

    def execute(self, request: RunRequest, on_event: OnEvent, cancel: threading.Event) -> RunResult:
        try:
            settings = self.settings()
        except ValueError as exc:
            return RunResult(self.name, error=ProviderError(str(exc)))
        cwd = request.cwd or self.project_root
        if not os.path.isdir(cwd):
            return RunResult(self.name, error=ProviderError(f"cwd {cwd} is not a directory"))
        argv = self.vendor.build_argv(
            settings.binary,
            request.full_prompt(),
            request.model or settings.model,
            request.session_id,
            request.system_prompt,
            settings.extra_args,
        )
        return run_cli(
            argv,
            cwd,
            self._cli_env(request),
            request.timeout or settings.timeout,
            on_event,
            self.vendor.StreamParser(),
            cancel=cancel,
        )

    def _cli_env(self, request: RunRequest) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _HOST_ONLY_ENV}
        env[OWNER_ENV] = self._owner or owner_token(self._owner_scope())
        for name, value in (
            ("ANIMUS_WORKFLOW_ID", request.workflow_id),
            ("ANIMUS_RUN_ID", request.run_id),
            ("ANIMUS_PHASE", request.phase),
        ):
            if value:
                env[name] = value
        return env


@dataclass(frozen=True)
class OaiSettings:
    base_url: str | None
    model: str | None
    api_key_env: str = "OPENAI_API_KEY"
    max_retries: int = 4
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> OaiSettings:
        base_url = config.get("base_url") or os.environ.get("OPENAI_BASE_URL") or None
        key_env = config.get("api_key_env") or "OPENAI_API_KEY"
        retries = config.get("max_retries", 4)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise _config_error(
                "oai", "max_retries", f"must be a whole number >= 0, got {retries!r}"
            )
        for key, value in (
            ("base_url", base_url),
            ("api_key_env", key_env),
            ("model", config.get("model")),
        ):
            if value is not None and not isinstance(value, str):
                raise _config_error("oai", key, f"must be a string, got {value!r}")
        return cls(
            base_url, config.get("model") or None, key_env, retries, _timeout_of(config, "oai")
        )


class OaiProviderPlugin(ProviderPlugin):
    """An OpenAI-compatible chat-completions server as a provider; sessions are saved histories."""

    name = oai.NAME
    description = (
        "Any OpenAI-compatible chat-completions server (vLLM, llama.cpp, Ollama, OpenRouter, ...)"
        " as an agent provider"
    )
    env_required = env_dicts(oai.env_required)

    def settings(self) -> OaiSettings:
        return OaiSettings.from_config(self.config)

    def state_dir(self) -> Path:
        return Path(self.state_root or ".") / "providers" / "oai"

    def health(self) -> dict[str, Any]:
        try:
            settings = self.settings()
        except ValueError as exc:
            return {"status": "unhealthy", "last_error": str(exc)}
        if not settings.base_url:
            return {
                "status": "unhealthy",
                "last_error": "base_url is not configured: set "
                "plugins.oai.config.base_url in .animus/config.yaml (or pass OPENAI_BASE_URL)",
            }
        return {
            "status": "healthy",
            "base_url": settings.base_url,
            "model": settings.model,
            "api_key_env": settings.api_key_env,
            "api_key_set": bool(os.environ.get(settings.api_key_env)),
            "last_error": self.last_error,
        }

    def execute(self, request: RunRequest, on_event: OnEvent, cancel: threading.Event) -> RunResult:
        try:
            settings = self.settings()
        except ValueError as exc:
            return RunResult(self.name, error=ProviderError(str(exc)))
        model = request.model or settings.model
        if not settings.base_url or not model:
            missing = "base_url" if not settings.base_url else "model"
            return RunResult(
                self.name,
                error=ProviderError(
                    f"oai: no {missing} configured "
                    f"(plugins.oai.config.{missing} in .animus/config.yaml)"
                ),
            )
        limit = request.timeout or settings.timeout
        client = oai.OaiClient(
            oai.OaiConfig(
                base_url=settings.base_url,
                model=model,
                state_dir=self.state_dir(),
                api_key=os.environ.get(settings.api_key_env) or None,
                timeout=min(limit, oai.OaiConfig.timeout),
                max_retries=settings.max_retries,
            )
        )
        timed_out = threading.Event()

        def forward(event: ProviderEvent) -> None:
            # A new history exists only once its first turn is saved, so its id is not
            # announced before that: a session_file must never name a session that cannot resume.
            if request.session_id or not isinstance(event, SessionStarted):
                on_event(event)

        def expire() -> None:
            timed_out.set()
            cancel.set()

        timer = threading.Timer(limit, expire)
        timer.daemon = True
        timer.start()
        session_id = request.session_id
        try:
            if request.session_id:
                return client.resume(request.session_id, request.full_prompt(), forward, cancel)
            return client.run(request.full_prompt(), request.system_prompt, forward, cancel)
        except oai.OaiRateLimited as exc:
            forward(exc.rate_limited)
            return RunResult(self.name, session_id=session_id, rate_limit=exc.rate_limited)
        except oai.OaiError as exc:
            message = f"oai timed out after {limit:g}s" if timed_out.is_set() else str(exc)
            return RunResult(self.name, session_id=session_id, error=ProviderError(message))
        finally:
            timer.cancel()
