"""Requests in flight, matched to their replies by id: the one correlation table.

Every asynchronous requester in Animus (the control client, the root asking
a child supervisor, a plugin host asking a plugin) numbers its requests,
keeps one future per id, and settles it when the reply with that id comes,
or fails it on timeout or when the peer is gone. ``owner`` names who owes the
reply (a plugin, a supervisor), so that a reply is only taken from its owner
and everything one peer owes can be failed at once.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

__all__ = ["Pending"]


class Pending:
    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._waiting: dict[int, tuple[str, asyncio.Future[Any]]] = {}

    def open(self, owner: str = "") -> tuple[int, asyncio.Future[Any]]:
        """A new request id and the future its reply will settle."""
        req_id = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[req_id] = (owner, fut)
        return req_id, fut

    async def wait(self, req_id: int, fut: asyncio.Future[Any], timeout: float,
                   timed_out: Callable[[], BaseException]) -> Any:
        """The reply, or ``timed_out()`` raised after ``timeout`` seconds; the id is closed either way."""
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise timed_out() from None
        finally:
            self._waiting.pop(req_id, None)

    def settle(self, req_id: object, reply: Any, owner: str | None = None) -> bool:
        """Hand ``reply`` to the request ``req_id`` (only if ``owner`` owes it, when given)."""
        entry = self._waiting.get(req_id) if type(req_id) is int else None
        if entry is None or (owner is not None and entry[0] != owner):
            return False
        self._waiting.pop(req_id, None)  # type: ignore[call-overload]
        if not entry[1].done():
            entry[1].set_result(reply)
        return True

    def discard(self, req_id: int) -> None:
        """Forget a request that was never sent."""
        entry = self._waiting.pop(req_id, None)
        if entry is not None:
            entry[1].cancel()

    def owed_by(self, owner: str) -> dict[int, asyncio.Future[Any]]:
        return {i: fut for i, (who, fut) in self._waiting.items() if who == owner and not fut.done()}

    def fail(self, futures: dict[int, asyncio.Future[Any]], error: BaseException) -> None:
        for req_id, fut in futures.items():
            if not fut.done():
                fut.set_exception(error)
            self._waiting.pop(req_id, None)

    def fail_all(self, error: BaseException) -> None:
        self.fail({i: fut for i, (_, fut) in self._waiting.items()}, error)
