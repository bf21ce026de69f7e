"""The root's side of the ``tree`` socket: child supervisors' reports, and requests to them.

Each child supervisor is a DEALER whose routing id is its name. It sends
``ready`` (its pid and subtree) once its children are started, ``tree`` on
every change of its subtree, and ``reply`` to the root's ``request``s. One
started *held* (it needs others up first) says ``held`` when it is prepared,
and starts its children only on the root's ``go``. Every
frame is checked at this edge (``bus.frames``): a malformed one is counted
and dropped, never fatal. ``ask`` is request/response over the socket: one
pending future per request id, failed with ``Unavailable`` on timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import zmq
import zmq.asyncio

from animus.bus.codec import CodecError, pack, unpack
from animus.bus.frames import FrameError, reply_id, subtree
from animus.bus.metrics import Metrics
from animus.bus.pending import Pending
from animus.errors import Unavailable, from_dict
from animus.supervision.pidlock import create_times
from animus.supervision.spec import RUN_ROLE
from animus.supervision.supervisor import ChildState, Supervisor

__all__ = ["TreeLink"]


class TreeLink:
    def __init__(self, sock: zmq.asyncio.Socket, metrics: Metrics, changed: Callable[[], None]) -> None:
        self.sock = sock
        self.metrics = metrics
        self.changed = changed  # the tree's pids changed: record them
        self.sup: Supervisor | None = None  # set once the root's supervisor exists
        self.skipped: dict[str, str] = {}  # supervisor -> why it is not running
        self.disabled: dict[str, set[str]] = {}  # supervisor -> disabled children, kept across its restarts
        self.pending = Pending()
        self.on_held: Callable[[str, int], None] = lambda name, pid: None

    async def serve(self) -> None:
        while True:
            ident, *frames = await self.sock.recv_multipart()
            try:
                self._frame(ident, frames)
            except FrameError as exc:  # checked at the edge: counted, dropped, never fatal
                self.metrics.inc("tree_frames_malformed_total", reason=exc.reason[:40])

    def _frame(self, ident: bytes, frames: list[bytes]) -> None:
        if len(frames) != 1:
            raise FrameError("wrong frame count")
        try:
            msg = unpack(frames[0])
        except CodecError:
            raise FrameError("not msgpack") from None
        if not isinstance(msg, dict):
            raise FrameError("not a map")
        if self.sup is None:
            return
        name = ident.decode(errors="replace")
        rec = self.sup.children.get(name)
        kind = msg.get("type")
        if kind in ("ready", "tree") and rec is not None:
            children = subtree(msg.get("children", []))
            pid = msg.get("pid", 0)
            if kind == "ready" and type(pid) is not int:
                raise FrameError("ready pid is not an integer")
            rec.info["children"] = children
            lasting = [child for child in children if child.get("role") != RUN_ROLE]  # runs record themselves
            rec.info["worker_create_times"] = create_times(lasting, rec.info.get("worker_create_times"))
            if kind == "ready":
                self.sup.child_ready(name, int(pid) or None)
            else:
                for child in children:
                    if child.get("state") == "disabled":
                        self.disabled.setdefault(name, set()).add(child["name"])
            self.changed()
        elif kind == "reply":
            self.pending.settle(reply_id(msg), msg, owner=name)
        elif kind == "held" and rec is not None and type(msg.get("pid")) is int:
            self.on_held(name, msg["pid"])

    async def tell(self, supervisor: str, msg: dict[str, Any]) -> bool:
        """Send ``msg`` to a child supervisor; False if it is not connected."""
        try:
            await self.sock.send_multipart([supervisor.encode(), pack(msg)])
        except zmq.ZMQError:
            return False
        return True

    async def ask(self, supervisor: str, method: str, params: dict[str, Any], timeout: float = 10.0) -> Any:
        """Send a request to a child supervisor and wait for its reply."""
        if self.sup is None or supervisor not in self.sup.children:
            reason = self.skipped.get(supervisor, "not part of this daemon")
            raise Unavailable(f"{supervisor} supervisor is {reason}")
        rec = self.sup.children[supervisor]
        if rec.state is not ChildState.RUNNING:
            # not sent: the caller may safely ask again once it runs
            raise Unavailable(f"{supervisor} supervisor is {rec.state.value}",
                              fix="animus daemon status; animus daemon health",
                              details={"not_sent": True, "supervisor_state": rec.state.value})
        req_id, fut = self.pending.open(supervisor)
        try:
            await self.sock.send_multipart([supervisor.encode(), pack(
                {"type": "request", "id": req_id, "method": method, "params": params})])
        except zmq.ZMQError as exc:
            self.pending.discard(req_id)
            raise Unavailable(f"{supervisor} supervisor is not connected: {exc}") from None
        reply = await self.pending.wait(
            req_id, fut, timeout, lambda: Unavailable(f"{supervisor} supervisor did not answer {method} within {timeout:g}s"))
        if "error" in reply:
            err = reply["error"]
            raise from_dict(err) if isinstance(err, dict) else Unavailable(f"{supervisor} sent a malformed error")
        return reply.get("result")
