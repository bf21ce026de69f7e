"""Restore a backup archive: verify everything, stage everything, then swap by renames.

Order, so that a home is never half-restored:

1. **verify** — the manifest is read first; every member must be a plain file
   or folder under ``scope/``, ``project/.animus/`` or ``home/``, listed in the
   manifest, with the listed size and sha256; every listed file must be there.
   A damaged archive changes nothing.
2. **stage** — each part is extracted beside its target (same file system,
   so the swap is a rename): ``.<name>.restore-<id>``.
3. **journal** — ``<home>/restore-journal.json`` lists the swaps, written
   atomically once every part is staged.
4. **swap** — per part: target → ``.<name>.old-<id>``, staged → target; then
   the journal and the old copies are removed.

A restore killed during the swap is finished by the next ``restore`` or
``daemon start`` (``finish_interrupted``): every staged part was verified
before the journal existed, so rolling forward is always right. Parts the
backup does not have (no ``.animus/`` then, no custom trusted signers) are
left as they are. The git worktrees of runs are not in a backup (they belong
to the repository); the ones under the target scope are carried over.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from animus.errors import InvalidInput, NotFound
from animus.state.backup import MANIFEST_NAME, MANIFEST_SCHEMA, sha256_stream
from animus.state.files import atomic_json
from animus.state.scope import RESTORE_JOURNAL

__all__ = ["RestoreTargets", "read_verified", "stage_restore", "commit", "finish_interrupted", "JOURNAL"]

JOURNAL = RESTORE_JOURNAL
_PREFIXES = ("scope", "project/.animus", "home/plugins", "home/plugins.yaml", "home/trusted-signers.yaml")
CARRIED_OVER = ("worktrees", "daemon")  # kept from the scope being replaced


@dataclass(frozen=True)
class RestoreTargets:
    home: Path
    state_root: Path
    project_root: Path
    plugins_dir: Path
    plugins_record: Path
    trusted_signers: Path

    def of(self, part: str) -> Path:
        return {"scope": self.state_root, "project/.animus": self.project_root / ".animus",
                "home/plugins": self.plugins_dir, "home/plugins.yaml": self.plugins_record,
                "home/trusted-signers.yaml": self.trusted_signers}[part]


def _damaged(archive: Path, what: str) -> InvalidInput:
    return InvalidInput(f"backup {archive} is damaged: {what}; nothing was restored",
                        fix="restore from another backup (animus daemon backup makes one)")


def _member_ok(member: tarfile.TarInfo) -> bool:
    path = member.name
    parts = path.split("/")
    if path.startswith("/") or ".." in parts or not (member.isfile() or member.isdir()):
        return False
    inside = any(path == p or path.startswith(p + "/") for p in _PREFIXES)
    return inside or (member.isdir() and any(p.startswith(path + "/") for p in _PREFIXES))


def read_verified(archive: Path) -> dict[str, Any]:
    """The manifest of ``archive``, after checking every member against it."""
    if not archive.is_file():
        raise NotFound(f"no backup archive at {archive}", fix="animus daemon backup --dest DIR makes one")
    try:
        with tarfile.open(archive, "r:gz") as tar:
            first = tar.next()
            if first is None or first.name != MANIFEST_NAME or not first.isfile():
                raise _damaged(archive, f"{MANIFEST_NAME} is not its first member")
            handle = tar.extractfile(first)
            manifest = json.loads(handle.read() if handle else b"")
            if not isinstance(manifest, dict) or manifest.get("schema") != MANIFEST_SCHEMA:
                raise _damaged(archive, f"its manifest is not {MANIFEST_SCHEMA}")
            expected = {f["path"]: f for f in manifest["files"]}
            seen = set()
            for member in tar:
                if member is first:
                    continue
                if not _member_ok(member):
                    raise _damaged(archive, f"unexpected member {member.name!r}")
                if member.isdir():
                    continue
                want = expected.get(member.name)
                fh = tar.extractfile(member)
                if want is None or fh is None:
                    raise _damaged(archive, f"{member.name} is not in its manifest")
                digest = sha256_stream(fh)
                if member.size != want["size"] or digest != want["sha256"]:
                    raise _damaged(archive, f"{member.name} does not match its checksum")
                seen.add(member.name)
    except (tarfile.TarError, OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise _damaged(archive, f"{type(exc).__name__}: {exc}") from None
    missing = sorted(set(expected) - seen)
    if missing:
        raise _damaged(archive, f"{len(missing)} file(s) of its manifest are missing, e.g. {missing[0]}")
    return manifest


def _parts(manifest: dict[str, Any]) -> list[str]:
    have = manifest.get("parts") or {}
    names = {"scope": "scope", "project": "project/.animus", "plugins": "home/plugins",
             "plugins_record": "home/plugins.yaml", "trusted_signers": "home/trusted-signers.yaml"}
    return [part for key, part in names.items() if have.get(key)]


def stage_restore(archive: Path, manifest: dict[str, Any], targets: RestoreTargets) -> dict[str, Path]:
    """Extract each part beside its target; return ``{part: staged path}``."""
    token = secrets.token_hex(4)
    staged: dict[str, Path] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = [m for m in tar.getmembers() if m.name != MANIFEST_NAME]
            for part in _parts(manifest):
                target = targets.of(part)
                target.parent.mkdir(parents=True, exist_ok=True)
                where = target.parent / f".{target.name}.restore-{token}"
                staged[part] = where
                wanted = [m for m in members if m.name == part or m.name.startswith(part + "/")]
                _extract(tar, wanted, part, where, is_dir=part != "home/plugins.yaml"
                         and part != "home/trusted-signers.yaml")
        scope = staged.get("scope")
        if scope is not None:
            (scope / ".project-root").write_text(str(targets.project_root) + "\n")
            for name in CARRIED_OVER:
                old = targets.state_root / name
                if old.exists():
                    shutil.copytree(old, scope / name, symlinks=True, dirs_exist_ok=True)
            os.chmod(scope, 0o700)
    except BaseException:
        for where in staged.values():
            _remove(where)
        raise
    return staged


def _extract(tar: tarfile.TarFile, members: list[tarfile.TarInfo], part: str, where: Path, is_dir: bool) -> None:
    if is_dir:
        where.mkdir(parents=True)
    for member in members:
        rel = member.name[len(part):].lstrip("/")
        dest = where / rel if rel else where
        if member.isdir():
            dest.mkdir(parents=True, exist_ok=True)
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        src = tar.extractfile(member)
        assert src is not None  # a regular file, checked by read_verified
        with open(dest, "wb") as out:
            shutil.copyfileobj(src, out)
        os.chmod(dest, member.mode & 0o777)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def commit(home: Path, staged: dict[str, Path], targets: RestoreTargets) -> None:
    """Write the journal, then swap every staged part into place."""
    swaps = [{"target": str(targets.of(part)), "staged": str(where),
              "old": str(where).replace(".restore-", ".old-")} for part, where in staged.items()]
    home.mkdir(parents=True, exist_ok=True)
    atomic_json(home / JOURNAL, {"swaps": swaps}, 0o600)
    _roll_forward(home, swaps)


def _roll_forward(home: Path, swaps: list[dict[str, str]]) -> None:
    for swap in swaps:
        target, staged, old = Path(swap["target"]), Path(swap["staged"]), Path(swap["old"])
        if not staged.exists() and not staged.is_symlink():
            continue  # swapped before the interruption
        if (target.exists() or target.is_symlink()) and not old.exists():
            os.replace(target, old)
        os.replace(staged, target)
    (home / JOURNAL).unlink(missing_ok=True)
    for swap in swaps:
        _remove(Path(swap["old"]))


def finish_interrupted(home: Path) -> bool:
    """Complete a restore whose swap was interrupted; True if there was one."""
    try:
        journal = json.loads((home / JOURNAL).read_text())
    except FileNotFoundError:
        return False
    except ValueError:
        raise InvalidInput(f"{home / JOURNAL} is unreadable", fix="restore the backup again") from None
    _roll_forward(home, list(journal.get("swaps") or []))
    return True
