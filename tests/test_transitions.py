"""Pure phase transitions and skip_if conditions: no files, no processes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from animus.errors import InvalidInput
from animus.workflow.conditions import evaluate, first_match, parse_condition
from animus.workflow.config import load_workflow_texts
from animus.workflow.model import PhaseEntry, Verdict, WorkflowDefinition
from animus.workflow.transitions import Complete, Fail, Next, next_step, skip_reason, start


def wf(*entries: PhaseEntry | str) -> WorkflowDefinition:
    return WorkflowDefinition("w", tuple(e if isinstance(e, PhaseEntry) else PhaseEntry(e)
                                         for e in entries))


DELIVERY = wf("implement", "tests",
              PhaseEntry("review", max_rework_attempts=2, on_verdict={"rework": "implement"}))


# ---------------------------------------------------------------------- verdicts

def test_advance_walks_the_chain_then_completes() -> None:
    assert start(DELIVERY) == Next(0, "implement")
    assert next_step(DELIVERY, 0, "advance", {}) == Next(1, "tests")
    assert next_step(DELIVERY, 1, Verdict.ADVANCE, {}) == Next(2, "review")
    assert next_step(DELIVERY, 2, "advance", {}) == Complete()


def test_rework_goes_to_the_previous_phase_by_default_with_feedback() -> None:
    step = next_step(DELIVERY, 1, "rework", {}, feedback="3 tests fail")
    assert step == Next(0, "implement", {"tests": 1}, "3 tests fail", "tests")
    assert next_step(DELIVERY, 0, "rework", {}) == Next(0, "implement", {"implement": 1}, None,
                                                        "implement")


def test_rework_loop_follows_the_target_until_exhausted() -> None:
    counts: dict[str, int] = {}
    for attempt in (1, 2):
        step = next_step(DELIVERY, 2, "rework", counts, feedback=f"issue {attempt}")
        assert isinstance(step, Next)
        assert (step.phase_index, step.feedback) == (0, f"issue {attempt}")
        assert step.from_phase == "review"
        assert step.rework_counts == {"review": attempt}
        counts = dict(step.rework_counts)
    assert next_step(DELIVERY, 2, "rework", counts) == Fail(
        "rework attempts exhausted for review (max 2)")
    assert counts == {"review": 2}  # the caller's mapping is never mutated


def test_zero_rework_attempts_fails_at_once() -> None:
    flow = wf("a", PhaseEntry("b", max_rework_attempts=0))
    assert next_step(flow, 1, "rework", {}) == Fail("rework attempts exhausted for b (max 0)")


def test_counters_are_per_phase() -> None:
    step = next_step(DELIVERY, 1, "rework", {"review": 2})
    assert isinstance(step, Next) and step.rework_counts == {"review": 2, "tests": 1}


def test_skip_and_fail() -> None:
    assert next_step(DELIVERY, 0, "skip", {}) == Next(1, "tests")
    assert next_step(DELIVERY, 2, "skip", {}) == Complete()
    assert next_step(DELIVERY, 1, "fail", {}, feedback="disk full") == Fail(
        "phase tests failed: disk full")
    assert next_step(DELIVERY, 1, "fail", {}) == Fail("phase tests failed")


def test_explicit_on_verdict_targets() -> None:
    flow = wf(PhaseEntry("triage", on_verdict={"skip": "notify", "advance": "build"}),
              "design", "build",
              PhaseEntry("verify", on_verdict={"fail": "notify", "advance": ""}),
              PhaseEntry("notify", on_verdict={"advance": ""}))
    assert next_step(flow, 0, "advance", {}) == Next(2, "build")
    assert next_step(flow, 0, "skip", {}) == Next(4, "notify")
    assert next_step(flow, 3, "advance", {}) == Complete()  # "" terminates
    assert next_step(flow, 3, "fail", {}, feedback="red") == Next(4, "notify", {}, "red", "verify")
    assert next_step(flow, 4, "advance", {}) == Complete()


def test_empty_rework_target_ends_the_workflow_as_failed() -> None:
    flow = wf("a", PhaseEntry("b", on_verdict={"rework": ""}))
    step = next_step(flow, 1, "rework", {})
    assert isinstance(step, Fail) and "ends the workflow" in step.reason


def test_decision_target_overrides_on_verdict() -> None:
    assert next_step(DELIVERY, 2, "rework", {}, target_phase="tests") == Next(
        1, "tests", {"review": 1}, None, "review")
    assert next_step(DELIVERY, 0, "advance", {}, target_phase="review") == Next(2, "review")
    step = next_step(DELIVERY, 0, "advance", {}, target_phase="deploy")
    assert step == Fail("phase implement routed advance to 'deploy', which is not a phase of "
                        "workflow w")


def test_repeated_phase_targets_resolve_to_the_nearest_one() -> None:
    flow = wf("build", "review", "build", PhaseEntry("review", on_verdict={"rework": "build"}))
    step = next_step(flow, 3, "rework", {})
    assert isinstance(step, Next) and step.phase_index == 2


def test_unknown_verdict_and_bad_index() -> None:
    assert next_step(DELIVERY, 0, "maybe", {}) == Fail(
        "phase implement returned unknown verdict 'maybe'")
    with pytest.raises(ValueError):
        next_step(DELIVERY, 3, "advance", {})


# ----------------------------------------------------------------------- skip_if

DOCS = {"id": "TASK-1", "type": "docs", "priority": "p2", "labels": ["ui", "small"]}


def test_skip_if_passes_over_phases_and_reports_them() -> None:
    flow = wf(PhaseEntry("design", skip_if=("task_type == docs",)),
              PhaseEntry("implement"),
              PhaseEntry("tests", skip_if=("labels contains small", "priority == p0")),
              PhaseEntry("review", skip_if=("task.type == 'docs'",)))
    assert start(flow, DOCS) == Next(1, "implement", {}, None, None, ("design",))
    assert start(flow, {"type": "feature"}) == Next(0, "design")
    assert next_step(flow, 1, "advance", {}, task=DOCS) == Complete(("tests", "review"))
    assert skip_reason(flow.phases[2], DOCS) == "labels contains small"
    assert skip_reason(flow.phases[2], None) is None
    # rework into a skipped phase moves on to the next runnable one
    step = next_step(flow, 1, "rework", {}, task=DOCS)
    assert step == Next(1, "implement", {"implement": 1}, None, "implement", ("design",))


@pytest.mark.parametrize(("expr", "task", "expected"), [
    ("task_type == docs", {"type": "docs"}, True),
    ("task_type == docs", {"task_type": "docs"}, True),
    ("task.type == 'docs'", {"type": "docs"}, True),
    ('task.type == "bugfix"', {"type": "docs"}, False),
    ("type != docs", {"type": "feature"}, True),
    ("type != docs", {}, True),
    ("type == docs", {}, False),
    ("priority == p0", {"priority": "p0"}, True),
    ("status in [ready, 'in-progress']", {"status": "in-progress"}, True),
    ("status in [ready]", {"status": "blocked"}, False),
    ("status not in [done, cancelled]", {"status": "ready"}, True),
    ("labels contains ui", {"labels": ["ui", "x"]}, True),
    ("labels contains ui", {"labels": []}, False),
    ("labels not contains ui", {"labels": ["x"]}, True),
    ("title contains WIP", {"title": "WIP: docs"}, True),
    ("team == core", {"custom": {"team": "core"}}, True),
    ("meta.size == large", {"meta": {"size": "large"}}, True),
    ("blocked == true", {"blocked": True}, True),
])
def test_condition_forms(expr: str, task: dict[str, Any], expected: bool) -> None:
    assert evaluate(expr, task) is expected


@pytest.mark.parametrize("expr", [
    "", "docs", "task_type docs", "task_type = docs", "task_type == ", "task_type ~= docs",
    "a == b == c", "status in ready", "status in []", "status in [a,]", "status in [a b]",
    "__import__('os') == x", "1abc == x", "a == [b]", "labels contains", "x > 3",
])
def test_condition_syntax_errors(expr: str) -> None:
    with pytest.raises(InvalidInput, match="cannot parse skip_if expression"):
        parse_condition(expr)


def test_first_match_is_an_or() -> None:
    assert first_match(["type == bugfix", "priority == p2"], DOCS) == "priority == p2"
    assert first_match([], DOCS) is None


# ------------------------------------------------------------------ end to end

def test_loaded_workflow_drives_transitions() -> None:
    cfg = load_workflow_texts([("f.yaml", """\
phases:
  implement: { mode: command, command: { program: "true" } }
  tests: { mode: command, command: { program: "true" } }
  review: { mode: manual }
workflows:
  - id: delivery
    phases:
      - implement
      - tests: { skip_if: [task_type == docs], on_verdict: { rework: { target: implement } } }
      - review: { max_rework_attempts: 1, on_verdict: { rework: { target: implement } } }
""")], {})
    flow = cfg.workflow()
    step = start(flow, DOCS)
    assert step == Next(0, "implement")
    step = next_step(flow, 0, "advance", {}, task=DOCS)
    assert step == Next(2, "review", skipped=("tests",))
    step = next_step(flow, 2, "rework", step.rework_counts, feedback="rename x", task=DOCS)
    assert step == Next(0, "implement", {"review": 1}, "rename x", "review")
    assert next_step(flow, 2, "rework", step.rework_counts, task=DOCS) == Fail(
        "rework attempts exhausted for review (max 1)")


# ------------------------------------------------------------------- properties

_ENTRIES = st.lists(st.builds(PhaseEntry, st.sampled_from(["a", "b", "c", "d"]),
                              st.integers(0, 3)), min_size=1, max_size=6)


@settings(max_examples=150, deadline=None)
@given(entries=_ENTRIES, verdicts=st.lists(st.sampled_from(list(Verdict)), max_size=200))
def test_default_routing_always_terminates(entries: list[PhaseEntry],
                                          verdicts: list[Verdict]) -> None:
    """Without targets, every run ends within len + 2 * total rework budget + 1 steps."""
    flow = wf(*entries)
    limit = len(entries) + 2 * sum(e.max_rework_attempts for e in entries) + 1
    step: Next | Complete | Fail = start(flow)
    taken = 0
    verdict_iter = iter(verdicts)
    while isinstance(step, Next):
        verdict = next(verdict_iter, Verdict.ADVANCE)
        if verdict is Verdict.FAIL:
            verdict = Verdict.REWORK
        step = next_step(flow, step.phase_index, verdict, step.rework_counts)
        taken += 1
        assert taken <= limit
