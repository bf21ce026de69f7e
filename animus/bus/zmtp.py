"""The CLI's control client and a runner's bus publisher without libzmq: ZMTP 3.0 over ipc://.

Why: importing pyzmq costs a CLI process ~25 ms, about as much as starting
the interpreter, and operators run ``animus daemon status`` in loops. The
control socket's ``ipc://`` endpoint is a Unix stream socket speaking ZMTP
3.0 (RFC 23); a DEALER that sends a request and reads its reply needs only
the greeting, the NULL-mechanism READY handshake and the frame format. The
requests and replies are exactly ``animus.bus.rpc``'s (msgpack ``{id, method,
params}`` → ``{id, result|error}``), and errors keep their exit codes the
same way. Everything else — tcp:// (CURVE), the bus, the daemon's own
sockets — stays on pyzmq; the ipc socket is private to the user (0700 run/),
which is why it needs no mechanism but NULL.

A workflow runner publishes its events through ``PubSocket``, the same
framing as an XPUB peer of the broker's XSUB: a process per run otherwise
pays for a ZeroMQ context, its I/O thread and their teardown (~2 ms of CPU).
Its sends block when the broker does not keep up (what ``XPUB_NODROP`` does),
and what was sent is in the kernel's buffer: nothing is left to linger on.
"""

from __future__ import annotations

import _socket  # socket.py's wrapper adds nothing we use and imports selectors (~3 ms)
import itertools
import struct
import time

from animus.bus.codec import CodecError, pack, unpack
from animus.errors import DAEMON_NOT_RUNNING, Internal, Unavailable, from_dict

TYPE_CHECKING = False  # typing costs a CLI call ~2.5 ms to import; annotations need it only for mypy
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["Dealer", "IpcControlClient", "PubSocket", "ZmtpError"]

_GREETING = b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\x00") + b"\x00" + b"\x00" * 31
_MORE, _LONG, _COMMAND = 0x01, 0x02, 0x04


class ZmtpError(ConnectionError):
    """The peer does not speak ZMTP 3 with the NULL mechanism, or broke the framing."""


def _property(name: bytes, value: bytes) -> bytes:
    return bytes([len(name)]) + name + struct.pack(">I", len(value)) + value


def _frame(body: bytes, flags: int) -> bytes:
    if len(body) < 256:
        return bytes([flags]) + bytes([len(body)]) + body
    return bytes([flags | _LONG]) + struct.pack(">Q", len(body)) + body


class Dealer:
    """One connected DEALER: ``send(bytes)``, ``recv(deadline) -> bytes`` (a one-part message)."""

    socket_type = b"DEALER"

    def __init__(self, path: str, timeout: float, answer: bool = True) -> None:
        """Connect and send our greeting and READY at once (the NULL mechanism's READY does not
        depend on the peer's greeting: one round trip saved); with ``answer``, read the peer's too.
        Without, ``answered`` does it later, so that the peer's answer arrives meanwhile."""
        self.sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
            self.sock.sendall(_GREETING + _frame(b"\x05READY" + _property(b"Socket-Type", self.socket_type), _COMMAND))
            if answer:
                self.answered()
        except BaseException:
            self.sock.close()
            raise

    def answered(self) -> None:
        """Read the peer's greeting and READY (blocking, up to the socket's timeout)."""
        peer = self._exact(64)
        if peer[0] != 0xFF or peer[9] & 1 != 1 or peer[10] < 3 or peer[12:32].rstrip(b"\x00") != b"NULL":
            raise ZmtpError(f"not a ZMTP 3 NULL peer: greeting {peer[:12].hex()}")
        while True:  # the peer's READY
            flags, body = self._frame()
            if flags & _COMMAND and body[1:1 + body[0]] == b"READY":
                break

    def _exact(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ZmtpError("the peer closed the connection")
            data += chunk
        return data

    def _frame(self) -> tuple[int, bytes]:
        flags = self._exact(1)[0]
        size = struct.unpack(">Q", self._exact(8))[0] if flags & _LONG else self._exact(1)[0]
        return flags, self._exact(size)

    def send(self, payload: bytes) -> None:
        self.sock.sendall(_frame(payload, 0))

    def recv(self, deadline: float) -> bytes:
        """The next message's last part; ``TimeoutError`` past ``deadline`` (monotonic)."""
        parts = []
        while True:
            self.sock.settimeout(max(deadline - time.monotonic(), 0.001))
            flags, body = self._frame()
            if flags & _COMMAND:
                if body[1:1 + body[0]] == b"PING":  # ZMTP 3.1 heartbeat: answer it
                    self.sock.sendall(_frame(b"\x04PONG" + body[1 + body[0] + 2:], _COMMAND))
                continue
            parts.append(body)
            if not flags & _MORE:
                return parts[-1]

    def close(self) -> None:
        self.sock.close()


class PubSocket(Dealer):
    """A publisher connected to the broker's XSUB: ``wait_subscribed(timeout)``, then ``send(cat, body)``."""

    socket_type = b"XPUB"

    def __init__(self, path: str, timeout: float, answer: bool = True) -> None:
        self._answered = answer
        super().__init__(path, timeout, answer)

    def wait_subscribed(self, timeout: float) -> bool:
        """True once the broker's subscription arrived (it knows us: nothing sent is dropped).
        Completes the handshake first if it was left to run meanwhile (``answer=False``)."""
        deadline = time.monotonic() + timeout
        try:
            self.sock.settimeout(max(timeout, 0.001))
            if not self._answered:
                self.answered()
                self._answered = True
            while True:
                self.sock.settimeout(max(deadline - time.monotonic(), 0.001))
                flags, body = self._frame()
                if not flags & _COMMAND and body[:1] == b"\x01":
                    self.sock.setblocking(True)
                    return True
        except TimeoutError:
            return False

    def send_event(self, cat: bytes, body: bytes) -> None:
        """One two-part message; blocks while the broker is behind. What the broker sends us (more
        subscriptions, as subscribers come and go) is read and dropped first, so it never piles up."""
        try:
            while self.sock.recv(65536, _socket.MSG_DONTWAIT):
                pass
        except BlockingIOError:
            pass
        self.sock.sendall(_frame(cat, _MORE) + _frame(body, 0))


class IpcControlClient:
    """``animus.bus.rpc.ControlClient``'s ``call``/``close`` over a ``Dealer``, for ipc:// endpoints."""

    def __init__(self, endpoint: str, timeout: float = 5.0) -> None:
        self.path = endpoint.removeprefix("ipc://")
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._dealer: Dealer | None = None

    def _connected(self) -> Dealer:
        if self._dealer is None:
            try:
                self._dealer = Dealer(self.path, self.timeout)
            except (FileNotFoundError, ConnectionRefusedError):
                raise Unavailable(DAEMON_NOT_RUNNING) from None
            except (OSError, ZmtpError) as exc:
                raise Unavailable(f"cannot reach the daemon at {self.path}: {exc}",
                                  fix="animus daemon status; restart it with animus daemon stop && "
                                      "animus daemon start") from None
        return self._dealer

    def call(self, method: str, params: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
        return self.begin(method, params, timeout)()

    def begin(self, method: str, params: dict[str, Any] | None = None,
              timeout: float | None = None) -> Callable[[], Any]:
        """Send the request now; the function returned waits for its answer (so that the caller's
        own work overlaps the daemon's)."""
        dealer = self._connected()
        req_id = next(self._ids)
        wait = timeout if timeout is not None else self.timeout
        deadline = time.monotonic() + wait
        try:
            dealer.send(pack({"id": req_id, "method": method, "params": params or {}}))
        except (ZmtpError, OSError) as exc:
            self.close()
            raise Unavailable(f"the daemon dropped the connection during {method}: {exc}",
                              fix="animus daemon status") from None
        return lambda: self._answer(dealer, req_id, method, wait, deadline)

    def _answer(self, dealer: Dealer, req_id: int, method: str, wait: float, deadline: float) -> Any:
        try:
            while True:
                try:
                    reply = unpack(dealer.recv(deadline))
                except CodecError as exc:
                    raise Internal(f"unreadable reply from the daemon: {exc.reason}") from None
                if isinstance(reply, dict) and reply.get("id") == req_id:
                    break
        except (TimeoutError, ZmtpError, OSError) as exc:
            self.close()
            if isinstance(exc, TimeoutError):
                raise Unavailable(
                    f"daemon did not answer {method} within {wait:g}s",
                    fix="check it with animus daemon status; restart it with animus daemon stop && "
                        "animus daemon start") from None
            raise Unavailable(f"the daemon dropped the connection during {method}: {exc}",
                              fix="animus daemon status") from None
        if "error" in reply:
            raise from_dict(reply["error"])
        return reply.get("result")

    def close(self) -> None:
        if self._dealer is not None:
            self._dealer.close()
            self._dealer = None
