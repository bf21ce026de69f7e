"""The agent CLIs as providers: one plugin class, parametrised by a vendor engine module.

``CliProviderPlugin`` checks the operator's config (``CliSettings``), builds the
CLI's argv through the vendor module (``claude``, ``codex``, ``gemini``,
``opencode``: each ``engine.build_argv``) and runs it under ``run_cli``'s process
rules in the run's working directory.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from animus.plugins.providers.base import (
    DEFAULT_TIMEOUT,
    OnEvent,
    ProviderPlugin,
    config_error,
    timeout_of,
)
from animus.plugins.providers.cli_process import OWNER_ENV, cached_version, owner_token, run_cli, version_due
from animus.plugins.providers.events import EnvVar, ProviderError, RunResult, StreamParser
from animus.plugins.providers.launch import Launch
from animus.plugins.providers.run_contract import RunRequest
from animus.plugins.providers.workspace import fingerprint
from animus.errors import InvalidInput
from animus.mcp.tools import TOOL_NAMES
from animus.plugin_runtime import protocol as p
from animus.workflow.mcp_servers import McpServer, RunBinding, bind
from animus.workflow.permissions import AgentPermissions

__all__ = ["CliProviderPlugin", "CliSettings", "CliVendor"]

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

    def launch(self, permissions: AgentPermissions, env: Mapping[str, str], scratch: Path,
               servers: Sequence[McpServer] = ()) -> Launch:
        """The CLI's own flags and environment for these permissions, MCP servers and gateway variables."""
        ...

    @property
    def StreamParser(self) -> Callable[[], StreamParser]: ...  # the module's parser class



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
            raise config_error(name, "binary", f"must be a path or a command name, got {binary!r}")
        extra = config.get("extra_args") or []
        if (
            isinstance(extra, str)
            or not isinstance(extra, list)
            or not all(isinstance(a, str) for a in extra)
        ):
            raise config_error(name, "extra_args", f"must be a list of strings, got {extra!r}")
        model = config.get("model")
        if model is not None and not isinstance(model, str):
            raise config_error(name, "model", f"must be a string, got {model!r}")
        return cls(
            os.path.expanduser(binary), model or None, tuple(extra), timeout_of(config, name)
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

    @property
    def health_blocks(self) -> bool:  # type: ignore[override]
        """health() is the settings, a PATH lookup and the CLI's version: cheap (answered on the event
        loop and in each pong) unless the version must be probed (``<cli> --version``, seconds for some
        CLIs: the binary changed, or the last answer is old), which then runs in a handler thread."""
        try:
            path = shutil.which(self.settings().binary)
        except ValueError:
            return False
        return path is not None and version_due(path)

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
        version = cached_version(path, VERSION_PROBE_SECS)
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
        env = self._cli_env(request) | {"PWD": cwd}  # opencode takes its directory from $PWD
        scratch = Path(self.state_root or tempfile.gettempdir()) / "providers" / self.name / request.run_key.replace("/", "_")
        try:
            launch = self._launch(request, env, scratch)
            if isinstance(launch, RunResult):
                return launch
            argv = self.vendor.build_argv(
                settings.binary,
                request.full_prompt(),
                request.model or settings.model,
                request.session_id,
                request.system_prompt,
                [*launch.args, *settings.extra_args],
            )
            before = fingerprint(cwd)
            result = run_cli(
                argv,
                cwd,
                env | launch.env,
                request.timeout or settings.timeout,
                on_event,
                self.vendor.StreamParser(),
                cancel=cancel,
            )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        post_run = getattr(self.vendor, "post_run", None)  # what the CLI's stdout leaves out
        if post_run is not None:
            seen = len(result.denials)
            result = post_run(result, env | launch.env)
            for denial in result.denials[seen:]:
                on_event(denial)
        after = fingerprint(cwd) if before is not None else None
        return dataclasses.replace(result, workspace_changed=None if after is None else before != after)

    def _launch(self, request: RunRequest, env: Mapping[str, str], scratch: Path) -> Launch | RunResult:
        """The vendor's flags and environment for the run's permissions and MCP servers, bound to this run
        (``animus`` becomes ``animus mcp serve`` for this project, with the run's task and workflow ids)."""
        run = RunBinding(self.project_root, sys.executable, request.task_id, request.workflow_id,
                         os.environ.get("ANIMUS_HOME") or None, TOOL_NAMES)
        try:
            return self.vendor.launch(request.permissions, env, scratch, bind(request.mcp_servers, run))
        except ValueError as exc:
            return RunResult(self.name, error=ProviderError(str(exc)))
        except InvalidInput as exc:  # a tools prefix that matches none of animus's tools
            return RunResult(self.name, error=ProviderError(exc.one_line()))

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


