"""The ``runners`` block of ``.animus/config.yaml``, checked at daemon start.

    runners:
      backend: ray                  # local (default: runner subprocesses of the
                                    # workflows supervisor) or ray
      ray:
        address: 10.0.0.5:6379      # the cluster's GCS; "auto" = the cluster of this node
        namespace: animus
        num_cpus_per_run: 1         # Ray resources one run holds while it runs
        resources: {animus: 1}      # extra custom resources (placement)
        daemon_address: 10.0.0.2    # an IP of the daemon's host that the nodes reach:
                                    # the bus input and the control socket bind there
        allow_non_loopback: true    # required for a daemon_address that is not loopback
        repository: git@host:org/repo.git   # where nodes get the code (default: the
                                    # project's "origin" remote, else its path)
        branch: main                # when the task names none (default: the current branch)
        work_dir: ~/.animus/ray-work   # on each node: mirror and per-run worktrees
        heartbeat_secs: 5
        heartbeat_timeout_secs: 30  # a run silent this long is lost
        placement_timeout_secs: 600 # a run not placed this long, that no alive node
                                    # has the resources for, is blocked

Nothing here imports Ray: a daemon on the ``local`` backend never needs it,
and one configured for ``ray`` without it fails at start with the install
command (:func:`require_ray`).
"""

from __future__ import annotations

import importlib.util
import ipaddress
from dataclasses import asdict, dataclass, field
from typing import Any

from animus.errors import Unavailable

__all__ = [
    "INSTALL_RAY",
    "RayRunnersConfig",
    "RunnersConfigError",
    "is_loopback_host",
    "parse_runners",
    "require_ray",
]

INSTALL_RAY = "pip install 'animus[ray]'"
_KEYS = {"address", "namespace", "num_cpus_per_run", "resources", "daemon_address", "repository", "branch",
         "work_dir", "heartbeat_secs", "heartbeat_timeout_secs", "placement_timeout_secs", "allow_non_loopback"}


class RunnersConfigError(ValueError):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


@dataclass(frozen=True)
class RayRunnersConfig:
    address: str = "auto"
    namespace: str = "animus"
    num_cpus_per_run: float = 1.0
    resources: dict[str, float] = field(default_factory=dict)
    daemon_address: str = "127.0.0.1"
    repository: str | None = None
    branch: str | None = None
    work_dir: str = "~/.animus/ray-work"
    heartbeat_secs: float = 5.0
    heartbeat_timeout_secs: float = 30.0
    placement_timeout_secs: float = 600.0
    allow_non_loopback: bool = False

    @classmethod
    def from_dict(cls, raw: Any) -> RayRunnersConfig:
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise RunnersConfigError("runners.ray", "expected a mapping")
        unknown = sorted(set(raw) - _KEYS)
        if unknown:
            raise RunnersConfigError(f"runners.ray.{unknown[0]}", f"unknown key (known: {', '.join(sorted(_KEYS))})")
        values: dict[str, Any] = {}
        for key in ("address", "namespace", "repository", "branch", "work_dir"):
            if raw.get(key) is not None:
                if not isinstance(raw[key], str) or not raw[key].strip():
                    raise RunnersConfigError(f"runners.ray.{key}", f"expected a non-empty string, got {raw[key]!r}")
                values[key] = raw[key].strip()
        for key in ("num_cpus_per_run", "heartbeat_secs", "heartbeat_timeout_secs", "placement_timeout_secs"):
            if raw.get(key) is not None:
                values[key] = _positive(f"runners.ray.{key}", raw[key], allow_zero=key == "num_cpus_per_run")
        resources = raw.get("resources") or {}
        if not isinstance(resources, dict):
            raise RunnersConfigError("runners.ray.resources", "expected a mapping of resource name to amount")
        values["resources"] = {str(k): _positive(f"runners.ray.resources.{k}", v) for k, v in resources.items()}
        if raw.get("daemon_address") is not None:
            try:
                values["daemon_address"] = str(ipaddress.IPv4Address(str(raw["daemon_address"])))
            except ValueError:
                raise RunnersConfigError("runners.ray.daemon_address",
                                         f"expected an IPv4 address of this host, got {raw['daemon_address']!r}") from None
        if raw.get("allow_non_loopback") is not None:
            if not isinstance(raw["allow_non_loopback"], bool):
                raise RunnersConfigError("runners.ray.allow_non_loopback", "expected true or false")
            values["allow_non_loopback"] = raw["allow_non_loopback"]
        cfg = cls(**values)
        if not is_loopback_host(cfg.daemon_address) and not cfg.allow_non_loopback:
            raise RunnersConfigError("runners.ray.daemon_address",
                                     f"{cfg.daemon_address} is not a loopback address, so the runners' bus input "
                                     "and control socket would listen on the network; set "
                                     "runners.ray.allow_non_loopback: true to allow it (docs/security.md)")
        if cfg.heartbeat_timeout_secs < 2 * cfg.heartbeat_secs:
            raise RunnersConfigError("runners.ray.heartbeat_timeout_secs",
                                     f"must be at least twice heartbeat_secs ({cfg.heartbeat_secs:g})")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _positive(key: str, value: Any, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (value == 0 and not allow_zero):
        raise RunnersConfigError(key, f"expected a positive number, got {value!r}")
    return float(value)


def parse_runners(raw: Any) -> dict[str, Any]:
    """Validate the ``runners`` block; return it normalised (``ray`` filled with defaults)."""
    if raw is None:
        return {"backend": "local"}
    if not isinstance(raw, dict):
        raise RunnersConfigError("runners", "expected a mapping")
    backend = raw.get("backend", "local")
    if backend not in ("local", "ray"):
        raise RunnersConfigError("runners.backend", f"expected local or ray, got {backend!r}")
    unknown = sorted(set(raw) - {"backend", "ray"})
    if unknown:
        raise RunnersConfigError(f"runners.{unknown[0]}", "unknown key (known: backend, ray)")
    out: dict[str, Any] = {"backend": backend}
    if backend == "ray" or raw.get("ray") is not None:
        out["ray"] = RayRunnersConfig.from_dict(raw.get("ray")).to_dict()
    return out


def require_ray() -> None:
    """Fail the daemon's start when the ``ray`` backend is chosen without Ray installed."""
    try:
        spec = importlib.util.find_spec("ray")
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise Unavailable("runners.backend is ray, but Ray is not installed in this Python",
                          fix=f"{INSTALL_RAY}, or set runners.backend: local in .animus/config.yaml")


def is_loopback_host(address: str) -> bool:
    """True for ``127.0.0.1:6379``, ``localhost:6379``, ``[::1]:6379`` …"""
    host = address.rsplit(":", 1)[0].strip("[]") if ":" in address else address
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
