"""Starting and stopping the daemon process (CLI-local: no control call to start).

``start`` spawns the daemon detached (new session, output to
``daemon/daemon.log``), runs the preflight while it boots (first, with
``--auto-install``, which may install what the daemon must see; a failed
preflight stops the daemon before it is ready), and waits on a pipe for its
readiness line, so it returns only when the tree is up. A stale pidfile of a dead daemon is
removed; a live daemon makes a second start fail with its pid.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import subprocess
import sys
import time
from typing import Any

from animus.cli import context
from animus.cli.output import echo, emit_json, err
from animus.errors import AnimusError, Conflict, ExitCode, Internal, Unavailable
from animus.state.scope import Scope

__all__ = ["git_options", "start_daemon", "stop_daemon", "preflight_command", "running_pid"]

START_TIMEOUT = float(os.environ.get("ANIMUS_START_TIMEOUT", "90"))


class PreflightFailed(AnimusError):
    code = "invalid_input"
    exit_code = ExitCode.INVALID_INPUT


def running_pid(scope: Scope) -> int | None:
    """The live daemon's pid, or None (cleaning a stale pidfile on the way)."""
    lock = scope.root / "daemon" / "daemon.lock"
    if not lock.exists():
        return None
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        from animus.supervision.pidlock import read_pid

        return read_pid(scope) or -1
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    if scope.pidfile.exists():
        from animus.supervision.pidlock import read_pid

        stale = read_pid(scope)
        scope.pidfile.unlink(missing_ok=True)
        err(f"removed the stale pidfile of a dead daemon (pid {stale})")
    return None


def _preflight_or_fail(scope: Scope, auto_install: bool, as_json: bool) -> None:
    from animus.plugin_runtime.preflight import preflight, render_preflight

    if auto_install:  # plugins recorded but missing (after a restore) come back from their sources
        from animus.plugin_runtime.reinstall import reinstall_missing

        _done, failed = reinstall_missing(scope, progress=err)
        for line in failed:
            err(f"warning: could not reinstall {line}")
    report = preflight(scope)
    if not report["ok"] and auto_install:
        from animus.plugin_runtime.install import install_defaults

        installed = install_defaults(scope, include_subjects=True, include_transports=False, progress=err)
        report = preflight(scope)
        report["auto_installed"] = installed
    if not report["ok"]:
        raise PreflightFailed(render_preflight(report).removeprefix("error: "),
                              details={"schema": "animus.daemon.preflight.v1", "missing": report["missing"],
                                       "fix_message": report["fix_message"]})


def git_options(auto_merge: bool | None, auto_pr: bool | None, auto_commit: bool | None,
                auto_prune: bool | None, startup_cleanup: bool) -> dict[str, Any]:
    """The delivery flags as the daemon's ``git`` option (None: not given, the workflow YAML decides)."""
    return {"flags": {"auto_merge": auto_merge, "auto_pr": auto_pr, "auto_commit_before_merge": auto_commit,
                      "auto_prune_worktrees_after_merge": auto_prune}, "startup_cleanup": startup_cleanup}


def start_daemon(foreground: bool = False, autonomous: bool = False, skip_preflight: bool = False,
                 auto_install: bool = False, as_json: bool = False, git: dict[str, Any] | None = None) -> int:
    from animus.cli.daemon_backup import finish_interrupted_restore

    if git is None:  # no delivery flag given (the fast path): as the Typer command's defaults say
        git = git_options(None, None, None, None, True)
    finish_interrupted_restore(context.scope())
    scope = context.scope().ensure()
    if scope.warning:
        err(f"warning: {scope.warning}")
    pid = running_pid(scope)
    if pid:
        raise Conflict(f"daemon already running (pid {pid})", fix="animus daemon status; animus daemon stop")
    # preflight runs while the daemon boots, unless it may install plugins the daemon must see
    alongside = not skip_preflight and not auto_install and not foreground
    if not skip_preflight and not alongside:
        _preflight_or_fail(scope, auto_install, as_json)
    if foreground:
        from animus.daemon.main import run_daemon

        return run_daemon(scope, {"autonomous": autonomous, "git": git or {}})
    log_path = scope.root / "daemon" / "daemon.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    read_fd, write_fd = os.pipe()
    argv = [sys.executable, "-m", "animus.daemon.main", "--project-root",
            str(scope.project_root), "--ready-fd", str(write_fd)]
    if autonomous:
        argv.append("--autonomous")
    if git:
        argv += ["--git-options", json.dumps(git)]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                pass_fds=(write_fd,), start_new_session=True, close_fds=True)
    os.close(write_fd)
    if alongside:
        _preflight_beside(proc, read_fd, scope, as_json)
    if not as_json:
        err(f"starting daemon (pid {proc.pid}) …")
    reply = _wait_ready(read_fd, proc, log_path)
    if not reply.get("ok"):
        from animus.errors import from_dict

        error = reply.get("error")
        raise from_dict(error if isinstance(error, dict) else {})
    if as_json:
        emit_json("animus.daemon.start.v1", {"pid": reply["pid"], "state_root": reply["state_root"],
                                             "autonomous": autonomous})
    else:
        echo(f"daemon started (pid {reply['pid']})")
        echo(f"state root: {reply['state_root']}")
    return 0


def _preflight_beside(proc: subprocess.Popen[bytes], read_fd: int, scope: Scope, as_json: bool) -> None:
    """The preflight, while the daemon boots; on failure the daemon is stopped before it is ready."""
    try:
        _preflight_or_fail(scope, False, as_json)
    except BaseException:
        os.close(read_fd)
        proc.terminate()  # SIGTERM: the root stops what it started, in order
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise


def _wait_ready(read_fd: int, proc: subprocess.Popen[bytes], log_path: object) -> dict[str, object]:
    deadline = time.monotonic() + START_TIMEOUT
    chunks = b""
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([read_fd], [], [], 0.5)
            if ready:
                data = os.read(read_fd, 65536)
                if not data:
                    break
                chunks += data
                continue
            if proc.poll() is not None and not chunks:
                break
    finally:
        os.close(read_fd)
    if chunks:
        try:
            return dict(json.loads(chunks))
        except ValueError:
            pass
    if proc.poll() is None and time.monotonic() >= deadline:
        raise Unavailable(f"daemon (pid {proc.pid}) did not report ready within {START_TIMEOUT:g}s",
                          fix=f"read {log_path}")
    try:
        code = proc.wait(5)
    except subprocess.TimeoutExpired:
        code = None
    last = _last_line(log_path)
    raise Internal(f"daemon exited during start (code {code})" + (f": {last}" if last else ""),
                   fix=f"read {log_path}")


def _last_line(path: object) -> str:
    try:
        lines = [ln.strip() for ln in open(str(path), errors="replace").read().splitlines()[-50:] if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def stop_daemon(timeout: float, as_json: bool) -> int:
    scope = context.scope()
    pid = running_pid(scope)
    if not pid:
        raise Unavailable("daemon not running: nothing to stop", fix="animus daemon start")
    import psutil

    from animus.process.handle import wait_gone

    try:
        proc = psutil.Process(pid)
    except psutil.Error:
        proc = None
    try:
        context.call("daemon/stop", timeout=5)
    except AnimusError:
        if proc is not None:
            proc.terminate()  # the control plane is wedged: fall back to SIGTERM
    if proc is not None and not wait_gone(pid, timeout):
        err(f"daemon (pid {pid}) did not stop within {timeout:g}s: killing it")
        proc.kill()
        wait_gone(pid, 5)
    if as_json:
        emit_json("animus.daemon.stop.v1", {"stopped": True, "pid": pid})
    else:
        echo(f"daemon stopped (pid {pid})")
    return 0


def preflight_command(auto_install: bool, as_json: bool) -> int:
    from animus.plugin_runtime.preflight import PREFLIGHT_SCHEMA, preflight, render_preflight

    scope = context.scope()
    try:
        report = preflight(scope)
    except AnimusError as exc:
        raise Internal(f"plugin discovery failed: {exc.message}", fix=exc.fix) from None
    if not report["ok"] and auto_install:
        from animus.plugin_runtime.install import install_defaults

        report_installed = install_defaults(scope, include_subjects=True, include_transports=False,
                                            progress=None if as_json else err)
        report = preflight(scope)
        report["auto_installed"] = report_installed
    if as_json:
        emit_json(PREFLIGHT_SCHEMA, report)
    else:
        text = render_preflight(report)
        (echo if report["ok"] else err)(text)
    return 0 if report["ok"] else 2

