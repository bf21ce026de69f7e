"""Online backup: one archive of everything the runbook's backup table lists, daemon running.

The runbook's snapshot script stops the daemon to quiesce writers. This does
not need to: ``workflow.db`` is copied through SQLite's online backup API (a
read transaction: a consistent snapshot while runs keep writing, in WAL mode
they are not even blocked), an append-only log is cut at its last complete
line, and everything else is written atomically by the daemon anyway.

The archive (``.tar.gz``) holds ``manifest.json`` first — versions, scope,
where each part came from, and the sha256, size and mode of every file — then
``scope/`` (the state root without sockets, locks, git worktrees and the
SQLite side files), ``project/.animus/``, and ``home/plugins/``,
``home/plugins.yaml``, ``home/trusted-signers.yaml``. Each file is copied once
into a private staging folder, hashed there and archived from there, so the
checksum is of the bytes in the archive. The archive appears under its final
name only when complete (write, fsync, rename).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

from animus import __version__
from animus.errors import Internal

__all__ = ["BackupSources", "create_backup", "MANIFEST_SCHEMA", "MANIFEST_NAME", "SCOPE_EXCLUDED", "sha256_file",
           "sha256_stream"]

MANIFEST_SCHEMA = "animus.backup.manifest.v1"
MANIFEST_NAME = "manifest.json"
# not state: sockets, the daemon's lock/pids/log, git worktrees (they belong to the repository),
# and the database with its side files (the online backup copies it whole)
SCOPE_EXCLUDED = ("run", "daemon", "daemon.pid", "worktrees", "workflow.db", "workflow.db-wal",
                  "workflow.db-shm", "workflow.db-journal")


@dataclass(frozen=True)
class BackupSources:
    scope_name: str
    state_root: Path
    project_root: Path
    home: Path
    plugins_dir: Path
    plugins_record: Path
    trusted_signers: Path


def sha256_stream(fh: BinaryIO | IO[bytes]) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: fh.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    with open(path, "rb") as fh:
        return sha256_stream(fh)


def _copy_db(src: Path, dest: Path) -> None:
    """SQLite's online backup, in one step: one read snapshot, writers not blocked (WAL)."""
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True, timeout=30)
    target = sqlite3.connect(dest)
    try:
        source.backup(target)
        ok = target.execute("PRAGMA quick_check").fetchone()[0]
    finally:
        target.close()
        source.close()
    if ok != "ok":
        raise Internal(f"the backup copy of {src} fails SQLite's quick_check: {ok}",
                       fix=f"check the database: sqlite3 {src} 'PRAGMA integrity_check'")


def _copy_file(src: Path, dest: Path) -> None:
    """Copy what is there now; a log still being appended to is cut at its last whole line."""
    size = src.stat().st_size
    with open(src, "rb") as fh, open(dest, "wb") as out:
        data = fh.read(size)
        if src.name.endswith(".jsonl") and data and not data.endswith(b"\n"):
            data = data[:data.rfind(b"\n") + 1]
        out.write(data)
    shutil.copymode(src, dest)


def _copy_tree(src: Path, dest: Path, excluded: tuple[str, ...] = ()) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for item in sorted(src.iterdir()):
        if item.name in excluded or item.is_symlink():
            continue
        if item.is_dir():
            _copy_tree(item, dest / item.name)
        elif item.is_file():
            try:
                _copy_file(item, dest / item.name)
            except FileNotFoundError:
                continue  # removed while we looked (a finished run's session file)


def _stage(src: BackupSources, stage: Path) -> dict[str, bool]:
    """Copy every part into ``stage`` in archive layout; return which parts there were."""
    scope = stage / "scope"
    _copy_tree(src.state_root, scope, SCOPE_EXCLUDED)
    if (src.state_root / "workflow.db").exists():
        _copy_db(src.state_root / "workflow.db", scope / "workflow.db")
    (scope / ".project-root").unlink(missing_ok=True)  # rewritten for the project it is restored into
    parts = {"scope": True}
    animus_dir = src.project_root / ".animus"
    parts["project"] = animus_dir.is_dir()
    if parts["project"]:
        _copy_tree(animus_dir, stage / "project" / ".animus")
    parts["plugins"] = src.plugins_dir.is_dir()
    if parts["plugins"]:
        _copy_tree(src.plugins_dir, stage / "home" / "plugins", (".plugins.lock",))
    for part, path, name in (("plugins_record", src.plugins_record, "plugins.yaml"),
                             ("trusted_signers", src.trusted_signers, "trusted-signers.yaml")):
        parts[part] = path.is_file()
        if parts[part]:
            (stage / "home").mkdir(exist_ok=True)
            _copy_file(path, stage / "home" / name)
    return parts


def _inventory(stage: Path) -> tuple[list[dict[str, Any]], list[str]]:
    files, dirs = [], []
    for path in sorted(stage.rglob("*")):
        rel = path.relative_to(stage).as_posix()
        if path.is_dir():
            dirs.append(rel)
        else:
            files.append({"path": rel, "sha256": sha256_file(path), "size": path.stat().st_size,
                          "mode": path.stat().st_mode & 0o777})
    return files, dirs


def create_backup(src: BackupSources, dest_dir: Path) -> tuple[Path, dict[str, Any]]:
    """Write the archive into ``dest_dir``; return its path and its manifest."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    archive = dest_dir / f"animus-backup-{src.scope_name}-{stamp}.tar.gz"
    stage = Path(tempfile.mkdtemp(prefix=".animus-backup-", dir=dest_dir))
    partial = dest_dir / f".{archive.name}.partial"
    try:
        os.chmod(stage, 0o700)
        parts = _stage(src, stage / "data")
        files, dirs = _inventory(stage / "data")
        manifest = {
            "schema": MANIFEST_SCHEMA, "created_at": stamp, "animus_version": __version__,
            "python": sys.version.split()[0], "sqlite": sqlite3.sqlite_version,
            "scope": src.scope_name, "state_root": str(src.state_root), "project_root": str(src.project_root),
            "animus_home": str(src.home), "plugins_dir": str(src.plugins_dir), "parts": parts,
            "dirs": dirs, "files": files,
        }
        (stage / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds secrets
        with os.fdopen(fd, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w:gz") as tar:
                tar.add(stage / MANIFEST_NAME, MANIFEST_NAME)
                for rel in dirs:
                    tar.add(stage / "data" / rel, rel, recursive=False)
                for item in files:
                    tar.add(stage / "data" / item["path"], item["path"], recursive=False)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, archive)
    finally:
        partial.unlink(missing_ok=True)
        shutil.rmtree(stage, ignore_errors=True)
    return archive, manifest
