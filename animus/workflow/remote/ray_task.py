"""The node's side of a run on Ray: the task that hosts one workflow runner.

The Ray backend submits :func:`run_on_node` once per run, with Ray's
retries off (Animus decides retries). On the node it:

1. reports ``started`` (node id, address, worker pid) to the daemon;
2. checks out the task's branch into a worktree of its own: a bare mirror of
   the repository per node (``<work_dir>/<scope>/mirror.git``, fetched under
   a file lock) and ``git worktree add`` per run, on a branch of the run's
   own (``animus/<workflow id>``) that starts at the tip of the task's
   branch (``$ANIMUS_BRANCH``; a phase that publishes pushes ``HEAD`` there,
   to ``$ANIMUS_REPOSITORY``); the run carries on in that worktree only if
   the workflow's previous run was on this node (the daemon says so in its
   reply to ``started``), else the worktree is made again from what the
   branch has now; where it works is reported (``worktree_created`` /
   ``worktree_reused`` events);
3. starts the *same* runner as a local run, ``python -m
   animus.workflow.runner <id>``, in that worktree, with the daemon's tcp bus
   and control endpoints, the token, and a remote store (it never opens
   ``workflow.db``); the runner has a parent-death signal, so it dies with
   this worker;
4. heartbeats the daemon while the runner runs: a reply may ask it to stop
   (SIGTERM, as the local supervisor does; the runner tells cancel from drain
   by asking the store) or, once the run is fenced, to kill it. A daemon that
   stays unreachable past the heartbeat timeout gets the runner killed too:
   nothing outlives its owner;
5. returns the exit status; the worktree is removed once the daemon says the
   workflow reached its end.

A setup failure (no git, a branch that does not exist, another Animus
version) is returned as ``setup_error``: the daemon blocks the workflow with
it instead of retrying forever.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["SetupError", "prepare_worktree", "run_on_node"]

GIT_TIMEOUT = 300.0


class SetupError(RuntimeError):
    pass


def _git(*args: str, cwd: Path | None = None) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=GIT_TIMEOUT,
                             stdin=subprocess.DEVNULL, check=False)
    except FileNotFoundError:
        raise SetupError("git is not installed on this node") from None
    except subprocess.TimeoutExpired:
        raise SetupError(f"git {args[0]} took longer than {GIT_TIMEOUT:g}s") from None
    if out.returncode != 0:
        raise SetupError(f"git {' '.join(args[:2])} failed: {(out.stderr or out.stdout).strip()[-500:]}")
    return out.stdout.strip()


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def prepare_worktree(root: Path, repository: str, branch: str, wf_id: str,
                     fresh: bool = False) -> tuple[Path, bool]:
    """The run's own worktree of ``branch`` (see the module doc): its path, and whether it was made now
    (``fresh``: made again even if this node has one from an earlier run)."""
    mirror = root / "mirror.git"
    dest = root / "worktrees" / wf_id
    with _locked(root / "mirror.lock"):
        if not (mirror / "HEAD").exists():
            shutil.rmtree(mirror, ignore_errors=True)
            _git("clone", "--bare", "--quiet", repository, str(mirror))
        _git("remote", "set-url", "origin", repository, cwd=mirror)
        _git("fetch", "--quiet", "--force", "origin", f"+refs/heads/{branch}:refs/remotes/origin/{branch}",
             cwd=mirror)
        if (dest / ".git").exists() and not fresh:
            return dest, False  # a retry on this node carries on in the run's worktree
        shutil.rmtree(dest, ignore_errors=True)
        _git("worktree", "prune", cwd=mirror)
        # a branch of the run's own at the task branch's tip: two runs of one branch never share a checkout
        _git("worktree", "add", "--force", "--quiet", "-B", run_branch(wf_id), str(dest),
             f"refs/remotes/origin/{branch}", cwd=mirror)
    return dest, True


def run_branch(wf_id: str) -> str:
    return f"animus/{wf_id}"


def remove_worktree(root: Path, wf_id: str) -> None:
    with _locked(root / "mirror.lock"):
        try:
            _git("worktree", "remove", "--force", str(root / "worktrees" / wf_id), cwd=root / "mirror.git")
            _git("branch", "-D", run_branch(wf_id), cwd=root / "mirror.git")
        except SetupError:
            shutil.rmtree(root / "worktrees" / wf_id, ignore_errors=True)
    shutil.rmtree(root / "state" / wf_id, ignore_errors=True)


def _this_node() -> dict[str, Any]:
    import ray

    ip = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]  # Ray leaves it unannotated
    return {"node_id": ray.get_runtime_context().get_node_id(), "ip": ip, "hostname": socket.gethostname()}


def _signal_group(pid: int, sig: int) -> None:
    from animus.process.handle import signal_group  # imported late: Ray ships this module by reference

    signal_group(pid, sig)


def run_on_node(spec: dict[str, Any]) -> dict[str, Any]:
    """The Ray task body (module-level, so Ray ships it by reference: the node has animus installed)."""
    from animus import __version__
    from animus.bus.curve import ClientKeys
    from animus.bus.rpc import ControlClient
    from animus.errors import AnimusError
    from animus.workflow import command_group

    node = _this_node()
    curve = ClientKeys(**spec["curve"]) if spec.get("curve") else None
    control = ControlClient(spec["control_endpoint"], timeout=max(2.0, spec["heartbeat_secs"] * 2),
                            token=spec["token"], curve=curve)

    def report(op: str, **data: Any) -> dict[str, Any]:
        reply = control.call("workflow/runner", {"op": op, "wf_id": spec["wf_id"], "run": spec["run"], **data})
        return dict(reply or {})

    try:
        started = report("started", node=node, worker_pid=os.getpid())
        if started.get("stop") == "kill":
            return {"fenced": True, "node": node}
        root = Path(os.path.expanduser(spec["work_dir"])) / spec["scope"]
        try:
            if spec["version"] != __version__:
                raise SetupError(f"this node has animus {__version__}, the daemon {spec['version']}")
            worktree, created = prepare_worktree(root, spec["repository"], spec["branch"], spec["wf_id"],
                                                 fresh=started.get("worktree") == "fresh")
            base = _git("rev-parse", "HEAD", cwd=worktree)
            state_root = root / "state" / spec["wf_id"]
            (state_root / "state").mkdir(parents=True, exist_ok=True)
            (state_root / "state" / spec["config_name"]).write_bytes(spec["config"])
        except (SetupError, OSError) as exc:
            return {"setup_error": str(exc), "node": node}
        try:
            report("worktree", path=str(worktree), created=created, branch=spec["branch"],
                   run_branch=run_branch(spec["wf_id"]), base=base)
        except AnimusError:
            pass  # the heartbeats deal with an unreachable daemon
        proc = _start_runner(spec, node, worktree, state_root, dict(started.get("secrets") or {}))
        code, why = _supervise(proc, spec, report)
        command_group.sweep(state_root / "runs" / spec["wf_id"])  # what a killed runner's commands left
        out: dict[str, Any] = {"exit_code": code, "node": node, "runner_pid": proc.pid, "why": why}
        try:
            if report("exited", exit_code=code).get("cleanup"):
                remove_worktree(root, spec["wf_id"])
        except AnimusError:
            pass  # the daemon is gone; the worktree stays for the next run of this workflow
        return out
    finally:
        control.close()


def _start_runner(spec: dict[str, Any], node: dict[str, Any], worktree: Path, state_root: Path,
                  secrets: dict[str, str]) -> subprocess.Popen[bytes]:
    from animus.bus.curve import ClientKeys
    from animus.plugin_runtime import protocol as p
    from animus.process.handle import PARENT_PID_ENV, set_parent_death_signal
    from animus.workflow.remote import store as rs
    from animus.workflow.remote.runs import node_label

    env = {k: v for k, v in os.environ.items() if not k.startswith("ANIMUS_")}
    env.update({p.ENV_STATE: str(state_root), p.ENV_PROJECT: str(worktree), p.ENV_BUS: spec["bus_endpoint"],
                p.ENV_CONTROL: spec["control_endpoint"], rs.ENV_TOKEN: spec["token"], rs.ENV_RUN: spec["run"],
                rs.ENV_NODE: node_label(node), rs.ENV_DAEMON_STATE: spec["daemon_state_root"],
                rs.ENV_DAEMON_PROJECT: spec["daemon_project_root"], PARENT_PID_ENV: str(os.getpid()),
                "ANIMUS_COMMAND_ENV": ",".join(spec.get("command_env") or ()),
                "ANIMUS_REPOSITORY": spec["repository"], "ANIMUS_BRANCH": spec["branch"]})
    if spec.get("curve"):
        env.update(ClientKeys(**spec["curve"]).to_env())  # the runner's bus and control are CURVE clients
    env.update({str(k): str(v) for k, v in secrets.items()})  # from the daemon, never in the Ray spec
    return subprocess.Popen([sys.executable, "-m", "animus.workflow.runner", spec["wf_id"]], cwd=worktree, env=env,
                            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=set_parent_death_signal)


def _supervise(proc: subprocess.Popen[bytes], spec: dict[str, Any], report: Any) -> tuple[int, str]:
    """Wait for the runner, heartbeating; carry out the daemon's stop requests."""
    from animus.errors import AnimusError

    beat, limit = float(spec["heartbeat_secs"]), float(spec["heartbeat_timeout_secs"])
    last_ok = time.monotonic()
    termed = False
    try:
        while True:
            try:
                return proc.wait(timeout=beat), ""
            except subprocess.TimeoutExpired:
                pass
            try:
                reply = report("heartbeat", runner_pid=proc.pid)
                last_ok = time.monotonic()
            except AnimusError:
                if time.monotonic() - last_ok > limit:
                    _signal_group(proc.pid, signal.SIGKILL)
                    return proc.wait(), f"daemon unreachable for {limit:g}s: runner killed"
                continue
            if reply.get("stop") == "kill":
                _signal_group(proc.pid, signal.SIGKILL)
                return proc.wait(), "fenced by the daemon: runner killed"
            if reply.get("stop") == "term" and not termed:
                termed = True
                _signal_group(proc.pid, signal.SIGTERM)
                _signal_group(proc.pid, signal.SIGCONT)
    finally:
        if proc.poll() is None:  # Ray cancelled us, or we are failing: the runner goes with us
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
