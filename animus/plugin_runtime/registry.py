"""The installed-plugin record: ``~/.animus/plugins.yaml``, beside the ``plugins/`` folder.

One entry per installed plugin: source, version, role, sha256 of what was
installed, signature status, install time. Every write is atomic (temp file,
fsync, rename) under an exclusive lock, so concurrent installs and a crash
mid-write never leave a torn or half-merged record.

The record sits beside the folder, named after it (``plugins.yaml`` for
``plugins/``), where the runbook's backup script tars it from. Versions up to
0.5.0 kept it inside the folder; the first use moves it (under the lock).
It is read with libyaml when present: every plugin call in the daemon looks
a plugin up here, and the pure-Python parser takes ~10x as long.
"""

from __future__ import annotations

import copy
import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from animus.errors import InvalidInput
from animus.plugin_runtime.manifest import Manifest, load_manifest
from animus.state.files import atomic_write, file_identity

__all__ = ["Registry", "InstalledPlugin", "atomic_write", "rebase_record"]

SCHEMA = "animus.plugins.v1"
LEGACY_NAME = "plugins.yaml"  # inside the folder, before 0.5.1
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_PARSED: dict[Path, tuple[tuple[int, int, int], dict[str, Any]]] = {}  # path -> (stat stamp, its content)


@dataclass(frozen=True)
class InstalledPlugin:
    name: str
    entry: dict[str, Any]
    manifest: Manifest | None
    error: str | None = None

    @property
    def role(self) -> str:
        return self.manifest.role if self.manifest else str(self.entry.get("role", "?"))

    @property
    def signature(self) -> str:
        sig = self.entry.get("signature") or {}
        return str(sig.get("status", "unverified")) if isinstance(sig, dict) else str(sig)


def _manifest_path(entry: dict[str, Any]) -> Path:
    """A first-party plugin runs the manifest shipped with this animus; others their installed copy."""
    source = str(entry.get("source", ""))
    if source.startswith("builtin:"):
        from animus.plugin_runtime.catalog import builtin_catalog

        shipped = builtin_catalog().get(source.removeprefix("builtin:"))
        if shipped is not None:
            return shipped
    return Path(entry["path"])


class Registry:
    def __init__(self, plugins_dir: Path) -> None:
        self.dir = plugins_dir
        self.path = plugins_dir.parent / f"{plugins_dir.name}.yaml"
        self.legacy_path = plugins_dir / LEGACY_NAME

    @contextmanager
    def _lock(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".plugins.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    @contextmanager
    def locked(self) -> Iterator[dict[str, Any]]:
        """Read-modify-write under an exclusive lock; the dict is written back."""
        with self._lock():
            self._migrate_locked()
            data = self._read()
            yield data
            atomic_write(self.path, yaml.safe_dump(data, sort_keys=True).encode())

    def _migrate_locked(self) -> None:
        """Move a record left inside the folder by an older version to its place beside it."""
        if self.path.exists() or not self.legacy_path.exists():
            return
        atomic_write(self.path, self.legacy_path.read_bytes())
        self.legacy_path.unlink()

    def _read(self) -> dict[str, Any]:
        try:
            stamp = file_identity(self.path)
        except FileNotFoundError:
            if not self.legacy_path.exists():
                return {"schema": SCHEMA, "plugins": {}}
            with self._lock():
                self._migrate_locked()
            stamp = file_identity(self.path)
        # parsed once per version of the file (every write replaces it: a new inode), ~1 ms a read
        cached = _PARSED.get(self.path)
        if cached is not None and cached[0] == stamp:
            return copy.deepcopy(cached[1])
        data = self._parse()
        _PARSED[self.path] = (stamp, copy.deepcopy(data))
        return data

    def _parse(self) -> dict[str, Any]:
        try:
            data = yaml.load(self.path.read_text(), Loader=_LOADER) or {}
        except yaml.YAMLError as exc:
            raise InvalidInput(f"{self.path}: not valid YAML ({str(exc).splitlines()[0]})",
                               fix="restore it from a backup or remove it and run animus plugin install-defaults") from None
        if not isinstance(data, dict) or not isinstance(data.get("plugins", {}), dict):
            raise InvalidInput(f"{self.path}: expected a mapping with a 'plugins' map",
                               fix="restore it from a backup or reinstall the plugins")
        data.setdefault("schema", SCHEMA)
        data.setdefault("plugins", {})
        return data

    def entries(self) -> dict[str, dict[str, Any]]:
        return dict(self._read()["plugins"])

    def installed(self) -> list[InstalledPlugin]:
        out = []
        for name, entry in sorted(self.entries().items()):
            try:
                manifest = load_manifest(_manifest_path(entry))
                out.append(InstalledPlugin(name, entry, manifest))
            except Exception as exc:
                msg = exc.one_line() if hasattr(exc, "one_line") else str(exc)
                out.append(InstalledPlugin(name, entry, None, msg))
        return out

    def get(self, name: str) -> InstalledPlugin | None:
        for plugin in self.installed():
            if plugin.name == name:
                return plugin
        return None

    def record(self, manifest: Manifest, path: Path, source: str, sha256: str,
               signature: dict[str, Any]) -> dict[str, Any]:
        entry = {
            "name": manifest.name, "role": manifest.role, "version": manifest.version,
            "source": source, "path": str(path), "sha256": sha256, "signature": signature,
            "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "kinds": list(manifest.kinds),
        }
        with self.locked() as data:
            data["plugins"][manifest.name] = entry
        return entry

    def remove(self, name: str) -> dict[str, Any] | None:
        with self.locked() as data:
            return data["plugins"].pop(name, None)  # type: ignore[no-any-return]


def rebase_record(record: Path, old_dir: str, new_dir: Path) -> None:
    """Point entries installed under ``old_dir`` into ``new_dir`` (a record restored into another home)."""
    data = yaml.load(record.read_text(), Loader=_LOADER) or {}
    old = old_dir.rstrip("/")
    for entry in (data.get("plugins") or {}).values():
        path = str(entry.get("path", ""))
        if path == old or path.startswith(old + "/"):
            entry["path"] = str(new_dir / path[len(old):].lstrip("/"))
    atomic_write(record, yaml.safe_dump(data, sort_keys=True).encode())
