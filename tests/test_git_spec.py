"""The YAML shapes of worktree, post_success.merge and the per-project worktrees block."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from animus.errors import ExitCode, InvalidInput
from animus.git import (
    MergeSpec,
    PullRequestSpec,
    SpecError,
    Strategy,
    WorktreeMode,
    WorktreeSetup,
    WorktreeSpec,
    parse_merge,
    parse_post_success,
    parse_worktree,
    parse_worktree_setup,
    remove_after_success,
)


def load(text: str) -> Any:
    return yaml.safe_load(text)


def test_defaults() -> None:
    assert parse_worktree(None) == WorktreeSpec(mode=WorktreeMode.AUTO, cleanup=True, base_ref=None)
    merge = parse_post_success(load("merge: {}"))
    assert merge == MergeSpec(strategy=Strategy.MERGE, target_branch="main", create_pr=None, auto_merge=False,
                              cleanup_worktree=True)
    assert parse_post_success(None) is None and parse_post_success(load("merge:")) is None
    assert parse_worktree_setup(None) == WorktreeSetup()


def test_worktree_forms() -> None:
    assert parse_worktree("skip").mode is WorktreeMode.SKIP
    spec = parse_worktree(load("{mode: required, cleanup: false, base_ref: develop}"), "workflows[0].worktree")
    assert spec == WorktreeSpec(WorktreeMode.REQUIRED, cleanup=False, base_ref="develop")
    assert parse_worktree(load("{mode: skip}"), "phases.docs.worktree", phase=True).mode is WorktreeMode.SKIP


def test_a_full_merge_block() -> None:
    merge = parse_post_success(load("""
        merge:
          strategy: squash
          target_branch: release/1.x
          auto_merge: true
          cleanup_worktree: false
          create_pr: {remote: upstream, repository: acme/widgets, api_base: "https://ghe.example/api/v3/", draft: true}
    """))
    assert merge == MergeSpec(Strategy.SQUASH, "release/1.x", PullRequestSpec(
        "upstream", "acme/widgets", "https://ghe.example/api/v3", draft=True), auto_merge=True, cleanup_worktree=False)
    assert parse_merge({"create_pr": True}).create_pr == PullRequestSpec()
    assert parse_merge({"create_pr": False}).create_pr is None


@pytest.mark.parametrize(("parse", "value", "line"), [
    (parse_worktree, "sometimes",
     "worktree: must be one of auto, required, skip, got 'sometimes' (fix: write worktree: auto)"),
    (parse_merge, {"strategy": "octopus"},
     "post_success.merge.strategy: must be one of merge, squash, rebase, got 'octopus' (fix: write strategy: merge)"),
    (parse_merge, {"stratgy": "squash"},
     "post_success.merge.stratgy: unknown key (fix: did you mean strategy? known keys: strategy, target_branch, "
     "create_pr, auto_merge, cleanup_worktree)"),
    (parse_merge, {"target_branch": "feat..x"},
     "post_success.merge.target_branch: 'feat..x' is not a valid branch name (fix: use a name git accepts, "
     "e.g. main)"),
    (parse_merge, {"auto_merge": "yes please"},
     "post_success.merge.auto_merge: expected true or false, got 'yes please' (fix: write auto_merge: true)"),
    (parse_merge, {"create_pr": {"repository": "widgets"}},
     "post_success.merge.create_pr.repository: expected owner/name, got 'widgets' (fix: write repository: "
     "owner/name)"),
    (parse_worktree_setup, {"copy": ["../secrets/.env"]},
     "worktrees.copy[0]: '../secrets/.env' reaches outside the project root (fix: give a path relative to the "
     "project root)"),
    (parse_worktree_setup, {"symlink": ["/opt/cache"]},
     "worktrees.symlink[0]: '/opt/cache' reaches outside the project root (fix: give a path relative to the "
     "project root)"),
    (parse_worktree_setup, {"setup": 42},
     "worktrees.setup: expected a command string or a list of arguments, got 42 (fix: write e.g. setup: npm ci, "
     "or setup: [npm, ci])"),
])
def test_bad_values_are_one_line_naming_the_field_and_the_fix(parse: Any, value: Any, line: str) -> None:
    with pytest.raises(SpecError) as err:
        parse(value)
    assert err.value.one_line() == line
    assert isinstance(err.value, InvalidInput) and err.value.exit_code == ExitCode.INVALID_INPUT
    assert err.value.where == line.split(": ", 1)[0]


def test_the_caller_can_relocate_an_error() -> None:
    # the loader adds file:line; it gets the field path and the reason separately
    with pytest.raises(SpecError) as err:
        parse_post_success(load("merge: {strategy: octopus}"), "workflows[2].post_success")
    assert (err.value.where, err.value.reason) == ("workflows[2].post_success.merge.strategy",
                                                   "must be one of merge, squash, rebase, got 'octopus'")
    assert err.value.details == {"field": "workflows[2].post_success.merge.strategy"}


def test_base_ref_and_cleanup_are_per_workflow_not_per_phase() -> None:
    with pytest.raises(SpecError, match="is set per workflow") as err:
        parse_worktree({"mode": "auto", "base_ref": "dev"}, "phases.build.worktree", phase=True)
    assert err.value.where == "phases.build.worktree.base_ref"


def test_the_project_worktrees_block() -> None:
    setup = parse_worktree_setup(load("""
        copy: [.env, "config/*.local.yaml"]
        symlink: node_modules
        setup: npm ci && npm run build
        setup_timeout_secs: 900
        teardown: [docker, compose, down]
    """))
    assert setup == WorktreeSetup(copy=(".env", "config/*.local.yaml"), symlink=("node_modules",),
                                  setup=("sh", "-c", "npm ci && npm run build"), setup_timeout_secs=900.0,
                                  teardown=("docker", "compose", "down"), teardown_timeout_secs=120.0)


def test_when_a_finished_run_removes_its_worktree() -> None:
    merge = MergeSpec()
    assert remove_after_success(WorktreeSpec(), merge) and remove_after_success(WorktreeSpec(), None)
    assert not remove_after_success(WorktreeSpec(cleanup=False), merge)
    assert not remove_after_success(WorktreeSpec(), MergeSpec(cleanup_worktree=False))
