"""A preloaded fork server for first-party Python workers.

Starting a Python worker by exec costs an interpreter and its imports (zmq,
msgpack, asyncio, the SDK: 40–200 ms here). A zygote pays that once: it
imports them, then forks a fresh worker per request in a few milliseconds.
Each supervisor that has first-party Python children (``python -m animus.…``)
starts one zygote and asks it for those children; anything else is exec'd.

The zygote holds no threads and no ZeroMQ context, so forking it is safe. A
forked worker gets its own session (process group), a parent-death signal
(its parent is the zygote, which itself dies with the supervisor), /dev/null
for stdin and stdout, and the write end of a stderr pipe the supervisor
created and passed over the socket. The zygote reaps its children and reports
each exit status; if the zygote dies, its children die with it and the
supervisor reports them killed.

Wire: one JSON object per SOCK_SEQPACKET message on a socketpair.
  supervisor → zygote  ``{"id", "module", "args", "env", "cwd"}`` + the stderr fd
  zygote → supervisor  ``{"ready": pid}`` once, ``{"id", "pid"}`` or ``{"id", "error"}``,
                       and ``{"exit": pid, "status": code}`` (negative for a signal)
"""

from __future__ import annotations

import importlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from animus.process.pdeathsig import preexec_parent_death, set_parent_death_signal

__all__ = ["Zygote", "eligible", "BASE_PRELOAD"]

BASE_PRELOAD = ("zmq", "zmq.asyncio", "msgpack", "asyncio", "psutil", "animus.plugin_runtime.sdk",
                "animus.bus.publisher", "animus.bus.rpc")
_FD_ENV = "ANIMUS_ZYGOTE_FD"
_MAX_MSG = 1 << 20


def eligible(argv: list[str]) -> str | None:
    """The module to run if ``argv`` is ``<this python> -m animus.…``, else None."""
    if len(argv) >= 3 and argv[0] == sys.executable and argv[1] == "-m" and argv[2].startswith("animus."):
        return argv[2]
    return None


# -- supervisor side ------------------------------------------------------------
class Zygote:
    """The supervisor's handle on its zygote: ``fork`` a worker, learn its exit."""

    def __init__(self, preload: list[str], on_exit: Callable[[int, int], None]) -> None:
        self.preload = list(dict.fromkeys([*BASE_PRELOAD, *preload]))
        self.on_exit = on_exit  # (pid, status) for every reaped child
        self.sock: socket.socket | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.children: set[int] = set()
        self._ids = 0
        self._reader_loop: Any = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and self.sock is not None

    def start(self, timeout: float = 15.0) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(os.environ)
        env[_FD_ENV] = str(theirs.fileno())
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "animus.supervision.zygote", *self.preload],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            pass_fds=(theirs.fileno(),), start_new_session=True, preexec_fn=preexec_parent_death,
        )
        theirs.close()
        ours.settimeout(timeout)
        try:
            ready = json.loads(ours.recv(_MAX_MSG) or b"{}")
        except (OSError, ValueError) as exc:
            self.stop()
            raise RuntimeError(f"zygote did not start: {exc}") from None
        if "ready" not in ready:
            self.stop()
            raise RuntimeError("zygote did not start")
        ours.setblocking(False)
        self.sock = ours

    def attach(self, loop: Any) -> None:
        """Read exit reports as they come (the supervisor's event loop)."""
        if self.sock is not None and self._reader_loop is None:
            loop.add_reader(self.sock.fileno(), self._drain)
            self._reader_loop = loop

    def fork(self, module: str, args: list[str], env: dict[str, str], cwd: str | None) -> tuple[int, int]:
        """Fork a worker; return (pid, stderr read fd)."""
        if not self.alive():
            self._dead()
            self.start()
            if self._reader_loop is not None:
                loop, self._reader_loop = self._reader_loop, None
                self.attach(loop)
        assert self.sock is not None
        self._ids += 1
        req_id = self._ids
        read_fd, write_fd = os.pipe()
        try:
            body = json.dumps({"id": req_id, "module": module, "args": args, "env": env, "cwd": cwd}).encode()
            socket.send_fds(self.sock, [body], [write_fd])
        finally:
            os.close(write_fd)
        deadline = time.monotonic() + 10
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self.sock], [], [], remaining)[0]:
                os.close(read_fd)
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
                self.children.add(int(msg["pid"]))
                return int(msg["pid"]), read_fd
            self._handle(msg)

    def _recv(self) -> dict[str, Any] | None:
        assert self.sock is not None
        try:
            data = self.sock.recv(_MAX_MSG)
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


# -- zygote side ----------------------------------------------------------------
def _run_child(sock: socket.socket, wake: tuple[int, int], req: dict[str, Any], stderr_fd: int | None) -> None:
    """In the forked child: become the worker; never returns."""
    code = 1
    try:
        os.setsid()
        set_parent_death_signal(signal.SIGKILL)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        sock.close()
        for fd in wake:
            os.close(fd)
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.dup2(stderr_fd if stderr_fd is not None else null, 2)
        os.close(null)
        if stderr_fd is not None:
            os.close(stderr_fd)
        if req.get("cwd"):
            os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(req.get("env") or {})
        import random

        random.seed()
        import runpy

        sys.argv = [req["module"], *req.get("args", [])]
        # the module run as __main__ was preloaded for what it imports; runpy runs it afresh (found in
        # sys.modules, it would warn "may result in unpredictable behaviour" on every worker's stderr)
        for name in (req["module"], req["module"] + ".__main__"):
            if not hasattr(sys.modules.get(name), "__path__"):
                sys.modules.pop(name, None)
        runpy.run_module(req["module"], run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, int) and exc.code is not None:
            print(exc.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _serve(sock: socket.socket) -> None:
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    sock.send(json.dumps({"ready": os.getpid()}).encode())
    while True:
        watched: list[Any] = [sock, wake_r]
        readable, _, _ = select.select(watched, [], [])
        if wake_r in readable:
            os.read(wake_r, 4096)
        while True:  # reap every child that exited
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            sock.send(json.dumps({"exit": pid, "status": os.waitstatus_to_exitcode(status)}).encode())
        if sock not in readable:
            continue
        try:
            data, fds, _flags, _addr = socket.recv_fds(sock, _MAX_MSG, 2)
        except OSError:
            return
        if not data:
            return  # the supervisor is gone
        req = json.loads(data)
        env = dict(req.get("env") or {})
        env["ANIMUS_PARENT_PID"] = str(os.getpid())  # the worker's parent is the zygote
        req["env"] = env
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as exc:
            for fd in fds:
                os.close(fd)
            sock.send(json.dumps({"id": req.get("id"), "error": str(exc)}).encode())
            continue
        if pid == 0:
            _run_child(sock, (wake_r, wake_w), req, fds[0] if fds else None)
        for fd in fds:
            os.close(fd)
        sock.send(json.dumps({"id": req.get("id"), "pid": pid}).encode())


def main() -> None:
    set_parent_death_signal(signal.SIGKILL)
    sock = socket.socket(fileno=int(os.environ.pop(_FD_ENV)))
    for name in sys.argv[1:]:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError:
            continue  # ``pkg.__main__`` is tried for every module; plain modules have none
        except Exception as exc:  # the worker will import it itself after the fork
            print(f"zygote: cannot preload {name}: {exc}", file=sys.stderr)
    _serve(sock)


if __name__ == "__main__":
    main()
