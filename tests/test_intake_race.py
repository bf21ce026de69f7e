"""A run on a task is not started before its task is in progress (found by bench/soak.py).

The intake creates the run, then moves its task to ``in-progress`` through
the subject backend. The run used to be dispatchable meanwhile: a queue fill
(a runner's exit, the scheduler's tick) started it, it could complete, and
when the intake then gave up on a slow backend it blocked the run anyway —
the soak saw "workflow_completed published, workflow.db says blocked".

In process, on a real ``workflow.db``: the queue, the intake and the
projector are the daemon's own; only the two ends are stand-ins — the
subject backend behind the control socket (one call held until the test
lets it fail, as a frozen backend's would) and the launcher (a runner is a
process; here a launch is recorded).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from animus.errors import Unavailable
from animus.workflow.events import WorkflowEvents
from animus.workflow.intake import Intake
from animus.workflow.projection import Projector
from animus.workflow.queue import RunQueue
from animus.workflow.store import WorkflowRow, WorkflowStore


class Backend:
    """``subject/call`` as the root answers it: the first ``get`` is held, then fails."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.held = asyncio.Event()
        self.calls: list[str] = []

    async def call(self, method: str, params: dict[str, Any], timeout: float = 15) -> Any:
        verb = params["verb"]
        self.calls.append(verb)
        if verb == "get" and self.calls.count("get") == 1:
            self.held.set()
            await self.release.wait()
            raise Unavailable("Subject backend unavailable: plugin default did not answer")
        return {"id": params["params"]["id"], "title": "t", "status": "ready"}


class Launcher:
    available = True

    def __init__(self) -> None:
        self.launched: list[str] = []

    def running(self) -> set[str]:
        return set()

    def has(self, wf_id: str) -> bool:
        return wf_id in self.launched

    async def launch(self, wf: WorkflowRow, run_no: int) -> None:
        self.launched.append(wf["id"])


def test_a_run_is_not_started_while_its_intake_waits_and_a_late_failure_blocks_only_a_pending_run(
        tmp_path: Path) -> None:
    async def scenario() -> None:
        store = WorkflowStore(tmp_path / "workflow.db")
        events = WorkflowEvents(lambda *a: None, lambda *a, **k: None, store)
        backend, launcher = Backend(), Launcher()
        projector = Projector(store, backend, lambda *a: None)
        queue = RunQueue(store, launcher, projector, events, pool_size=2)
        configs = SimpleNamespace(workflows={"quick": object()}, default_workflow_ref="quick")
        intake = Intake(store, queue, projector, events, lambda: configs)

        taking_in = asyncio.create_task(intake.on_subject("task", {"id": "TASK-1", "title": "t"}, None, "manual"))
        await asyncio.wait_for(backend.held.wait(), 5)
        wf_id = store.by_status("pending")[0]["id"]
        await queue.fill()  # a runner exited meanwhile: the queue fills
        assert launcher.launched == [], "the run started before its task was in progress"
        assert store.get(wf_id)["status"] == "pending"

        backend.release.set()
        row = await asyncio.wait_for(taking_in, 5)
        assert row["status"] == "blocked" and row["blocked_reason"] == "Subject backend unavailable"
        await queue.fill()
        assert launcher.launched == []  # blocked: it waits for the operator

    asyncio.run(scenario())
