"""Kind → plugin routing (reference §D.1): exact beats glob, longest glob wins, no duplicates."""

from __future__ import annotations

import pytest

from animus.errors import InvalidInput, NotFound
from animus.plugins.subjects import Route, SubjectRouter

DEFAULTS = {
    "animus-subject-default": ["task"],
    "animus-subject-requirements": ["requirement"],
    "animus-subject-linear": ["linear.*"],
    "animus-subject-linear-issues": ["linear.issue.*"],
    "animus-subject-sqlite": ["sqlite"],
    "animus-subject-markdown": ["markdown.task"],
}


def test_exact_kinds_route_to_their_plugin() -> None:
    router = SubjectRouter.build(DEFAULTS)
    assert router.route("task") == "animus-subject-default"
    assert router.route("requirement") == "animus-subject-requirements"
    assert router.route("markdown.task") == "animus-subject-markdown"


def test_the_longest_glob_prefix_wins() -> None:
    router = SubjectRouter.build(DEFAULTS)
    assert router.route("linear.project") == "animus-subject-linear"
    assert router.route("linear.issue.sub") == "animus-subject-linear-issues"
    assert (
        router.route("linear.issue") == "animus-subject-linear"
    )  # 'linear.issue.' is not a prefix


def test_an_exact_kind_beats_any_glob() -> None:
    router = SubjectRouter.build(
        {"catch-all": ["*"], "glob": ["linear.*"], "exact": ["linear.issue"]}
    )
    assert router.route("linear.issue") == "exact"
    assert router.route("linear.cycle") == "glob"
    assert router.route("jira.issue") == "catch-all"


def test_unknown_kind_is_not_found_with_the_install_fix() -> None:
    router = SubjectRouter.build(DEFAULTS)
    with pytest.raises(NotFound) as err:
        router.route("jira.issue")
    assert err.value.message == "no subject backend serves kind 'jira.issue'"
    assert err.value.fix == "animus plugin install-defaults --include-subjects"
    with pytest.raises(NotFound):
        SubjectRouter.build({}).route("task")


def test_duplicate_exact_kinds_fail_setup_naming_both_plugins() -> None:
    with pytest.raises(InvalidInput) as err:
        SubjectRouter.build({"animus-subject-default": ["task"], "my-tasks": ["bug", "task"]})
    assert err.value.message == (
        "subject kind 'task' is declared by both plugin 'animus-subject-default'"
        " and plugin 'my-tasks'"
    )


def test_duplicate_glob_prefixes_fail_setup_naming_both_plugins() -> None:
    with pytest.raises(
        InvalidInput,
        match="subject glob 'linear.\\*' is declared by both plugin 'a' and plugin 'b'",
    ):
        SubjectRouter.build({"a": ["linear.*"], "b": ["linear.*"]})


def test_a_plugin_may_repeat_itself_and_globs_may_nest() -> None:
    router = SubjectRouter.build({"a": ["task", "task", "x.*"], "b": ["x.y.*", "x"]})
    assert router.kinds() == {"task": "a", "x": "b", "x.y.*": "b", "x.*": "a"}


@pytest.mark.parametrize("bad", ["task/list", "", "li*near", "a:b"])
def test_malformed_kinds_fail_setup(bad: str) -> None:
    with pytest.raises(InvalidInput):
        SubjectRouter.build({"p": [bad]})


def test_routing_rejects_kinds_with_a_slash() -> None:
    with pytest.raises(InvalidInput, match="must not contain '/'"):
        SubjectRouter.build(DEFAULTS).route("task/get")


def test_methods_route_by_the_prefix_before_the_slash() -> None:
    router = SubjectRouter.build(DEFAULTS)
    assert router.route_method("task/list") == Route(
        "animus-subject-default", "task", "list", "task/list"
    )
    assert router.route_method("linear.issue/status").plugin == "animus-subject-linear"
    with pytest.raises(InvalidInput, match="expected '<kind>/<verb>'"):
        router.route_method("task")
