"""Starting children at once (``Supervisor.start(after=...)``), with real processes.

Independent children are all spawned before the first one acknowledges; a
child named in ``after`` is spawned only once the children it needs have
acknowledged. Without ``after`` the OTP order holds (test_supervisor_process).
The orders are read from the recorded spawns and events, never from durations.
"""

from __future__ import annotations

from test_supervisor_process import Harness, child, harnesses, make

from animus.supervision.spec import SupervisorFlags
from animus.supervision.supervisor import ChildState

__all__ = ["harnesses"]  # the fixture, shared with test_supervisor_process


def spawned_at(h: Harness, cid: str) -> float:
    return next(t for t, c, _ in h.spawns if c == cid)


def started_at(h: Harness, cid: str) -> float:
    return h.of("child_started", child=cid)[0][0]


def test_independent_children_start_at_once_and_a_dependent_one_after(harnesses: list[Harness]) -> None:
    h = make(harnesses, SupervisorFlags(), [child("a"), child("b"), child("c"), child("late")])
    h.call(h.sup.start({"late": ("a", "b")}))
    assert all(h.state(c) is ChildState.RUNNING for c in ("a", "b", "c", "late"))
    first_ready = min(started_at(h, c) for c in ("a", "b", "c"))
    assert max(spawned_at(h, c) for c in ("a", "b", "c")) < first_ready  # none waited for another
    assert spawned_at(h, "late") > max(started_at(h, "a"), started_at(h, "b"))


def test_a_child_that_fails_to_start_does_not_stop_the_others(harnesses: list[Harness]) -> None:
    h = make(harnesses, SupervisorFlags(), [child("hangs", "hang"), child("fine")], ready_timeout=1.0)
    h.call(h.sup.start({}))
    assert h.state("fine") is ChildState.RUNNING
    assert h.of("child_start_timeout", child="hangs")
