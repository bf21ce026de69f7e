"""The config a child supervisor is started with, typed at its edge.

The root writes it (``state/supervisors/<name>.json``); the child reads it
once with ``ChildConfig.from_dict`` and nothing past this module sees a raw
dict. ``service`` names the supervisor's own logic (``module:factory``, see
``supervision.service``) and ``service_config`` is that logic's section,
opaque here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from animus.errors import InvalidInput
from animus.supervision.spec import Backoff, ChildSpec, Restart, Strategy, SupervisorFlags, Timeout

__all__ = ["ChildConfig", "spec_from_dict"]


def spec_from_dict(raw: dict[str, Any], role: str) -> ChildSpec:
    return ChildSpec(
        id=raw["id"],
        start={"argv": raw["argv"], "env": _env(raw), "cwd": raw.get("cwd")},
        restart=Restart(raw.get("restart", "permanent")),
        shutdown=Timeout(float(raw.get("shutdown", 5.0))),
        role=role,
        backoff=Backoff.from_dict(raw.get("backoff")),
    )


@dataclass(frozen=True)
class ChildConfig:
    name: str
    role: str
    tree_endpoint: str
    plugin_endpoint: str
    bus_endpoint: str
    control_endpoint: str
    project_root: str
    state_root: str
    flags: SupervisorFlags
    ready_timeout: float = 10.0
    disabled: frozenset[str] = frozenset()
    children: tuple[dict[str, Any], ...] = ()
    preload: tuple[str, ...] = ()
    # the zygote is exec'd with ``preload`` alone instead of forked from this supervisor: for workers
    # forked once per job (workflow runners), whose every fork and exit pays for each page mapped
    lean_zygote: bool = False
    service: str | None = None
    service_config: dict[str, Any] = field(default_factory=dict)
    hold: bool = False  # prepare, say "held", start children and service only on the root's "go"

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ChildConfig:
        try:
            flags = SupervisorFlags(Strategy(raw.get("strategy", "one_for_one")),
                                    int(raw.get("intensity", 50)), float(raw.get("period", 10)))
            return cls(
                name=str(raw["name"]), role=str(raw["role"]), tree_endpoint=str(raw["tree_endpoint"]),
                plugin_endpoint=str(raw["plugin_endpoint"]), bus_endpoint=str(raw["bus_endpoint"]),
                control_endpoint=str(raw["control_endpoint"]), project_root=str(raw["project_root"]),
                state_root=str(raw["state_root"]), flags=flags,
                ready_timeout=float(raw.get("ready_timeout", 10)),
                disabled=frozenset(raw.get("disabled") or ()), children=tuple(raw.get("children") or ()),
                preload=tuple(raw.get("preload") or ()), lean_zygote=bool(raw.get("lean_zygote")),
                service=raw.get("service"),
                service_config=dict(raw.get("service_config") or {}), hold=bool(raw.get("hold")),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise InvalidInput(f"child supervisor config: {type(exc).__name__}: {exc}",
                               fix="delete the state/ folder and restart the daemon (it is rebuilt)") from None

    def specs(self) -> list[ChildSpec]:
        return [spec_from_dict(c, self.role) for c in self.children]

    def child_roles(self) -> dict[str, str]:
        return {c["id"]: c.get("role", self.role) for c in self.children}

    def plugin_configs(self) -> dict[str, dict[str, Any]]:
        return {c["id"]: c.get("config", {}) for c in self.children}


def _env(raw: dict[str, Any]) -> dict[str, str]:
    """The config file names the variables; their values come from our environment (secrets never on disk)."""
    env = {k: os.environ[k] for k in raw.get("env_names", []) if k in os.environ}
    return env | dict(raw.get("env_set", {})) | dict(raw.get("env", {}))
