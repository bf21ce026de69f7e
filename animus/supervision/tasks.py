"""Owned asyncio tasks: a long-lived loop of the root never dies unnoticed.

The root's receive loops (the control socket, the tree socket, the remote
runners' control socket) are asyncio tasks. An exception that escapes one of
them ends the task silently: the process still looks alive, ``daemon
status`` may still answer, and the part that died (every reply from a child
supervisor, say) is just gone. So each loop is started here, and when one
ends for any reason but its own cancellation, ``TaskOwner``:

1. logs it with the exception and emits ``task_crashed`` (an error event);
2. starts it again at once, as long as its restart intensity holds
   (``intensity`` restarts within ``period`` seconds, OTP's MaxR/MaxT);
3. past that, calls ``give_up(name, reason)``: the root stops and exits
   non-zero, so whatever supervises the daemon sees it and restarts it.

It never runs headless. ``close()`` cancels every task and waits for them.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import Callable, Coroutine
from typing import Any

from animus.supervision.intensity import Intensity

__all__ = ["TaskOwner"]

Factory = Callable[[], Coroutine[Any, Any, None]]


class TaskOwner:
    def __init__(self, log: Any, emit: Callable[[str, str, dict[str, Any]], None],
                 give_up: Callable[[str, str], None], intensity: int = 5, period: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.log = log
        self.emit = emit
        self.give_up = give_up
        self.clock = clock
        self._limits: dict[str, Intensity] = {}
        self._factories: dict[str, Factory] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.restarts: dict[str, int] = {}
        self.closing = False
        self._intensity, self._period = intensity, period

    def start(self, name: str, factory: Factory) -> None:
        """Run ``factory()`` as the task ``name``, restarted from ``factory`` if it dies."""
        self._factories[name] = factory
        self._limits.setdefault(name, Intensity(self._intensity, self._period))
        self.restarts.setdefault(name, 0)
        task = asyncio.get_running_loop().create_task(factory(), name=f"animus:{name}")
        self.tasks[name] = task
        task.add_done_callback(lambda t, n=name: self._ended(n, t))  # type: ignore[misc]

    def _ended(self, name: str, task: asyncio.Task[None]) -> None:
        if self.closing:
            return
        if task.cancelled():
            reason = "cancelled"
        elif task.exception() is not None:
            exc = task.exception()
            assert exc is not None
            reason = f"{type(exc).__name__}: {exc}"
            self.log.error("daemon task crashed", task=name, error=reason,
                           traceback="".join(traceback.format_exception(exc))[-2000:])
        else:
            reason = "returned"
        self.emit("task_crashed", "error", {"task": name, "reason": reason[:500]})
        if not self._limits[name].record(self.clock()):
            self.log.error("daemon task keeps crashing; the daemon exits", task=name, reason=reason)
            self.give_up(name, reason)
            return
        self.restarts[name] += 1
        self.log.warning("daemon task restarted", task=name, restarts=self.restarts[name])
        self.start(name, self._factories[name])

    async def close(self) -> None:
        self.closing = True
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
