"""When cron schedules are due: a pure function of entries, last runs and now.

``plan`` returns what fires at ``now`` and the new last-run table. A
schedule seen for the first time starts counting from ``now`` (it does not
fire at once); a schedule whose next time after its last run has passed
fires once, however many times were missed while the daemon was down (as
the original did), and its last run becomes ``now``. Ids no longer
configured drop out of the table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from croniter import croniter

__all__ = ["CronEntry", "Firing", "plan", "next_due"]


@dataclass(frozen=True)
class CronEntry:
    id: str
    cron: str


@dataclass(frozen=True)
class Firing:
    id: str
    due: float


def next_due(cron: str, after: float) -> float:
    return float(croniter(cron, after).get_next(float))


def plan(entries: Iterable[CronEntry], last_runs: Mapping[str, float],
         now: float) -> tuple[list[Firing], dict[str, float]]:
    fires: list[Firing] = []
    table: dict[str, float] = {}
    for entry in entries:
        last = last_runs.get(entry.id)
        if last is None:
            table[entry.id] = now
            continue
        due = next_due(entry.cron, last)
        if due <= now:
            fires.append(Firing(entry.id, due))
            table[entry.id] = now
        else:
            table[entry.id] = last
    return fires, table
