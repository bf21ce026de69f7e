"""Plugin manifests (``animus-plugin.yaml``): what a plugin is and how to start it.

    name: subject-default
    role: subject              # provider | subject | trigger | transport | web-ui | log-storage
    version: 0.5.0
    protocol: 1.0.0
    description: Tasks kept in the scoped workflow.db
    command: ["{python}", "-m", "animus.plugins.subjects.default"]
    env_required: [{name: ANTHROPIC_API_KEY, description: ..., sensitive: true}]
    kinds: [task]              # subjects only

``{python}`` is the daemon's interpreter and ``{plugin_dir}`` the folder the
manifest was installed into. A bad manifest is one line naming the file, the
field and what to do.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from animus.errors import InvalidInput
from animus.plugin_runtime.protocol import PROTOCOL_VERSION, ROLES, compatible
from animus.state.files import file_identity

__all__ = ["Manifest", "load_manifest", "parse_manifest", "MANIFEST_FILE", "BASE_ENV", "check_name"]

MANIFEST_FILE = "animus-plugin.yaml"
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: every listing reads them all
BASE_ENV = ("PATH", "HOME", "USER", "SHELL", "TERM", "TMPDIR", "LANG", "LC_ALL", "TZ")
# a plugin's name is a folder name under the plugins folder: one path component, nothing else
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def check_name(name: str, where: str) -> str:
    """Refuse a name that is not one safe path component (``../x``, ``/etc``, ``A B``)."""
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidInput(f"{where}: plugin name {name!r} is not allowed: use 1-64 characters of a-z, 0-9, "
                           "'.', '_' or '-', starting with a letter or digit",
                           fix="rename the plugin in its animus-plugin.yaml")
    return name


@dataclass(frozen=True)
class EnvVar:
    name: str
    description: str = ""
    required: bool = True
    sensitive: bool = False


@dataclass(frozen=True)
class Manifest:
    name: str
    role: str
    version: str
    command: tuple[str, ...]
    protocol: str = PROTOCOL_VERSION
    description: str = ""
    env_required: tuple[EnvVar, ...] = ()
    kinds: tuple[str, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)
    plugin_dir: Path | None = None

    def argv(self) -> list[str]:
        subs = {"{python}": sys.executable, "{plugin_dir}": str(self.plugin_dir or "")}
        out = []
        for part in self.command:
            for key, value in subs.items():
                part = part.replace(key, value)
            out.append(part)
        return out

    def missing_env(self, env: dict[str, str] | None = None) -> list[str]:
        env = dict(os.environ) if env is None else env
        return [v.name for v in self.env_required if v.required and not env.get(v.name)]

    def plugin_env(self, source: dict[str, str], passthrough: list[str] | tuple[str, ...] = ()) -> dict[str, str]:
        """Only the declared environment, plus the safe base and the operator's passthrough."""
        names = set(BASE_ENV) | {v.name for v in self.env_required} | set(passthrough)
        return {k: v for k, v in source.items() if k in names}

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "role": self.role, "version": self.version,
            "protocol": self.protocol, "description": self.description,
            "command": list(self.command), "kinds": list(self.kinds),
            "env_required": [vars(v) for v in self.env_required],
        }


def _bad(where: str, msg: str) -> InvalidInput:
    return InvalidInput(f"{where}: {msg}", fix="correct the plugin manifest or reinstall the plugin")


def parse_manifest(raw: Any, where: str, plugin_dir: Path | None = None) -> Manifest:
    if not isinstance(raw, dict):
        raise _bad(where, "manifest is not a mapping")
    for key in ("name", "role", "version", "command"):
        if key not in raw:
            raise _bad(where, f"missing required field {key!r}")
    check_name(str(raw["name"]), where)
    role = str(raw["role"]).replace("_backend", "").replace("_", "-")
    if role not in ROLES:
        raise _bad(where, f"role {raw['role']!r} is not one of {', '.join(ROLES)}")
    command = raw["command"]
    if isinstance(command, str):
        command = command.split()
    if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
        raise _bad(where, "command must be a non-empty list of strings (argv)")
    protocol = str(raw.get("protocol") or raw.get("protocol_version") or PROTOCOL_VERSION)
    env_required = []
    for item in raw.get("env_required") or []:
        if isinstance(item, str):
            env_required.append(EnvVar(item))
        elif isinstance(item, dict) and isinstance(item.get("name"), str):
            env_required.append(EnvVar(item["name"], str(item.get("description", "")),
                                       bool(item.get("required", True)), bool(item.get("sensitive", False))))
        else:
            raise _bad(where, f"env_required entry {item!r} needs a name")
    kinds = raw.get("kinds") or raw.get("subject_kinds") or []
    if role == "subject" and not kinds:
        raise _bad(where, "a subject plugin must declare the kinds it owns")
    if any("/" in str(k) for k in kinds):
        raise _bad(where, "kind names must not contain '/'")
    return Manifest(
        name=str(raw["name"]), role=role, version=str(raw["version"]), command=tuple(command),
        protocol=protocol, description=str(raw.get("description", "")),
        env_required=tuple(env_required), kinds=tuple(str(k) for k in kinds),
        config=dict(raw.get("config") or {}), plugin_dir=plugin_dir,
    )


# parsed YAML by (path, inode, size, mtime): the daemon's start and every listing read all manifests,
# several times over; a changed file is read again
_RAW: dict[tuple[Path, int, int, int], Any] = {}


def _read_raw(path: Path) -> Any:
    key = (path, *file_identity(path))
    if key not in _RAW:
        if len(_RAW) > 512:
            _RAW.clear()
        _RAW[key] = yaml.load(path.read_text(), Loader=_LOADER)
    return _RAW[key]


def load_manifest(path: Path) -> Manifest:
    """Load ``path`` (a manifest file or the folder holding one)."""
    if path.is_dir():
        path = path / MANIFEST_FILE
    try:
        raw = _read_raw(path)
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no plugin manifest ({MANIFEST_FILE})",
                           fix="point at a plugin folder that holds animus-plugin.yaml") from None
    except yaml.YAMLError as exc:
        raise _bad(str(path), f"not valid YAML ({str(exc).splitlines()[0]})") from None
    manifest = parse_manifest(raw, str(path), path.parent)
    if not compatible(manifest.protocol):
        raise _bad(str(path), f"protocol {manifest.protocol} is not compatible with "
                   f"this daemon's {PROTOCOL_VERSION} (major versions differ)")
    return manifest
