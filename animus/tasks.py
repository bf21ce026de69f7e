"""Every asyncio task has an owner (trio's nursery, on ``asyncio.TaskGroup``).

A long-lived process opens one ``Nursery`` for its lifetime and starts every
background task through ``spawn``. A task that raises cancels its siblings and
the error leaves the ``async with`` block: the process dies loudly and its
supervisor decides (let it crash, never run headless). At shutdown the owner
calls ``cancel_all`` and the block waits until every task has ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

__all__ = ["Nursery"]

T = TypeVar("T")


class Nursery:
    def __init__(self) -> None:
        self._group = asyncio.TaskGroup()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.open = False

    async def __aenter__(self) -> Nursery:
        await self._group.__aenter__()
        self.open = True
        return self

    async def __aexit__(self, et: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        try:
            await self._group.__aexit__(et, exc, tb)
        finally:
            self.open = False

    def spawn(self, coro: Coroutine[Any, Any, T], name: str | None = None) -> asyncio.Task[T]:
        """Start ``coro`` as a task this nursery owns."""
        if not self.open:
            coro.close()
            raise RuntimeError("the nursery is closed: nothing may start after shutdown")
        task = self._group.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    def __len__(self) -> int:
        return len(self._tasks)
