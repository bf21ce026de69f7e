"""What the daemon knows of a run on a remote node, and the liveness decision.

The decision is pure (the clock comes in, a verdict goes out), as OTP's
supervisor decides from a small state: the Ray backend only carries it out.

- a run Ray has not placed yet is alive until the placement timeout, then
  ``Unplaceable``: the backend blocks it if no alive node has the resources
  it asks for, or re-arms the timeout if those nodes are only busy;
- a placed run is alive while its node reports within the heartbeat timeout;
  silence longer than that is ``Lost`` (a node gone without Ray noticing yet,
  a partition, a frozen worker);
- a run asked to stop (cancel, daemon drain) that has not stopped within its
  grace is ``Overdue``: it is killed through Ray.

A ``Lost`` run is fenced at once: the daemon refuses its store calls and
heartbeats from then on, so a runner that comes back from a partition
cannot write over what recovery decided.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Alive", "Lost", "Overdue", "RemoteRun", "Unplaceable", "liveness", "node_label"]


def node_label(node: dict[str, Any]) -> str:
    """``10.0.0.7/3f2a9c1e`` — the node's address and the start of its Ray id."""
    if not node:
        return "?"
    return f"{node.get('ip') or node.get('hostname') or '?'}/{str(node.get('node_id') or '')[:8]}"


@dataclass
class RemoteRun:
    wf_id: str
    run: str  # "<workflow id>.<run number>": stale runners are told apart by it
    submitted: float
    started: float | None = None  # first report from its node
    last_seen: float | None = None
    node: dict[str, Any] = field(default_factory=dict)
    previous_node: str | None = None  # the label of the node the workflow's previous run was on
    worker_pid: int | None = None  # on the node, not here
    runner_pid: int | None = None
    stop: str | None = None  # "term" once asked to stop, "kill" once fenced
    stop_requested: float | None = None
    reported: bool = False  # the exit went to recovery already
    ref: Any = None  # Ray's ObjectRef for the task

    def snapshot(self) -> dict[str, Any]:
        """As a child of the workflows supervisor in ``daemon status``."""
        return {
            "name": self.wf_id, "kind": "worker", "role": "workflow",
            "pid": None,  # a remote pid means nothing here (and must never be reaped here)
            "state": "running" if self.started is not None else "starting",
            "restarts": 0, "last_error": None, "children": [],
            "backend": "ray", "node": node_label(self.node) if self.node else None,
            "node_id": self.node.get("node_id"), "remote_pid": self.runner_pid, "worker_pid": self.worker_pid,
        }


@dataclass(frozen=True)
class Alive:
    pass


@dataclass(frozen=True)
class Lost:
    reason: str


@dataclass(frozen=True)
class Overdue:
    reason: str


@dataclass(frozen=True)
class Unplaceable:
    reason: str


ALIVE = Alive()


def liveness(run: RemoteRun, now: float, heartbeat_timeout: float, placement_timeout: float,
             stop_grace: float) -> Alive | Lost | Overdue | Unplaceable:
    if run.started is None:
        if now - run.submitted > placement_timeout:
            return Unplaceable(f"Ray placed it on no node within {placement_timeout:g}s, and no alive node "
                               "has the resources runners.ray asks for (num_cpus_per_run, resources)")
        return ALIVE
    silent = now - (run.last_seen if run.last_seen is not None else run.started)
    if silent > heartbeat_timeout:
        return Lost(f"lost with node {node_label(run.node)}: no heartbeat for {silent:.1f}s")
    if run.stop_requested is not None and now - run.stop_requested > stop_grace:
        return Overdue(f"did not stop within {stop_grace:g}s of being asked")
    return ALIVE
