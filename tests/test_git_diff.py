"""A run's changes file by file (``animus.git.diff``), on real repositories and worktrees.

What the web UI's diff shows must be what git says, and bounded: a huge or
binary file, a budget of patch text used up, more files than the listing
holds, a file that is not UTF-8 — each is listed with the reason its patch is
not shown, never dropped and never read whole.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from _gitrepo import commit_file, isolate, make_project, sh

from animus.errors import NotFound
from animus.git.diff import DiffLimits, commit_changes, worktree_changes


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    isolate(monkeypatch, tmp_path)
    return make_project(tmp_path / "project")


def worktree(root: Path, tmp_path: Path) -> tuple[Path, str]:
    """A run's worktree on its own branch, as the runner makes one: (path, base commit)."""
    base = sh(root, "rev-parse", "HEAD")
    path = tmp_path / "wt"
    sh(root, "worktree", "add", "-q", "-b", "animus/T-1", str(path), base)
    return path, base


def by_path(changes: object) -> dict[str, dict[str, object]]:
    return {f["path"]: f for f in changes.as_dict()["files"]}  # type: ignore[attr-defined]


def test_a_worktree_shows_commits_uncommitted_edits_and_untracked_files(root: Path, tmp_path: Path) -> None:
    wt, base = worktree(root, tmp_path)
    commit_file(wt, "committed.txt", "on the branch\n")
    (wt / "app.py").write_text("line 1\nline two\nline 3\n")  # uncommitted edit
    (wt / "README.md").unlink()  # uncommitted deletion
    (wt / "docs").mkdir()
    (wt / "docs" / "new.md").write_text("# new\nuntracked\n")  # untracked
    (wt / ".env").write_text("SECRET=1\n")  # ignored: not part of the run's work

    changes = worktree_changes(wt, base)
    files = by_path(changes)
    assert sorted(files) == ["README.md", "app.py", "committed.txt", "docs/new.md"]
    assert changes.source == "worktree" and changes.base == base and changes.head == sh(wt, "rev-parse", "HEAD")
    assert (files["app.py"]["status"], files["app.py"]["added"], files["app.py"]["deleted"]) == ("modified", 1, 1)
    assert "-line 2\n+line two" in str(files["app.py"]["patch"])
    assert files["README.md"]["status"] == "deleted" and "-hello" in str(files["README.md"]["patch"])
    assert files["committed.txt"]["status"] == "added" and "+on the branch" in str(files["committed.txt"]["patch"])
    new = files["docs/new.md"]
    assert (new["status"], new["added"], new["deleted"]) == ("added", 2, 0) and "+untracked" in str(new["patch"])
    assert not changes.as_dict()["truncated"]
    assert sh(wt, "status", "--porcelain") != ""  # read-only: nothing was staged or committed for it
    assert "docs/new.md" not in sh(wt, "diff", "--cached", "--name-only")


def test_a_delivered_commit_against_its_base_is_what_git_diff_says(root: Path, tmp_path: Path) -> None:
    wt, base = worktree(root, tmp_path)
    commit_file(wt, "app.py", "line 1\n")
    head = commit_file(wt, "lib/util.py", "def f():\n    return 1\n")
    sh(root, "worktree", "remove", str(wt))
    changes = commit_changes(root, base, "refs/heads/animus/T-1")
    assert changes.source == "commit" and changes.head == head
    assert sorted(by_path(changes)) == sh(root, "diff", "--name-only", base, head).splitlines()
    assert by_path(changes)["app.py"]["deleted"] == 2
    with pytest.raises(NotFound, match="not a commit"):
        commit_changes(root, base, "refs/heads/gone")


def test_big_binary_and_foreign_files_are_listed_without_their_patch(root: Path, tmp_path: Path) -> None:
    wt, base = worktree(root, tmp_path)
    (wt / "huge.log").write_text("x" * 5000 + "\n")
    (wt / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00binary")
    (wt / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    (wt / ":(exclude)odd name.txt").write_text("a literal path\n")
    files = by_path(worktree_changes(wt, base, DiffLimits(max_file_bytes=1000)))
    assert files["huge.log"]["binary"] and files["huge.log"]["patch"] is None
    assert files["huge.log"]["omitted"] == "5001 bytes: over the 1000-byte limit for showing a file"
    assert files["image.png"]["binary"] and files["image.png"]["omitted"] == "binary file"
    assert files["latin1.txt"]["omitted"] == "not UTF-8 text"
    assert "+a literal path" in str(files[":(exclude)odd name.txt"]["patch"])


def test_the_patch_budget_and_the_file_count_bound_the_answer(root: Path, tmp_path: Path) -> None:
    wt, base = worktree(root, tmp_path)
    for n in range(12):
        (wt / f"f{n:02}.txt").write_text(f"{n}\n" * 40)
    changes = worktree_changes(wt, base, DiffLimits(max_files=10, max_patch_bytes=1500, max_file_bytes=4096))
    out = changes.as_dict()
    assert out["total_files"] == 12 and out["truncated"] and len(out["files"]) == 10
    shown = [f for f in out["files"] if f["patch"]]
    assert shown and sum(len(str(f["patch"]).encode()) for f in shown) <= 1500
    skipped = [f for f in out["files"] if not f["patch"]]
    assert skipped and all("over its 1500-byte limit: git -C" in str(f["omitted"]) for f in skipped)
    assert all(f["added"] == 40 for f in out["files"])  # still counted, even when not shown


def test_no_shell_is_involved(root: Path, tmp_path: Path) -> None:
    wt, base = worktree(root, tmp_path)
    (wt / "$(touch pwned)").write_text("x\n")
    files = by_path(worktree_changes(wt, base))
    assert "$(touch pwned)" in files and not (wt / "pwned").exists() and not Path("pwned").exists()
    assert subprocess.run(["git", "-C", str(wt), "diff", "--quiet", base, "--", "app.py"]).returncode == 0
