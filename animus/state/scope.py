"""Where Animus keeps its state: the project root, the scope, the state root.

Derivation (documented in docs/state.md):

1. project root = ``--project-root``, else ``$PROJECT_ROOT``, else the git
   common root (``git rev-parse --git-common-dir``, its parent when it is
   named ``.git``; every linked worktree of a repo shares it), else the cwd
   with a warning;
2. ``<scope>`` = the canonical root's basename, lower-cased, runs of space,
   ``_`` and ``-`` collapsed to ``-``, other characters dropped, trailing
   ``-`` trimmed (``repo`` if nothing is left), then ``-`` and the first 12
   hex digits of sha256 of the canonical path;
3. state root = ``$ANIMUS_HOME`` (default ``~/.animus``) / ``<scope>``.

Sockets live in ``<state root>/run`` (mode 0700) unless that path is too long
for a Unix socket, in which case a private ``/tmp/animus-<uid>/<hash>`` is
used, once it is known to be a real directory owned by this user.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from animus.errors import Unavailable
from animus.state.digest import sha256_hex

__all__ = ["Scope", "animus_home", "project_root", "scope_name", "resolve_scope"]

_UNIX_PATH_MAX = 100  # sun_path is 108 bytes; leave room for socket names
RESTORE_JOURNAL = "restore-journal.json"  # in ANIMUS_HOME while a restore swaps folders (state/restore.py)


def animus_home() -> Path:
    return Path(os.environ.get("ANIMUS_HOME") or Path.home() / ".animus")


def _git_common_root(cwd: Path) -> Path | None:
    from animus.state.gitroot import common_dir

    sure, found = common_dir(str(cwd))  # reading .git: no fork and exec on every CLI call
    if sure:
        common = Path(found) if found else None
        return None if common is None else common.parent if common.name == ".git" else common
    import subprocess

    try:
        out = subprocess.run(
            ["git", "rev-parse", "--path-format=absolute", "--git-common-dir"],
            cwd=cwd, capture_output=True, text=True, timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0 or not out.stdout.strip():
        return None
    common = Path(out.stdout.strip())
    return common.parent if common.name == ".git" else common


def project_root(explicit: str | os.PathLike[str] | None = None) -> tuple[Path, str | None]:
    """Return (project root, warning or None)."""
    if explicit:
        return Path(explicit).resolve(), None
    env = os.environ.get("PROJECT_ROOT")
    if env:
        return Path(env).resolve(), None
    cwd = Path.cwd()
    root = _git_common_root(cwd)
    if root is not None:
        return root.resolve(), None
    return cwd.resolve(), f"{cwd} is not inside a git repository; using it as the project root"


def scope_name(root: Path) -> str:
    canonical = str(root.resolve())
    base = root.resolve().name.lower()
    base = re.sub(r"[ _-]+", "-", base)
    base = re.sub(r"[^a-z0-9-]", "", base).rstrip("-") or "repo"
    return f"{base}-{sha256_hex(canonical.encode())[:12]}"


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def _owned_private_dir(path: Path) -> Path:
    """``_private_dir`` for a shared parent such as /tmp: someone else may have made ``path``
    first (a symlink to their folder, or a folder they own), so it must be a real directory
    of ours before anything goes in it."""
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise Unavailable(f"{path} is not a directory owned by you (uid {os.getuid()}): "
                          "refusing to put the daemon's sockets there",
                          fix=f"remove {path}, or set ANIMUS_HOME to a shorter path")
    os.chmod(path, 0o700)
    return path


class Scope:
    """Where one project's state lives. Immutable, and compared by value.

    A slotted class rather than a frozen dataclass: every CLI call resolves a
    scope, and importing dataclasses (or typing, for a NamedTuple) would cost
    it ~6 ms (~2.5 ms), a sixth of the interpreter's own start.
    """

    __slots__ = ("project_root", "name", "home", "root", "warning")
    project_root: Path
    name: str
    home: Path
    root: Path
    warning: str | None

    def __init__(self, project_root: Path, name: str, home: Path, root: Path, warning: str | None = None) -> None:
        for key, value in zip(self.__slots__, (project_root, name, home, root, warning)):
            object.__setattr__(self, key, value)

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError(f"Scope is immutable: cannot set {key}")

    def _fields(self) -> tuple[Path, str, Path, Path, str | None]:
        return (self.project_root, self.name, self.home, self.root, self.warning)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Scope) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return f"Scope(project_root={self.project_root!r}, name={self.name!r}, root={self.root!r})"

    @property
    def db_path(self) -> Path:
        return self.root / "workflow.db"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def events_log(self) -> Path:
        return self.logs_dir / "events.jsonl"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def pidfile(self) -> Path:
        return self.root / "daemon.pid"

    @property
    def plugins_dir(self) -> Path:
        return Path(os.environ.get("ANIMUS_PLUGIN_DIR") or self.home / "plugins")

    @property
    def token_file(self) -> Path:
        return self.root / "token"

    def run_dir(self) -> Path:
        """The private socket directory (created 0700)."""
        preferred = self.root / "run"
        if len(str(preferred)) + 16 <= _UNIX_PATH_MAX:
            return _private_dir(preferred)
        digest = sha256_hex(str(self.root).encode())[:16]
        base = _owned_private_dir(Path("/tmp") / f"animus-{os.getuid()}")
        return _private_dir(base / digest)

    def endpoint(self, name: str) -> str:
        return f"ipc://{self.run_dir() / name}"

    def ensure(self) -> Scope:
        _private_dir(self.home)
        _private_dir(self.root)
        for sub in (self.logs_dir, self.state_dir, self.runs_dir):
            sub.mkdir(parents=True, exist_ok=True)
        marker = self.root / ".project-root"
        if not marker.exists():
            marker.write_text(str(self.project_root) + "\n")
        return self


def resolve_scope(explicit_root: str | os.PathLike[str] | None = None) -> Scope:
    root, warning = project_root(explicit_root)
    name = scope_name(root)
    home = animus_home()
    return Scope(project_root=root, name=name, home=home, root=home / name, warning=warning)
