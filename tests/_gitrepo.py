"""Real git repositories in temp dirs for the tests of ``animus.git``.

``isolate(monkeypatch, tmp)`` points git at a private global config (an
identity, ``main`` as the initial branch) and away from the system config, so
the tests behave the same on any machine. ``make_project`` makes a repository
with a first commit on ``main``; ``sh`` runs git and returns its stdout.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from animus.git import RepoLock, Worktrees


def isolate(monkeypatch: pytest.MonkeyPatch, tmp: Path) -> None:
    config = tmp / "gitconfig"
    config.write_text("[user]\n\tname = Operator\n\temail = operator@example.com\n"
                      "[init]\n\tdefaultBranch = main\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in ("GH_TOKEN", "GITHUB_TOKEN", "GITHUB_API_URL"):
        monkeypatch.delenv(var, raising=False)


def sh(cwd: Path, *args: str, check: bool = True) -> str:
    out = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, check=False, timeout=30)
    if check and out.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {out.stderr}")
    return out.stdout.strip()


def commit_file(cwd: Path, name: str, text: str, message: str | None = None) -> str:
    path = cwd / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    sh(cwd, "add", name)
    sh(cwd, "commit", "-q", "-m", message or f"write {name}")
    return sh(cwd, "rev-parse", "HEAD")


def make_project(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    sh(root, "init", "-q", "-b", "main")
    (root / ".gitignore").write_text(".env\nnode_modules/\n")
    commit_file(root, "README.md", "hello\n", "initial commit")
    commit_file(root, "app.py", "line 1\nline 2\nline 3\n", "add app.py")
    sh(root, "add", ".gitignore")
    sh(root, "commit", "-q", "-m", "ignore local files")
    return root


def worktrees_for(tmp: Path, root: Path) -> Worktrees:
    scope = tmp / "scope"
    return Worktrees(project_root=root, root=scope / "worktrees", lock=RepoLock(scope / "run" / "git.lock"))


def fsck_clean(root: Path) -> str:
    out = subprocess.run(["git", "-C", str(root), "fsck", "--no-progress"], capture_output=True, text=True,
                         check=False, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout + out.stderr
