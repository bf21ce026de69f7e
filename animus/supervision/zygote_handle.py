"""The supervisor's handle on its zygote (``zygote.py``): start it, ask it to fork, hear exits.

Started exec'd, or forked from the supervisor itself while that is safe (one
thread, no ZeroMQ context yet); the handshake is read at the first fork, so
the supervisor goes on with its own start meanwhile.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from animus.process.pdeathsig import preexec_parent_death
from animus.supervision.zygote import BASE_PRELOAD, FD_ENV, MAX_MSG, become, detach_from_supervisor

__all__ = ["Zygote"]


class Zygote:
    """The supervisor's handle on its zygote: ``fork`` a worker, learn its exit."""

    def __init__(self, preload: list[str], on_exit: Callable[[int, int], None],
                 on_lost: Callable[[int], None] | None = None, lean: bool = False) -> None:
        # lean: its workers' own modules only (no BASE_PRELOAD), so it is always exec'd, never forked
        self.preload = list(dict.fromkeys(preload if lean else [*BASE_PRELOAD, *preload]))
        self.on_exit = on_exit  # (pid, status) for every reaped child
        self.on_lost = on_lost  # pid of a detached child whose zygote died (it lives on, status unreported)
        self.sock: socket.socket | None = None
        self.proc: subprocess.Popen[bytes] | _Forked | None = None
        self.children: set[int] = set()
        self.detached: set[int] = set()
        self._env: dict[str, str] | None = None  # the last worker's environment: the zygote has it
        self._ids = 0
        self._reader_loop: Any = None
        self._ready = False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and self.sock is not None

    def start(self, fork_self: bool = False) -> None:
        """Start the zygote; its handshake is read at the first ``fork`` (the caller goes on meanwhile).

        ``fork_self`` forks this very process (no exec, no imports to redo) when that is safe:
        one thread, and the caller vouches that no ZeroMQ context exists yet."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        if fork_self and threading.active_count() == 1:
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                ours.close()
                try:
                    parent = os.getppid()
                    detach_from_supervisor(theirs.fileno())
                    become(theirs, self.preload, parent)
                finally:
                    os._exit(0)
            self.proc = _Forked(pid)
        else:
            env = dict(os.environ)
            env[FD_ENV] = str(theirs.fileno())
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "animus.supervision.zygote", *self.preload],
                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),), start_new_session=True, preexec_fn=preexec_parent_death,
            )
        theirs.close()
        self.sock = ours
        self._ready = False
        self._env = None  # a new zygote: it gets the first worker's whole environment

    def _handshake(self, timeout: float = 15.0) -> None:
        assert self.sock is not None
        self.sock.settimeout(timeout)
        try:
            ready = json.loads(self.sock.recv(MAX_MSG) or b"{}")
        except (OSError, ValueError) as exc:
            self.stop()
            raise RuntimeError(f"zygote did not start: {exc}") from None
        if "ready" not in ready:
            self.stop()
            raise RuntimeError("zygote did not start")
        self.sock.setblocking(False)
        self._ready = True

    def attach(self, loop: Any) -> None:
        """Read exit reports as they come (the supervisor's event loop)."""
        if self.sock is not None and self._ready and self._reader_loop is None:
            loop.add_reader(self.sock.fileno(), self._drain)
            self._reader_loop = loop

    def fork(self, module: str, args: list[str], env: dict[str, str], cwd: str | None,
             detach: bool = False) -> tuple[int, int]:
        """Fork a worker; return (pid, stderr read fd)."""
        if not self.alive():
            self._dead()
            self.start()
        if not self._ready:
            self._handshake()
            if self._reader_loop is not None:
                loop, self._reader_loop = self._reader_loop, None
                self.attach(loop)
        assert self.sock is not None
        self._ids += 1
        req_id = self._ids
        read_fd, write_fd = os.pipe()
        try:
            body = json.dumps({"id": req_id, "module": module, "args": args, "cwd": cwd, "detach": detach,
                               **self._env_fields(env)}).encode()
            socket.send_fds(self.sock, [body], [write_fd])
        finally:
            os.close(write_fd)
        deadline = time.monotonic() + 10
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self.sock], [], [], remaining)[0]:
                os.close(read_fd)
                self._env = None  # whether it adopted that environment is not known: send all next time
                raise RuntimeError("zygote did not answer a fork request within 10s")
            msg = self._recv()
            if msg is None:
                os.close(read_fd)
                self._dead()
                raise RuntimeError("zygote died while forking")
            if msg.get("id") == req_id:
                if "error" in msg:
                    os.close(read_fd)
                    raise RuntimeError(f"zygote could not fork: {msg['error']}")
                (self.detached if detach else self.children).add(int(msg["pid"]))
                self._env = dict(env)  # a copy: the caller may reuse its dict
                return int(msg["pid"]), read_fd
            self._handle(msg)

    def _env_fields(self, env: dict[str, str]) -> dict[str, Any]:
        """The whole environment for a new zygote, then what differs from the last worker's."""
        last = self._env
        if last is None:
            return {"env": env}
        return {"env_set": {k: v for k, v in env.items() if last.get(k) != v},
                "env_unset": [k for k in last if k not in env]}

    def _recv(self) -> dict[str, Any] | None:
        assert self.sock is not None
        try:
            data = self.sock.recv(MAX_MSG)
        except BlockingIOError:
            return {}
        except OSError:
            return None
        if not data:
            return None
        return dict(json.loads(data))

    def _drain(self) -> None:
        while self.sock is not None:
            msg = self._recv()
            if msg is None:
                self._dead()
                return
            if not msg:
                return
            self._handle(msg)

    def _handle(self, msg: dict[str, Any]) -> None:
        if "exit" in msg:
            pid = int(msg["exit"])
            self.children.discard(pid)
            self.detached.discard(pid)
            self.on_exit(pid, int(msg["status"]))

    def _dead(self) -> None:
        """The zygote is gone: its children died with it; report them killed."""
        if self.sock is not None:
            if self._reader_loop is not None:
                self._reader_loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None
        for pid in list(self.children):
            self.children.discard(pid)
            self.on_exit(pid, -signal.SIGKILL)
        for pid in list(self.detached):  # alive or not, they are no longer the zygote's to report
            self.detached.discard(pid)
            if self.on_lost is not None:
                self.on_lost(pid)
        self._ready = False
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()

    def stop(self) -> None:
        if self.sock is not None and self._reader_loop is not None:
            self._reader_loop.remove_reader(self.sock.fileno())
            self._reader_loop = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class _Forked:
    """The ``Popen`` surface the handle needs, for a zygote forked without exec."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = -signal.SIGKILL  # reaped elsewhere: gone either way
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            os.kill(self.pid, signal.SIGKILL)

    def wait(self) -> int:
        code = self.poll()
        while code is None:
            try:
                _, status = os.waitpid(self.pid, 0)
                code = os.waitstatus_to_exitcode(status)
            except ChildProcessError:
                code = -signal.SIGKILL
        self.returncode = code
        return code
