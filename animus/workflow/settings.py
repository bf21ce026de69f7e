"""The workflows service's settings, typed once from its config section."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from animus.errors import InvalidInput
from animus.workflow.git_settings import GitSettings

__all__ = ["WorkflowSettings"]


@dataclass(frozen=True)
class WorkflowSettings:
    state_root: Path
    project_root: Path
    bus_endpoint: str
    control_endpoint: str
    pool_size: int = 2
    interval_secs: float = 5.0
    autonomous: bool = False
    drain_timeout: float = 60.0
    scheduler_kinds: tuple[str, ...] = ("task",)
    runners: dict[str, Any] = field(default_factory=dict)
    remote: dict[str, str] = field(default_factory=dict)  # the Ray runners' endpoints (the token: environment)
    command_env: tuple[str, ...] = ()  # names every command phase gets (commands.env)
    git: GitSettings = field(default_factory=GitSettings)  # worktrees block, delivery flags

    @classmethod
    def from_config(cls, raw: Mapping[str, Any]) -> WorkflowSettings:
        try:
            return cls(
                state_root=Path(raw["state_root"]), project_root=Path(raw["project_root"]),
                bus_endpoint=str(raw["bus_endpoint"]), control_endpoint=str(raw["control_endpoint"]),
                pool_size=int(raw.get("pool_size", 2)), interval_secs=float(raw.get("interval_secs", 5)),
                autonomous=bool(raw.get("autonomous")), drain_timeout=float(raw.get("drain_timeout", 60)),
                scheduler_kinds=tuple(raw.get("scheduler_kinds") or ("task",)),
                runners=dict(raw.get("runners") or {}), remote=dict(raw.get("remote") or {}),
                command_env=tuple(str(n) for n in raw.get("command_env") or ()),
                git=GitSettings.from_plain(raw.get("git")),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise InvalidInput(f"workflows service config: {type(exc).__name__}: {exc}",
                               fix="delete the state/ folder and restart the daemon (it is rebuilt)") from None

    @property
    def ray(self) -> bool:
        return self.runners.get("backend") == "ray"
