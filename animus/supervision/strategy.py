"""Which children to stop and restart when one exits: OTP's strategies.

``plan`` is pure: it takes the children in start order and the id of the one
that failed, and returns the ids to stop (in reverse start order) and the ids
to start again (in start order).
"""

from __future__ import annotations

from dataclasses import dataclass

from animus.supervision.spec import Strategy

__all__ = ["Plan", "plan"]


@dataclass(frozen=True)
class Plan:
    stop: tuple[str, ...]
    start: tuple[str, ...]


def plan(strategy: Strategy, order: list[str], failed: str) -> Plan:
    if failed not in order:
        raise ValueError(f"unknown child {failed!r}")
    if strategy in (Strategy.ONE_FOR_ONE, Strategy.SIMPLE_ONE_FOR_ONE):
        return Plan(stop=(), start=(failed,))
    if strategy is Strategy.ONE_FOR_ALL:
        others = [c for c in order if c != failed]
        return Plan(stop=tuple(reversed(others)), start=tuple(order))
    if strategy is Strategy.REST_FOR_ONE:
        idx = order.index(failed)
        rest = order[idx + 1 :]
        return Plan(stop=tuple(reversed(rest)), start=tuple(order[idx:]))
    raise ValueError(f"unknown strategy {strategy!r}")
