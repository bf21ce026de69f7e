"""``animus daemon backup`` and ``animus daemon restore``: the runbook's backup table, online.

``backup [--dest DIR]`` works while the daemon runs (no stop, no lost run):
one ``.tar.gz`` with a manifest, default folder ``$ANIMUS_HOME/backups``;
``--json`` prints ``{"schema": "animus.daemon.backup.v1", "archive": ...}``.

``restore <archive>`` needs every daemon of the home stopped (exit 4 names
the one running), verifies every checksum before touching anything, and
swaps the parts in by renames (see ``animus.state.restore``), into this
``ANIMUS_HOME`` and this project's scope — the same ones or new ones. Plugins
recorded but missing afterwards come back with ``daemon start --auto-install``.
No control method: both read and write files.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

from animus.cli import context
from animus.cli.output import echo, emit_json
from animus.errors import Conflict, NotFound
from animus.state.scope import Scope

__all__ = ["backup_command", "restore_command", "finish_interrupted_restore"]


def _sources(scope: Scope) -> Any:
    from animus.plugin_runtime.registry import Registry
    from animus.state.backup import BackupSources

    return BackupSources(scope.name, scope.root, scope.project_root, scope.home, scope.plugins_dir,
                         Registry(scope.plugins_dir).path, scope.home / "trusted-signers.yaml")


def backup_command(dest: str | None, as_json: bool) -> int:
    from animus.state.backup import create_backup

    scope = context.scope()
    if not scope.root.is_dir():
        raise NotFound(f"nothing to back up: no state at {scope.root}",
                       fix="run animus in the project you mean (or pass --project-root)")
    folder = Path(dest).expanduser() if dest else scope.home / "backups"
    archive, manifest = create_backup(_sources(scope), folder.resolve())
    size = archive.stat().st_size
    if as_json:
        emit_json("animus.daemon.backup.v1", {"archive": str(archive), "scope": scope.name, "bytes": size,
                                              "files": len(manifest["files"]), "parts": manifest["parts"],
                                              "daemon_running": context.daemon_alive()})
    else:
        parts = ", ".join(p for p, there in manifest["parts"].items() if there)
        echo(f"backup written: {archive}")
        echo(f"  {len(manifest['files'])} files, {size / 1048576:.1f} MiB; parts: {parts}")
    return 0


def _running_daemons(home: Path) -> list[str]:
    """Scopes of this home whose daemon holds its lock."""
    running = []
    for lock in sorted(home.glob("*/daemon/daemon.lock")):
        fd = os.open(lock, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            running.append(lock.parent.parent.name)
        finally:
            os.close(fd)
    return running


def finish_interrupted_restore(scope: Scope) -> None:
    """Complete a restore a crash cut short, before anything reads the home."""
    from animus.state.scope import RESTORE_JOURNAL

    if not (scope.home / RESTORE_JOURNAL).exists():
        return  # the everyday case: daemon start need not import the restore machinery
    from animus.state.restore import finish_interrupted

    if finish_interrupted(scope.home):
        from animus.cli.output import err

        err(f"finished a restore that was interrupted ({scope.home / RESTORE_JOURNAL})")


def restore_command(archive_arg: str, as_json: bool) -> int:
    from animus.plugin_runtime.registry import Registry, rebase_record
    from animus.state.restore import RestoreTargets, commit, read_verified, stage_restore

    scope = context.scope()
    archive = Path(archive_arg).expanduser().resolve()
    running = _running_daemons(scope.home)
    if running:
        here = scope.name in running
        raise Conflict(f"the daemon of scope {running[0]} is running; restore needs it stopped",
                       fix=("animus daemon stop" if here else f"stop the daemon of {running[0]}")
                       + f", then animus daemon restore {archive}")
    finish_interrupted_restore(scope)
    manifest = read_verified(archive)
    record = Registry(scope.plugins_dir).path
    targets = RestoreTargets(scope.home, scope.root, scope.project_root, scope.plugins_dir, record,
                             scope.home / "trusted-signers.yaml")
    staged = stage_restore(archive, manifest, targets)
    if "home/plugins.yaml" in staged:  # entries point into the plugins folder of the backed-up home
        rebase_record(staged["home/plugins.yaml"], str(manifest["plugins_dir"]), scope.plugins_dir)
    commit(scope.home, staged, targets)
    restored = sorted(staged)
    if as_json:
        emit_json("animus.daemon.restore.v1", {"archive": str(archive), "from_scope": manifest["scope"],
                                               "scope": scope.name, "state_root": str(scope.root),
                                               "restored": restored, "created_at": manifest["created_at"]})
    else:
        echo(f"restored {archive.name} (scope {manifest['scope']}, {manifest['created_at']}) into {scope.root}")
        echo(f"  parts: {', '.join(restored)}")
        echo("next: animus daemon start --autonomous --auto-install")
    return 0
