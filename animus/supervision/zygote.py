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
supervisor reports them killed. A worker's process title is the command line
it would have had if exec'd, so ``ps`` and psutil name it as such.

A worker module may name its entry point (``ZYGOTE_MAIN = main``): a forked
worker then calls it, instead of running the preloaded module's body afresh
with runpy (~2.4 ms of a workflow runner's start). It may also name a warm-up
(``ZYGOTE_WARM(env)``), which the zygote calls after forking one, to prepare
what the next one inherits.

A zygote is exec'd (``python -m animus.supervision.zygote``), or forked from
its supervisor while that is safe (``zygote_handle``): it then inherits every
module the supervisor imported and starts in a millisecond.

A *detached* worker (the root's child supervisors) gets no parent-death
signal from the zygote: the zygote dying must not take it along. It watches
its owner (``ANIMUS_PARENT_PID``) by pidfd instead, and its owner watches it
by pidfd too; the zygote still reaps it and reports its status while alive.

Wire: one JSON object per SOCK_SEQPACKET message on a socketpair.
  supervisor → zygote  ``{"id", "module", "args", "env", "cwd", "detach"}`` + the stderr fd, where
                       after the first request ``env`` may give way to ``env_set``/``env_unset``:
                       what differs from the last worker's environment (which the zygote adopted)
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
import sys
import traceback
from collections.abc import Mapping
from typing import Any

from setproctitle import setproctitle

from animus.process.pdeathsig import PARENT_PID_ENV, set_parent_death_signal

__all__ = ["BASE_PRELOAD", "FD_ENV", "MAX_MSG", "become", "detach_from_supervisor", "eligible"]

BASE_PRELOAD = ("zmq", "zmq.asyncio", "msgpack", "asyncio", "psutil", "animus.plugin_runtime.sdk",
                "animus.bus.publisher", "animus.bus.rpc")
FD_ENV = "ANIMUS_ZYGOTE_FD"
IDLE_SECS = 0.05  # no request for this long: preload the next worker module
MAX_MSG = 1 << 20


def eligible(argv: list[str]) -> str | None:
    """The module to run if ``argv`` is ``<this python> -m animus.…``, else None."""
    if len(argv) >= 3 and argv[0] == sys.executable and argv[1] == "-m" and argv[2].startswith("animus."):
        return argv[2]
    return None


# -- zygote side ----------------------------------------------------------------
def _run_child(sock: socket.socket, wake: tuple[int, int], req: dict[str, Any], stderr_fd: int | None) -> None:
    """In the forked child: become the worker; never returns."""
    code = 1
    try:
        os.setsid()
        if not req.get("detach"):
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
        _apply_env(*req["env_change"])
        sys.argv = [req["module"], *req.get("args", [])]
        setproctitle(" ".join([sys.executable, "-m", *sys.argv]))
        entry = getattr(sys.modules.get(req["module"]), "ZYGOTE_MAIN", None)
        if callable(entry):
            entry()  # preloaded with its entry point named: no second run of the module's body
        else:
            _run_afresh(req["module"])
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


def _env_change(req: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """What to set and unset in ``os.environ`` (and the C environment) to get the worker's.

    The zygote adopts each worker's environment after forking it, so the next worker of the same
    kind changes a variable or two, not every one (~75 page faults of a fresh runner); and the
    supervisor sends only those (``env_set``, ``env_unset``) once the zygote has a worker's
    environment. The zygote's every write after a fork is a page copied while a worker shares it:
    a whole environment decoded and compared per fork was most of its ~275 copies per run."""
    current = os.environ
    if "env" in req:
        env: dict[str, str] = req["env"] or {}
        unset = [key for key in current if key not in env]
        changes = {key: value for key, value in env.items() if current.get(key) != value}
    else:
        unset, changes = list(req.get("env_unset") or ()), dict(req.get("env_set") or {})
    if not req.get("detach"):  # a detached worker's owner is the supervisor that asked
        unset = [key for key in unset if key != PARENT_PID_ENV]
        changes.pop(PARENT_PID_ENV, None)
        if current.get(PARENT_PID_ENV) != (mine := str(os.getpid())):
            changes[PARENT_PID_ENV] = mine  # the worker's parent is the zygote
    return changes, unset


def _apply_env(changes: dict[str, str], unset: list[str]) -> None:
    current = os.environ
    for key in unset:
        current.pop(key, None)
    for key, value in changes.items():
        current[key] = value


def _run_afresh(module: str) -> None:
    import runpy

    # the module run as __main__ was preloaded for what it imports; runpy runs it afresh (found in
    # sys.modules, it would warn "may result in unpredictable behaviour" on every worker's stderr)
    for name in (module, module + ".__main__"):
        if not hasattr(sys.modules.get(name), "__path__"):
            sys.modules.pop(name, None)
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def _warm(module: str, env: Mapping[str, str]) -> None:
    """After a fork: the module's ``ZYGOTE_WARM(env)``, if it names one, prepares in the zygote what
    the next worker of its kind inherits (the runner: the parsed workflow config and git settings).
    Never fatal."""
    warm = getattr(sys.modules.get(module), "ZYGOTE_WARM", None)
    if callable(warm):
        try:
            warm(env)
        except Exception:  # noqa: BLE001 - the worker does the same work itself, and reports it
            pass


def _preload(name: str) -> None:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError:
        pass  # ``pkg.__main__`` is tried for every module; plain modules have none
    except Exception as exc:  # the worker will import it itself after the fork
        print(f"zygote: cannot preload {name}: {exc}", file=sys.stderr)


def _serve(sock: socket.socket, pending: list[str]) -> None:
    """Fork workers on request until the supervisor goes.

    The worker modules in ``pending`` are imported when a request needs one (so a
    worker waits only for its own imports, not for every other worker's) and
    otherwise when idle (so that restarts find everything preloaded)."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    sock.send(json.dumps({"ready": os.getpid()}).encode())
    while True:
        watched: list[Any] = [sock, wake_r]
        readable, _, _ = select.select(watched, [], [], IDLE_SECS if pending else None)
        if not readable and pending:
            _preload(pending.pop(0))
            continue
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
            data, fds, _flags, _addr = socket.recv_fds(sock, MAX_MSG, 2)
        except OSError:
            return
        if not data:
            return  # the supervisor is gone
        req = json.loads(data)
        for name in (req.get("module"), f"{req.get('module')}.__main__"):
            if name in pending:
                pending.remove(name)
                _preload(name)
        req["env_change"] = _env_change(req)
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
        _apply_env(*req["env_change"])
        _warm(req["module"], os.environ)


def become(sock: socket.socket, preload: list[str], parent: int) -> None:
    """This process is now a zygote: tie it to ``parent``, preload, serve until the supervisor goes."""
    set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != parent:
        return  # the supervisor died before we could tie ourselves to it
    # titles go where argv was, never over the environment: /proc/<pid>/environ of every process
    # forked from here keeps showing the environment its exec'd ancestor started with
    os.environ["SPT_NOENV"] = "1"
    setproctitle(" ".join([sys.executable, "-m", "animus.supervision.zygote", *preload]))
    for name in preload:
        if name in BASE_PRELOAD:  # what every worker needs: before the first fork
            _preload(name)
    _serve(sock, [name for name in preload if name not in BASE_PRELOAD])


def detach_from_supervisor(keep: int) -> None:
    """In a zygote forked from its supervisor: own session, no fd of the supervisor's but stdio."""
    os.setsid()
    os.closerange(3, keep)
    os.closerange(keep + 1, 1 << 16)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)


def main() -> None:
    sock = socket.socket(fileno=int(os.environ.pop(FD_ENV)))
    become(sock, sys.argv[1:], os.getppid())


if __name__ == "__main__":
    main()
