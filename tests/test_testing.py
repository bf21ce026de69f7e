"""The shipped test helpers: they must fail when the thing they check is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from animus.testing import EventRecorder, WaitTimeout, check_sequence_matches, wait_until


def test_wait_until_lets_an_assertion_through_at_once() -> None:
    calls = []

    def predicate() -> bool:
        calls.append(1)
        assert len(calls) > 5, "wrong answer"
        return True

    with pytest.raises(AssertionError, match="wrong answer") as info:
        wait_until(predicate, timeout=5)
    assert not isinstance(info.value, WaitTimeout) and len(calls) == 1


def test_wait_until_treats_other_errors_as_not_yet_and_names_the_last() -> None:
    attempts = iter([FileNotFoundError("no socket yet"), ConnectionError("refused"), "up"])

    def predicate() -> str:
        item = next(attempts)
        if isinstance(item, Exception):
            raise item
        return item

    assert wait_until(predicate, timeout=5, interval=0) == "up"
    with pytest.raises(WaitTimeout, match=r"waiting for the thing \(last error: KeyError\('k'\)\)"):
        wait_until(lambda: {}["k"], timeout=0.05, what="the thing")


@pytest.mark.parametrize("seq", [["a", "b", "c", "d"], ["a", "c", "b", "d"]])
def test_a_set_matches_its_members_in_any_order(seq: list[str]) -> None:
    check_sequence_matches(seq, ["a", {"b", "c"}, "d"])


@pytest.mark.parametrize("seq, why", [
    (["a", "b", "d", "c"], "item 1 expected {'b', 'c'} in any order"),
    (["a", "b", "c"], "item 2 expected 'd'"),
    (["a", "b", "c", "d", "e"], "['e'] left over at position 4"),
    (["a", "b", "b", "d"], "item 1"),
    (["x", "b", "c", "d"], "item 0 expected 'a', got ['x']"),
])
def test_a_sequence_that_differs_fails_naming_where(seq: list[str], why: str) -> None:
    with pytest.raises(AssertionError) as info:
        check_sequence_matches(seq, ["a", {"b", "c"}, "d"])
    assert why in str(info.value)


def _line(kind: str, workflow_id: str | None = None, **data: object) -> bytes:
    event = {"v": 1, "seq": 1, "src": "t", "cat": "workflow", "kind": kind, "data": data}
    if workflow_id:
        event["workflow_id"] = workflow_id
    return json.dumps(event).encode() + b"\n"


def test_recorder_follows_the_log_and_waits_for_a_torn_line_to_end(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "events.jsonl"
    recorder = EventRecorder.of_state_root(tmp_path)
    assert recorder.poll() == []  # no log yet
    log.parent.mkdir()
    whole = _line("phase_started", "wf-1", phase="a") + _line("child_started", child="x", pid=7)
    log.write_bytes(whole + _line("phase_completed", "wf-1")[:10])
    assert [e["kind"] for e in recorder.poll()] == ["phase_started", "child_started"]
    with log.open("ab") as fh:
        fh.write(_line("phase_completed", "wf-1")[10:])
    assert recorder.kinds(workflow_id="wf-1") == ["phase_started", "phase_completed"]
    assert recorder.of("child_started", child="x") == [{"child": "x", "pid": 7}]
    assert recorder.of("child_started", child="y") == []
    assert recorder.wait_for("phase_completed", timeout=1, workflow_id="wf-1")
    with pytest.raises(WaitTimeout, match="2 phase_completed event"):
        recorder.wait_for("phase_completed", timeout=0.05, count=2)
