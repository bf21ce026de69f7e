"""The restart decision as a pure function of exits and a fake clock."""

from __future__ import annotations

import pytest

from animus.supervision.exit_reason import ExitReason
from animus.supervision.policy import Disable, Escalate, Ignore, RestartChildren, RestartPolicy
from animus.supervision.restart_budget import Allow, Exhausted, RestartBudget
from animus.supervision.spec import (
    Backoff, BrutalKill, ChildSpec, ChildType, Infinity, Restart, SpecError, Strategy, SupervisorFlags, Timeout,
    check_children,
)
from animus.supervision.strategy import plan
from animus.testing import FakeClock

CRASH = ExitReason(code=1)
KILLED = ExitReason(signal=9)
CLEAN = ExitReason(code=0)


def spec(cid: str, restart: Restart = Restart.PERMANENT, **kw: object) -> ChildSpec:
    return ChildSpec(id=cid, start={"argv": ["true"]}, restart=restart, **kw)  # type: ignore[arg-type]


def test_backoff_first_restart_at_once_then_doubles_with_cap() -> None:
    b = Backoff(initial=1.0, factor=2.0, cap=5.0)
    assert [b.delay(n) for n in range(1, 7)] == [0.0, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_budget_allows_exactly_five_restarts_then_exhausted() -> None:
    clock = FakeClock()
    budget = RestartBudget(Backoff())
    budget.record_start(clock())
    verdicts = []
    for _ in range(6):
        clock.advance(1)
        verdicts.append(budget.record_exit(clock()))
        budget.record_start(clock())
    assert verdicts[:5] == [Allow(0.0, 1), Allow(1.0, 2), Allow(2.0, 3), Allow(4.0, 4), Allow(8.0, 5)]
    assert verdicts[5] == Exhausted(5)


def test_budget_resets_after_healthy_window() -> None:
    clock = FakeClock()
    budget = RestartBudget(Backoff(healthy_window=60))
    for _ in range(4):
        budget.record_start(clock())
        clock.advance(1)
        assert isinstance(budget.record_exit(clock()), Allow)
    budget.record_start(clock())
    clock.advance(61)  # stayed up long enough: a fresh budget
    assert budget.record_exit(clock()) == Allow(0.0, 1)


@pytest.mark.parametrize("strategy,failed,stop,start", [
    (Strategy.ONE_FOR_ONE, "b", (), ("b",)),
    (Strategy.ONE_FOR_ALL, "b", ("c", "a"), ("a", "b", "c")),
    (Strategy.REST_FOR_ONE, "b", ("c",), ("b", "c")),
    (Strategy.REST_FOR_ONE, "c", (), ("c",)),
])
def test_strategies_plan_stop_in_reverse_and_start_in_order(strategy: Strategy, failed: str,
                                                             stop: tuple[str, ...], start: tuple[str, ...]) -> None:
    steps = plan(strategy, ["a", "b", "c"], failed)
    assert steps.stop == stop and steps.start == start


def test_policy_sequence_restarts_then_disables() -> None:
    clock = FakeClock()
    policy = RestartPolicy(SupervisorFlags(intensity=100, period=10), [spec("w")])
    decisions = []
    for _ in range(6):
        policy.started("w", clock())
        clock.advance(0.5)
        decisions.append(policy.on_exit("w", KILLED, clock()))
    assert [type(d) for d in decisions] == [RestartChildren] * 5 + [Disable]
    assert [d.delay for d in decisions[:5]] == [0.0, 1.0, 2.0, 4.0, 8.0]  # type: ignore[union-attr]
    assert decisions[5] == Disable("w", 5)
    assert "w" in policy.disabled


def test_operator_stop_never_counts_against_budget() -> None:
    clock = FakeClock()
    policy = RestartPolicy(SupervisorFlags(), [spec("w")])
    for _ in range(20):
        policy.started("w", clock())
        assert policy.on_exit("w", ExitReason(signal=15, requested=True), clock()) == Ignore("w")
    assert policy.budgets["w"].restarts == 0


def test_transient_and_temporary_children() -> None:
    clock = FakeClock()
    policy = RestartPolicy(SupervisorFlags(), [spec("t", Restart.TRANSIENT), spec("tmp", Restart.TEMPORARY)])
    assert policy.on_exit("t", CLEAN, clock()) == Ignore("t")
    assert isinstance(policy.on_exit("t", CRASH, clock()), RestartChildren)
    assert policy.on_exit("tmp", CRASH, clock()) == Ignore("tmp")


def test_intensity_exceeded_escalates() -> None:
    clock = FakeClock()
    policy = RestartPolicy(SupervisorFlags(intensity=3, period=5), [spec(f"w{i}") for i in range(5)])
    results = [policy.on_exit(f"w{i}", CRASH, clock()) for i in range(4)]
    assert [type(r) for r in results] == [RestartChildren] * 3 + [Escalate]
    clock.advance(6)  # outside the period: counts drop out of the window
    assert isinstance(policy.on_exit("w4", CRASH, clock()), RestartChildren)


def test_invalid_specs_cannot_be_built() -> None:
    with pytest.raises(SpecError):
        ChildSpec(id="", start={"argv": ["x"]})
    with pytest.raises(SpecError):
        ChildSpec(id="w", start={})
    with pytest.raises(SpecError):
        ChildSpec(id="w", start={"argv": ["x"]}, shutdown=Infinity())
    with pytest.raises(SpecError):
        Timeout(-1)
    with pytest.raises(SpecError):
        check_children([spec("a"), spec("a")])
    ChildSpec(id="s", start={"argv": ["x"]}, type=ChildType.SUPERVISOR, shutdown=Infinity())
    ChildSpec(id="k", start={"argv": ["x"]}, shutdown=BrutalKill())
