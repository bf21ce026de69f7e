"""Workflow runners on a Ray cluster: the workflows supervisor's ``ray`` backend.

With ``runners.backend: ray`` the workflows supervisor is a Ray driver: each
run becomes one Ray task (:func:`animus.workflow.remote.ray_task.run_on_node`),
placed by ``num_cpus_per_run`` and ``resources``, with Ray's automatic
retries off (``max_retries=0``): retries are Animus's decision. Everything
else is as for a local run: the task hosts the same runner process; its
events reach the bus over tcp; its state reaches ``workflow.db`` through this
supervisor (``workflow/store``); its exit goes to the same
``runner_exited`` → recovery path.

Supervision carries over. A run is lost when Ray says so (the worker or its
node died: the task's ObjectRef fails) or when its node stops heartbeating
(:mod:`animus.workflow.remote.runs` decides; this module carries it out:
fence the run, kill it through Ray, hand the loss to recovery). Recovery then
applies the idempotency rules: idempotent phases are retried, wherever Ray
places the retry; others are Blocked.

Ray's blocking calls (``ray.init``, ``ray.nodes``, ``ray.cancel``) run on
daemon threads: off the event loop, and never holding up the supervisor's
exit. ``ray.init`` off the main thread also leaves the supervisor's SIGTERM
handling alone (Ray installs its own only on the main thread).

Stop: the daemon's stop asks every run to drain (the runner finishes its
phase and leaves the workflow ``pending``), waits up to the drain timeout,
kills what is left through Ray and disconnects from the cluster.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from animus.bus.curve import ClientKeys
from animus.errors import Conflict
from animus.supervision.edge import ENV_RUNNER_TOKEN
from animus.supervision.exit_reason import ExitReason
from animus.workflow.launcher import LauncherHooks
from animus.workflow.remote.ray_config import RayRunnersConfig, is_loopback_host
from animus.workflow.remote.ray_spec import run_secrets, run_spec, worktree_choice
from animus.workflow.remote.runs import Lost, Overdue, RemoteRun, Unplaceable, liveness, node_label
from animus.workflow.settings import WorkflowSettings
from animus.workflow.store import TERMINAL, WorkflowRow

__all__ = ["RayBackend"]

T = TypeVar("T")
SINGLE_MACHINE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # see animus.workflow.remote.ray_cluster
RECONNECT_SECS = 5.0


async def in_thread(fn: Callable[[], T], timeout: float | None = None) -> T:
    """Run a blocking call on a daemon thread (an executor thread would hold up the exit)."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()

    def settle(setter: Callable[[Any], None], value: Any) -> None:
        if not fut.done():
            setter(value)

    def work() -> None:
        try:
            value = fn()
        except BaseException as exc:  # handed to the awaiting coroutine
            loop.call_soon_threadsafe(settle, fut.set_exception, exc)
        else:
            loop.call_soon_threadsafe(settle, fut.set_result, value)

    threading.Thread(target=work, name="ray-call", daemon=True).start()
    return await asyncio.wait_for(fut, timeout)


class RayBackend:
    """Runners as Ray tasks (a ``RunnerLauncher``)."""

    def __init__(self, hooks: LauncherHooks, settings: WorkflowSettings, cfg: RayRunnersConfig,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.hooks = hooks
        self.settings = settings
        remote = settings.remote
        self.cfg = cfg
        # bus_endpoint, control_endpoint; the token and CURVE keys come in our environment (never a file)
        self.remote = {**remote, "token": remote.get("token") or os.environ.get(ENV_RUNNER_TOKEN, "")}
        self.curve = ClientKeys.from_env()
        self.clock = clock
        self.runs: dict[str, RemoteRun] = {}
        self.done: dict[str, asyncio.Event] = {}  # by run ("<wf>.<n>"): set once its end is handed on
        self.connected = False
        self.last_error = ""
        self.closing = False
        self._task: Any = None  # ray.remote(run_on_node)
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def available(self) -> bool:
        return self.connected

    def running(self) -> set[str]:
        return set(self.runs)

    def has(self, wf_id: str) -> bool:
        return wf_id in self.runs

    # -- connection ----------------------------------------------------------
    async def start(self) -> None:
        self._tasks = [self.hooks.spawn(self._connect_forever()), self.hooks.spawn(self._watchdog())]

    def _connect(self) -> None:
        if is_loopback_host(self.cfg.address):
            # Ray rewrites a loopback address to the machine's address unless in single-machine mode.
            os.environ.setdefault(SINGLE_MACHINE_ENV, "0")
        import ray

        from animus.workflow.remote.ray_task import run_on_node

        ray.init(address=self.cfg.address, namespace=self.cfg.namespace, log_to_driver=False,
                 logging_level=logging.WARNING, ignore_reinit_error=True)
        self._task = ray.remote(run_on_node)

    async def _connect_forever(self) -> None:
        while not self.connected and not self.closing:
            try:
                await in_thread(self._connect, timeout=120)
            except Exception as exc:  # a cluster that is down now may be up later
                error = f"cannot connect to the Ray cluster at {self.cfg.address}: {type(exc).__name__}: {exc}"
                if error != self.last_error:
                    self.hooks.events.emit("runner_backend_unavailable", "error", {"backend": "ray", "error": error})
                self.last_error = error
                await asyncio.sleep(RECONNECT_SECS)
                continue
            self.connected, self.last_error = True, ""
            self.hooks.events.emit("runner_backend_connected", "info", {"backend": "ray", "address": self.cfg.address})
            await self.hooks.fill()

    # -- runs ----------------------------------------------------------------
    async def launch(self, wf: WorkflowRow, runs: int) -> None:
        """Start one run as a Ray task (``wf`` is already marked running)."""
        wf_id = wf["id"]
        run = RemoteRun(wf_id, f"{wf_id}.{runs}", submitted=self.clock())
        options: dict[str, Any] = {"num_cpus": self.cfg.num_cpus_per_run, "max_retries": 0,
                                   "retry_exceptions": False, "name": f"animus {wf_id}"}
        if self.cfg.resources:
            options["resources"] = dict(self.cfg.resources)
        try:
            run.ref = self._task.options(**options).remote(
                run_spec(wf, run.run, self.settings, self.cfg, self.remote, self.curve))
        except Exception as exc:  # nothing was started: say why on the workflow
            self.hooks.events.block(wf_id, f"cannot submit the run to Ray: {type(exc).__name__}: {exc}")
            return
        self.runs[wf_id] = run
        self.done[run.run] = asyncio.Event()
        self.hooks.events.workflow("runner_submitted", "info", wf_id, backend="ray", run=run.run,
                         message=f"runner submitted to Ray ({self.cfg.address})")
        self.hooks.spawn(self._watch(run))
        self.hooks.changed()

    async def _watch(self, run: RemoteRun) -> None:
        try:
            result = await asyncio.wrap_future(run.ref.future())
        except Exception as exc:  # Ray's word: worker or node died, task cancelled …
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            self._finish(run, None, lost=f"lost on node {node_label(run.node)}: {type(exc).__name__}"
                                         + (f": {first[:300]}" if first else ""))
            return
        self._finish(run, result, None)

    def _finish(self, run: RemoteRun, result: dict[str, Any] | None, lost: str | None = None,
                blocked: str | None = None) -> None:
        """The one place a run's end is handed on: to blocking, or to runner_exited → recovery."""
        if self.runs.get(run.wf_id) is run:
            del self.runs[run.wf_id]
        done = self.done.pop(run.run, None)
        if run.reported:
            return
        run.reported = True
        try:
            if self.closing:
                return  # the next start recovers what is still marked running (as for local runners)
            if result and result.get("setup_error"):
                blocked = (f"remote runner setup failed on node {node_label(result.get('node') or {})}: "
                           f"{result['setup_error']}")
            if blocked is not None:
                self.hooks.events.block(run.wf_id, blocked)
                self.hooks.exited(run.wf_id, ExitReason(code=1), blocked)
            elif lost is not None:
                self.hooks.events.workflow("runner_lost", "error", run.wf_id, node=node_label(run.node), reason=lost,
                                 message=f"runner {lost}")
                self.hooks.exited(run.wf_id, ExitReason(signal=9), lost)
            else:
                code = int((result or {}).get("exit_code") or 0)
                reason = ExitReason.from_status(code)
                why = (result or {}).get("why") or ""
                node = node_label((result or {}).get("node") or run.node)
                self.hooks.exited(run.wf_id, reason, f"{reason.describe()} on node {node}"
                                                          + (f" ({why})" if why else ""))
        finally:
            if done is not None:
                done.set()
            self.hooks.changed()

    async def _kill(self, run: RemoteRun) -> None:
        import ray

        try:
            await in_thread(lambda: ray.cancel(run.ref, force=True), timeout=10)
        except Exception as exc:  # the loss is already decided; Ray may be gone too
            self.hooks.events.emit("runner_kill_failed", "warn", {"workflow_id": run.wf_id, "error": str(exc)})

    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.cfg.heartbeat_secs / 2))
            try:
                await self._check_liveness()
            except Exception as exc:  # one bad round must not end the watch
                self.hooks.events.emit("runner_watchdog_error", "error", {"error": f"{type(exc).__name__}: {exc}"})

    async def _check_liveness(self) -> None:
        grace = self.stop_grace()
        now = self.clock()
        for run in list(self.runs.values()):
            verdict = liveness(run, now, self.cfg.heartbeat_timeout_secs, self.cfg.placement_timeout_secs, grace)
            if isinstance(verdict, Lost):
                run.stop = "kill"  # fenced: its store calls are refused from now on
                self._finish(run, None, lost=verdict.reason)
                await self._kill(run)
            elif isinstance(verdict, Unplaceable):
                if await self._fits_some_node():
                    run.submitted = now  # only busy: Ray queues it until a run ends
                    self.hooks.events.workflow("runner_waiting_for_capacity", "warn", run.wf_id,
                                     message="every Ray node that could take this run is busy")
                    continue
                run.stop = "kill"
                self._finish(run, None, blocked=verdict.reason)
                await self._kill(run)
            elif isinstance(verdict, Overdue) and run.stop != "kill":
                run.stop = "kill"
                await self._kill(run)  # Ray's answer (cancelled) ends it through _watch

    async def _fits_some_node(self) -> bool:
        """Whether an alive node has, in total, what a run asks for (busy or not)."""
        import ray

        need = {"CPU": self.cfg.num_cpus_per_run, **self.cfg.resources}
        try:
            nodes = await in_thread(ray.nodes, timeout=10)
        except Exception:
            return True  # cannot tell: do not block a run on Ray's silence
        return any(node.get("Alive") and all((node.get("Resources") or {}).get(k, 0) >= v for k, v in need.items())
                   for node in nodes)

    def stop_grace(self) -> float:
        """How long a run asked to stop may take: the drain timeout, plus a heartbeat to hear of it."""
        return self.settings.drain_timeout + self.cfg.heartbeat_timeout_secs

    async def stop_run(self, wf_id: str) -> None:
        """Stop one run (operator cancel): SIGTERM on the node, as locally; wait for its end."""
        run = self.runs.get(wf_id)
        if run is None:
            return
        done = self.done[run.run]
        run.stop, run.stop_requested = "term", self.clock()
        if run.started is None:
            import ray

            await in_thread(lambda: ray.cancel(run.ref), timeout=10)  # never ran: just drop it
        await asyncio.wait_for(done.wait(), self.stop_grace() + 30)  # the watchdog kills it after the grace

    async def shutdown(self) -> None:
        self.closing = True
        for task in self._tasks:
            task.cancel()
        runs = list(self.runs.values())
        for run in runs:
            run.stop, run.stop_requested = "term", self.clock()
            if run.started is None:
                await self._kill(run)  # still queued in Ray: it never ran
        events = [self.done[r.run] for r in runs if r.run in self.done]
        if events:
            waits = asyncio.gather(*(e.wait() for e in events))
            try:
                await asyncio.wait_for(waits, self.stop_grace())
            except TimeoutError:
                for run in list(self.runs.values()):
                    await self._kill(run)
        if self.connected:
            import ray

            try:
                await in_thread(ray.shutdown, timeout=15)
            except Exception:
                pass  # the process is exiting; Ray cleans up a vanished driver's tasks

    # -- what runners report (workflow/runner, workflow/store) ---------------
    def authorize(self, wf_id: str, run_id: str) -> RemoteRun:
        """The run's current record, or Conflict: a fenced or stale runner must not write."""
        run = self.runs.get(wf_id)
        if run is None or run.run != run_id or run.stop == "kill":
            raise Conflict(f"run {run_id} of {wf_id} is no longer current (lost, recovered or stopped)")
        return run

    def runner_op(self, params: dict[str, Any]) -> dict[str, Any]:
        op, wf_id, run_id = params.get("op"), str(params.get("wf_id")), str(params.get("run"))
        try:
            run = self.authorize(wf_id, run_id)
        except Conflict:
            return {"stop": "kill"}
        now = self.clock()
        run.last_seen = now
        if op == "started":
            run.started = now
            run.node = dict(params.get("node") or {})
            run.worker_pid = params.get("worker_pid")
            label = node_label(run.node)
            run.previous_node = self.hooks.store.get(wf_id).get("node")  # where the workflow's last run was
            self.hooks.store.update(wf_id, node=label)
            self.hooks.events.workflow("runner_started", "info", wf_id, backend="ray", node=label,
                             node_id=run.node.get("node_id"), worker_pid=run.worker_pid,
                             message=f"runner started on node {label}")
            self.hooks.changed()
            # the secrets its config refers to: over the CURVE channel, into the runner's environment
            return {"stop": "kill" if run.stop else None, "secrets": run_secrets(self.settings.state_root),
                    "worktree": worktree_choice(run.previous_node, label)}
        if op == "worktree":
            self._worktree_event(run, params)
            return {"stop": run.stop}
        if op == "heartbeat":
            if params.get("runner_pid") and params["runner_pid"] != run.runner_pid:
                run.runner_pid = params["runner_pid"]
                self.hooks.changed()
            return {"stop": run.stop}
        if op == "exited":
            return {"cleanup": self.hooks.store.get(wf_id)["status"] in TERMINAL}
        return {"stop": None}

    def _worktree_event(self, run: RemoteRun, params: dict[str, Any]) -> None:
        """Where the run works on its node, said as a local run's worktree events are."""
        label, created = node_label(run.node), bool(params.get("created"))
        path, branch, base = str(params.get("path")), str(params.get("branch")), str(params.get("base") or "")
        message = (f"{'new' if created else 'same'} worktree on node {label}: {path} "
                   f"({params.get('run_branch')} from {branch} at {base[:10]})")
        if created and run.previous_node and run.previous_node != label:
            message += (f"; the previous run was on node {run.previous_node}: what it left there and did not "
                        f"push to {branch} is not in this checkout")
        self.hooks.events.workflow("worktree_created" if created else "worktree_reused", "info", run.wf_id,
                                   node=label, path=path, branch=params.get("run_branch"), base=base,
                                   previous_node=run.previous_node, message=message)

    # -- status --------------------------------------------------------------
    def snapshot(self) -> list[dict[str, Any]]:
        return [run.snapshot() for run in self.runs.values()]

    async def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"backend": "ray", "address": self.cfg.address, "namespace": self.cfg.namespace,
                               "connected": self.connected, "last_error": self.last_error or None,
                               "bus_endpoint": self.remote["bus_endpoint"],
                               "control_endpoint": self.remote["control_endpoint"],
                               "runs": self.snapshot(), "nodes": []}
        if not self.connected:
            return out
        import ray

        try:
            nodes = await in_thread(ray.nodes, timeout=5)
        except Exception as exc:
            out["last_error"] = f"ray.nodes: {exc}"
            return out
        for node in nodes:
            node_id = node.get("NodeID")
            out["nodes"].append({
                "node_id": node_id, "ip": node.get("NodeManagerAddress"), "hostname": node.get("NodeManagerHostname"),
                "alive": bool(node.get("Alive")), "resources": node.get("Resources") or {},
                "runs": sorted(r.wf_id for r in self.runs.values() if r.node.get("node_id") == node_id),
            })
        return out

