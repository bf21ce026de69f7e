"""The one way Animus runs git: sanitised environment, typed errors, timeouts that kill hooks too."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest
from _gitrepo import isolate, make_project, sh

from animus.git.repo import (
    GitError,
    NotARepository,
    branch_exists,
    checked_out_in,
    current_branch,
    git,
    has_changes,
    is_clean,
    is_git_repo,
    require_repo,
    rev_parse,
)
from animus.testing import wait_until


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    isolate(monkeypatch, tmp_path)
    return make_project(tmp_path / "project")


def test_the_questions_a_repository_answers(root: Path, tmp_path: Path) -> None:
    assert is_git_repo(root) and not is_git_repo(tmp_path) and require_repo(root / ".git" / "..") == root
    assert current_branch(root) == "main" and branch_exists(root, "main") and not branch_exists(root, "nope")
    assert rev_parse(root, "main") == sh(root, "rev-parse", "HEAD") and rev_parse(root, "nope") is None
    assert checked_out_in(root, "main") == root and checked_out_in(root, "other") is None
    (root / "scratch.txt").write_text("untracked\n")
    assert is_clean(root) and has_changes(root)  # untracked files are not "dirty", but a removal would lose them
    (root / "app.py").write_text("edited\n")
    assert not is_clean(root)
    with pytest.raises(NotARepository, match="is not a git repository") as err:
        require_repo(tmp_path)
    assert "worktree: skip" in str(err.value.fix)


def test_a_failure_is_one_typed_line_with_the_command(root: Path) -> None:
    with pytest.raises(GitError) as err:
        git(root, "rev-parse", "--verify", "no-such-ref")
    assert err.value.message == f"git rev-parse --verify no-such-ref failed in {root} (exit 128): " \
                                "fatal: Needed a single revision"
    assert err.value.command == ("git", "-C", str(root), "rev-parse", "--verify", "no-such-ref")
    assert err.value.returncode == 128 and err.value.fix is not None and "git -C" in err.value.fix


def test_the_environment_cannot_point_git_elsewhere(root: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    other = make_project(tmp_path / "other")
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))  # as inside a hook of another repository
    monkeypatch.setenv("LANGUAGE", "de")
    assert git(root, "rev-parse", "--show-toplevel").stdout.strip() == str(root)
    assert "not a git repository" in git(tmp_path, "status", check=False).stderr  # English, whatever LANGUAGE says


def test_a_timeout_kills_git_and_the_hook_it_started(root: Path, tmp_path: Path) -> None:
    pidfile = tmp_path / "hook.pid"
    hook = root / ".git" / "hooks" / "pre-commit"
    # the hook lets go of git's pipes, so only killing its process group can stop it early
    hook.write_text(f"#!/bin/sh\necho $$ > {pidfile}\nexec sleep 60 >/dev/null 2>&1\n")
    hook.chmod(0o755)
    with pytest.raises(GitError, match=r"git commit --allow-empty -m x timed out after 0.5s"):
        git(root, "commit", "--allow-empty", "-m", "x", timeout=0.5)
    pid = int(pidfile.read_text())
    wait_until(lambda: not _alive(pid), timeout=5, what="the hook to be killed with git")


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE  # a zombie is dead, only not yet reaped
    except psutil.NoSuchProcess:
        return False


def test_the_package_names_resolve_to_their_modules_objects() -> None:
    """animus.git loads names lazily: its three lists (type-time imports, _MODULE_OF, __all__) must agree,
    and a name shared with a submodule must stay the object, not the module, once that module is loaded."""
    import importlib

    import animus.git as package
    import animus.git.provision  # noqa: F401 - loaded first on purpose

    for name in package.__all__:
        module = package._MODULE_OF.get(name, "provision")
        assert getattr(package, name) is getattr(importlib.import_module(f"animus.git.{module}"), name), name
    assert set(package.__all__) == set(package._MODULE_OF) | {"provision"}
