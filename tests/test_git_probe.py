"""``animus.git.probe`` answers from ``.git`` only what git itself would, and leaves the rest to git.

A runner asks it at every start (is the project in git, where is its top,
has HEAD a commit yet): each answer here is checked against real git on a
real repository, and every layout it cannot be sure of must say so (None).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _gitrepo import isolate, make_project, sh

from animus.git.probe import Probe, probe
from animus.git.repo import is_git_repo, rev_parse, top_level


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate(monkeypatch, tmp_path)


def agrees_with_git(path: Path, answer: Probe) -> None:
    """What the probe said is what git says."""
    assert answer.inside == is_git_repo(path)
    if answer.inside:
        assert answer.top == top_level(path)
    if answer.unborn:
        assert rev_parse(path, "HEAD") is None


def test_outside_any_repository(tmp_path: Path) -> None:
    plain = tmp_path / "plain" / "sub"
    plain.mkdir(parents=True)
    answer = probe(plain)
    assert answer == Probe(False, None, False)
    agrees_with_git(plain, answer)


def test_fresh_repository_has_an_unborn_head_even_from_a_subdirectory(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    sh(tmp_path, "init", "-q", str(repo))
    (repo / "src").mkdir()
    for where in (repo, repo / "src"):
        answer = probe(where)
        assert answer is not None and answer.inside and answer.unborn is True
        agrees_with_git(where, answer)


def test_a_commit_is_left_to_git(tmp_path: Path) -> None:
    repo = make_project(tmp_path / "repo")
    answer = probe(repo)
    assert answer is not None and answer.inside and answer.unborn is None
    assert rev_parse(repo, "HEAD") is not None
    sh(repo, "pack-refs", "--all")  # the branch now lives in packed-refs only
    assert probe(repo) == answer


def test_orphan_branch_after_packed_refs_and_a_linked_worktree(tmp_path: Path) -> None:
    repo = make_project(tmp_path / "repo")
    sh(repo, "pack-refs", "--all")
    sh(repo, "worktree", "add", "-q", "-b", "side", str(tmp_path / "linked"))
    sh(repo, "checkout", "-q", "--orphan", "fresh")
    answer = probe(repo)
    assert answer is not None and answer.unborn is True
    agrees_with_git(repo, answer)
    linked = probe(tmp_path / "linked")  # a .git file naming the common dir
    assert linked is not None and linked.top == (tmp_path / "linked").resolve() and linked.unborn is None
    agrees_with_git(tmp_path / "linked", linked)


def test_layouts_only_git_can_answer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    sh(tmp_path, "init", "-q", str(repo))
    assert probe(repo / ".git") is None  # inside the git dir: not a work tree for git
    assert probe(tmp_path / "missing") is None
    sh(repo, "config", "core.worktree", str(tmp_path))
    assert probe(repo) is None  # the work tree moved
    sh(repo, "config", "--unset", "core.worktree")
    assert probe(repo) is not None
    monkeypatch.setenv("GIT_DIR", str(repo / ".git"))
    assert probe(repo) is None
