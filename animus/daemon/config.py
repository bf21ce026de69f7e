"""Operator configuration of the daemon: ``<project>/.animus/config.yaml``.

    pool_size: 2                 # workflow runs at once (queue beyond it)
    interval_secs: 5             # scheduler tick in autonomous mode
    restart:                     # per-child restart budget
      max_restarts: 5
      initial: 1.0               # first restart at once, then 1 s, 2 s, 4 s …
      factor: 2.0
      cap: 60.0
      healthy_window: 60.0       # up this long and the budget resets
    supervisor: {intensity: 50, period: 10}
    ready_timeout: 10            # seconds a child has to acknowledge its start
    drain_timeout: 60            # daemon stop: how long a running phase may take to finish
    bus: {tcp: ["tcp://127.0.0.1:5570"]}   # extra endpoints for remote publishers (CURVE;
                                 # a non-loopback one needs allow_non_loopback: true)
    plugins:                     # per plugin: extra env to pass, config to send
      oai: {env: [OPENAI_BASE_URL], config: {base_url: "http://127.0.0.1:8000/v1"}}
    runners: {backend: local}    # or ray: see animus/workflow/ray_config.py, docs/ray.md
    transport: {host: 127.0.0.1, port: 7878}
    commands: {env: [CARGO_HOME]}   # passed to every command phase beyond the safe base
    worktrees:                   # what a run's fresh worktree lacks: see docs/worktrees.md
      copy: [.env]
      symlink: [node_modules]
      setup: npm ci

Every key is optional. A bad file stops the daemon with one line naming the
key and what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from animus.errors import InvalidInput
from animus.git.spec import SpecError as WorktreesError
from animus.git.spec import WorktreeSetup, parse_worktree_setup
from animus.supervision.spec import Backoff, SpecError
from animus.workflow.remote.ray_config import RunnersConfigError, is_loopback_host, parse_runners

__all__ = ["DaemonConfig", "load_daemon_config", "CONFIG_FILE", "truthy"]

CONFIG_FILE = ".animus/config.yaml"
_N = TypeVar("_N", int, float)
_KNOWN = {"pool_size", "interval_secs", "restart", "supervisor", "ready_timeout", "bus",
          "plugins", "runners", "transport", "default_subject_kind", "scheduler", "drain_timeout", "commands",
          "worktrees"}


def truthy(value: str | None) -> bool:
    """Kill-switch truth: anything but empty, 0, false, no, off."""
    return bool(value) and str(value).strip().lower() not in ("0", "false", "no", "off")


@dataclass(frozen=True)
class DaemonConfig:
    pool_size: int = 2
    interval_secs: float = 5.0
    restart: Backoff = field(default_factory=Backoff)
    intensity: int = 50
    period: float = 10.0
    ready_timeout: float = 10.0
    drain_timeout: float = 60.0
    bus_tcp: tuple[str, ...] = ()
    plugins: dict[str, dict[str, Any]] = field(default_factory=dict)
    runners: dict[str, Any] = field(default_factory=lambda: {"backend": "local"})
    transport: dict[str, Any] = field(default_factory=dict)
    scheduler_kinds: tuple[str, ...] = ("task",)
    command_env: tuple[str, ...] = ()  # passed from the runner's environment to every command phase
    worktrees: WorktreeSetup = field(default_factory=WorktreeSetup)
    raw: dict[str, Any] = field(default_factory=dict)

    def plugin_env(self, name: str) -> list[str]:
        return [str(v) for v in (self.plugins.get(name) or {}).get("env", [])]

    def plugin_config(self, name: str) -> dict[str, Any]:
        return dict((self.plugins.get(name) or {}).get("config", {}))


def _fail(path: Path, key: str, msg: str) -> InvalidInput:
    return InvalidInput(f"{path}: {key}: {msg}", fix=f"edit {path} (see docs/configuration.md)")


def load_daemon_config(project_root: Path) -> DaemonConfig:
    path = project_root / CONFIG_FILE
    if not path.exists():
        return DaemonConfig()
    raw = _read(path)
    sup = _section(path, raw, "supervisor")
    return DaemonConfig(
        pool_size=_number(path, raw, "pool_size", 2, int, minimum=1),
        interval_secs=_number(path, raw, "interval_secs", 5.0, float, minimum=0.01),
        restart=_restart(path, raw),
        intensity=_number(path, sup, "intensity", 50, int, minimum=1, key="supervisor.intensity"),
        period=_number(path, sup, "period", 10.0, float, minimum=0.01, key="supervisor.period"),
        ready_timeout=_number(path, raw, "ready_timeout", 10.0, float, minimum=0.01),
        drain_timeout=_number(path, raw, "drain_timeout", 60.0, float, minimum=0.0),
        bus_tcp=_bus_tcp(path, _section(path, raw, "bus")),
        plugins=_section(path, raw, "plugins"),
        runners=_runners(path, raw),
        transport=_section(path, raw, "transport"),
        scheduler_kinds=tuple(str(k) for k in (_section(path, raw, "scheduler").get("kinds") or ["task"])),
        command_env=_command_env(path, raw),
        worktrees=_worktrees(path, raw),
        raw=raw,
    )


def _read(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise _fail(path, "file", f"not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise _fail(path, "file", "expected a mapping at the top level")
    unknown = set(raw) - _KNOWN
    if unknown:
        raise _fail(path, sorted(unknown)[0], f"unknown key (known: {', '.join(sorted(_KNOWN))})")
    return raw


def _section(path: Path, raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key) or {}
    if not isinstance(value, dict):
        raise _fail(path, key, f"expected a mapping, got {value!r}")
    return dict(value)


def _number(path: Path, raw: dict[str, Any], name: str, default: _N, kind: type[_N],
            minimum: _N, key: str | None = None) -> _N:
    value = raw.get(name, default)
    try:
        number = kind(value)
    except (TypeError, ValueError):
        number = None
    if number is None or isinstance(value, bool) or number < minimum:
        raise _fail(path, key or name, f"expected a {'whole ' if kind is int else ''}number "
                                       f">= {minimum}, got {value!r}")
    return number


def _restart(path: Path, raw: dict[str, Any]) -> Backoff:
    try:
        return Backoff.from_dict(raw.get("restart"))
    except (TypeError, SpecError) as exc:
        raise _fail(path, "restart", str(exc)) from None


def _bus_tcp(path: Path, bus: dict[str, Any]) -> tuple[str, ...]:
    tcp = bus.get("tcp") or []
    for ep in [tcp] if isinstance(tcp, str) else tcp:
        if not str(ep).startswith("tcp://"):
            raise _fail(path, "bus.tcp", f"expected tcp://host:port, got {ep!r}")
        if not is_loopback_host(str(ep)[len("tcp://"):]) and bus.get("allow_non_loopback") is not True:
            raise _fail(path, "bus.tcp", f"{ep} listens beyond this machine; set bus.allow_non_loopback: true "
                                         "to allow it (clients then need a CURVE key: docs/security.md)")
    return tuple(str(t) for t in ([tcp] if isinstance(tcp, str) else tcp))


def _runners(path: Path, raw: dict[str, Any]) -> dict[str, Any]:
    try:
        return dict(parse_runners(raw.get("runners")))
    except RunnersConfigError as exc:
        raise _fail(path, exc.key, exc.message) from None


def _command_env(path: Path, raw: dict[str, Any]) -> tuple[str, ...]:
    commands = raw.get("commands") or {}
    names = commands.get("env") if isinstance(commands, dict) else None
    if not isinstance(commands, dict) or not isinstance(names or [], list) or \
            not all(isinstance(n, str) and n.isidentifier() for n in names or []):
        raise _fail(path, "commands.env", "expected a list of environment variable names")
    return tuple(names or ())


def _worktrees(path: Path, raw: dict[str, Any]) -> WorktreeSetup:
    try:
        return parse_worktree_setup(raw.get("worktrees"))
    except WorktreesError as exc:
        raise InvalidInput(f"{path}: {exc.message}", fix=exc.fix) from None
