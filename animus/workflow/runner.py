"""The workflow runner: one subprocess per workflow run.

It walks a workflow's phases, checkpointing to ``workflow.db`` after every
step and publishing every step on the bus (``workflow_started``,
``phase_started``, ``phase_output``, ``phase_completed``, ``workflow_*``).
For each in-flight phase it keeps ``runs/<id>/<phase>.session.json``
(``provider``, ``session_id``, ``status``), written atomically.

SIGTERM means one of two things, and the runner asks the store which: a
cancel (``cancel_requested``): the phase is stopped at once and the workflow
ends ``cancelled``; otherwise a drain (daemon stop): the current phase runs
to its end, the step is checkpointed and the runner exits leaving the
workflow ``pending`` so the next start carries on. Anything else that kills
a runner is a crash, which the workflows supervisor recovers by the phase's
idempotency annotation.

Before its first phase a run gets its place to work (``run_worktree``: its
own git worktree, or the project root); once every phase is done (recorded
with the last phase's result) its work is delivered (``deliver``), and a
delivery that blocks or crashes is retried alone, never the phases.

Started as ``python -m animus.workflow.runner <workflow id>`` with the
``ANIMUS_*`` environment set by the workflows supervisor.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from animus import redact
from animus.bus.publisher import Publisher
from animus.plugin_runtime import protocol as p
from animus.process.pdeathsig import set_parent_death_signal
from animus.state.files import atomic_json
from animus.workflow import command_group, transitions
from animus.workflow.agent_phase import cancel_agent
from animus.workflow.command_phase import OUTPUT_TAIL
from animus.workflow.config import read_compiled
from animus.workflow.deliver import deliver
from animus.workflow.git_settings import ENV_GIT, GitSettings
from animus.workflow.model import Mode, PhaseDefinition, WorkflowConfig, WorkflowDefinition
from animus.workflow.outcomes import Blocked, Cancelled, Parked
from animus.workflow.phase_run import Attempt, PhaseResult, execute
from animus.workflow.remote.store import (
    ENV_DAEMON_PROJECT,
    ENV_DAEMON_STATE,
    ENV_NODE,
    ENV_TOKEN,
    RemoteStore,
    RunnerStore,
    open_store,
)
from animus.workflow.run_context import RunContext
from animus.workflow.run_worktree import Placement, place
from animus.workflow.store import StaleRun, WorkflowRow, WorkflowStore
from animus.workflow.usage import add_usage

__all__ = ["ENV_RUN_NUMBER", "Runner", "main"]

ENV_RUN_NUMBER = "ANIMUS_RUN_NUMBER"  # which run of the workflow this runner is (its fence)


class Runner:
    def __init__(self, wf_id: str) -> None:
        self.wf_id = wf_id
        self.pid = os.getpid()
        self.node = os.environ.get(ENV_NODE)  # a remote runner's node, shown in its events
        where = f"@{self.node}" if self.node else ""  # a pid alone does not name a process across hosts
        # first: the bus handshake (run() waits for it) goes on while the store and config are read
        self.bus = Publisher(os.environ[p.ENV_BUS], f"runner/{wf_id}{where}:{os.getpid()}", light=True)
        self.state_root = Path(os.environ[p.ENV_STATE])
        self.project_root = Path(os.environ.get(p.ENV_PROJECT) or os.getcwd())
        self.store: RunnerStore = open_store(self.state_root, wf_id)  # workflow.db, or the daemon's (a remote runner)
        self.remote = isinstance(self.store, RemoteStore)
        # agent phases run in the daemon's provider plugins: paths as the daemon's host sees them
        self.agent_cwd = Path(os.environ.get(ENV_DAEMON_PROJECT) or self.project_root)
        self.daemon_run_dir = Path(os.environ.get(ENV_DAEMON_STATE) or self.state_root) / "runs" / wf_id
        self.config: WorkflowConfig = read_compiled(self.state_root / "state")
        self.git = GitSettings.from_env(os.environ.get(ENV_GIT))  # the worktrees block, delivery flags
        self.placement = Placement(self.project_root)  # where the run works: set before its first phase
        self.run_dir = self.state_root / "runs" / wf_id
        self.draining = False
        self.run_id = ""
        self._control: Any = None
        self.ctx: RunContext | None = None  # built once the run is known

    # -- plumbing ------------------------------------------------------------
    def publish(self, cat: str, kind: str, level: str = "info", phase: str | None = None, **data: Any) -> None:
        self.bus.publish(cat, kind, level, data, workflow_id=self.wf_id, run_id=self.run_id, phase=phase)

    def control(self) -> Any:
        if self._control is None:
            from animus.bus.rpc import ControlClient

            self._control = ControlClient(os.environ[p.ENV_CONTROL], timeout=30, token=os.environ.get(ENV_TOKEN))
        return self._control

    def where(self) -> dict[str, Any]:
        return {"node": self.node} if self.node else {}

    def on_node(self) -> str:
        return f" on node {self.node}" if self.node else ""

    def write_session(self, session_file: Path, phase: str, data: dict[str, Any]) -> None:
        # durable for an agent's session (a resume after a reboot needs its id); a command phase's
        # file only says that it runs, which no recovery reads: the rename alone is enough
        atomic_json(session_file, data, durable=data.get("provider") is not None)
        if isinstance(self.store, RemoteStore):
            self.store.record_session(phase, data)  # recovery reads it on the daemon's host

    def on_sigterm(self, signum: int, frame: Any) -> None:
        if os.getpid() != self.pid:
            # a command's child between its fork and its exec runs Python (a Ray runner's commands are
            # forked, for their parent-death signal) and so this handler: it is not the runner, it ends
            # (it used to ask the daemon over the runner's socket, and spin there as an orphan)
            os._exit(128 + signum)
        if self.store.get(self.wf_id)["cancel_requested"]:
            raise Cancelled()
        self.draining = True

    # -- main loop -----------------------------------------------------------
    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.on_sigterm)
        command_group.enter(self.run_dir)  # before any command: the sweeps' record of this session
        self.bus.wait_ready(5)
        wf = self.store.get(self.wf_id)
        run_no = int(os.environ.get(ENV_RUN_NUMBER) or wf["runs"])
        if isinstance(self.store, WorkflowStore):
            self.store.fence = (self.wf_id, run_no)  # a remote store is fenced by the daemon
        self.run_id = f"{self.wf_id}.{run_no}"
        self.ctx = self._context(self.project_root, self.agent_cwd)
        definition = self.config.workflows.get(wf["workflow_ref"])
        if definition is None:
            self._end("failed", f"workflow {wf['workflow_ref']!r} is not defined in the workflow config")
            return 0
        task = wf["subject"] or {}
        if wf["started_at"] is None:
            first = transitions.start(definition, task)
            begin: dict[str, Any] = ({"delivery": {"state": "pending"}}  # every phase skipped: straight to delivery
                                     if isinstance(first, transitions.Complete)
                                     else {"phase_index": first.phase_index, "current_phase": first.phase_id})
            with self.store.tx() as c:  # one write: started, and where it starts
                self.store.update(self.wf_id, c, started_at=time.time(), status="running", **begin)
            self.publish("workflow", "workflow_started", workflow_ref=definition.id, subject_id=wf["subject_id"],
                         message=f"{definition.id} started on {wf['subject_id'] or 'ad-hoc'}{self.on_node()}",
                         **self.where())
        else:
            self.publish("workflow", "workflow_resumed", workflow_ref=definition.id, phase_index=wf["phase_index"],
                         **self.where())
        try:
            if not self._place(definition):
                return 0
            while True:
                wf = self.store.get(self.wf_id)
                if (wf.get("delivery") or {}).get("state") in ("pending", "blocked"):  # every phase is done
                    self._finish(wf, definition)
                    return 0
                index = wf["phase_index"]
                entry = definition.phases[index]
                phase = self.config.phases[entry.phase_id]
                if self.draining:
                    self.store.set_status(self.wf_id, "pending", checkpoint="drained", waiting=None)
                    self.publish("workflow", "workflow_drained", phase=phase.id,
                                 message="daemon stopping: will continue at next start")
                    return 0
                outcome = self.run_phase(wf, index, phase)
                if outcome is None:
                    return 0  # parked, blocked or cancelled: state already written
                if isinstance(outcome, transitions.Fail):
                    self._announce("failed", outcome.reason)  # recorded with the phase's result
                    return 0
        except Cancelled:
            self._cancelled()
            return 0

    def _place(self, definition: WorkflowDefinition) -> bool:
        """The run's worktree, made or found again before its first phase; False when that blocked it."""
        assert self.ctx is not None
        try:
            self.placement = place(self.ctx, self.store.get(self.wf_id), definition, self.config, self.git,
                                   self.state_root, self._record)
        except Blocked as blocked:
            self._block(str(blocked))
            return False
        root = self.placement.task_root
        self.ctx = dataclasses.replace(self.ctx, task_root=root, agent_cwd=root if not self.remote else self.agent_cwd)
        return True

    def _record(self, **fields: Any) -> None:
        self.store.update(self.wf_id, **fields)

    def _finish(self, wf: WorkflowRow, definition: WorkflowDefinition) -> None:
        """Every phase is done: deliver, then end completed (or blocked, with the reason and its fix)."""
        assert self.ctx is not None
        if wf.get("delivery", {}).get("state") == "blocked":
            self.store.update(self.wf_id, delivery=dict(wf["delivery"], state="pending"))
        reason, delivery = deliver(self.ctx, wf, definition, self.placement, self.git, self._record)
        if reason is None:
            self._end("completed", None, delivery=delivery)  # delivered and completed: one write
        else:
            self._block(reason)

    def _block(self, reason: str, phase: str | None = None) -> None:
        self.store.set_status(self.wf_id, "blocked", reason)
        self.publish("workflow", "workflow_blocked", "error", phase=phase, reason=reason, message=f"blocked: {reason}")

    def _context(self, task_root: Path, agent_cwd: Path) -> RunContext:
        return RunContext(wf_id=self.wf_id, run_id=self.run_id, config=self.config, project_root=self.project_root,
                          task_root=task_root, agent_cwd=agent_cwd, run_dir=self.run_dir,
                          daemon_run_dir=self.daemon_run_dir, remote=self.remote, publish=self.publish,
                          control=self.control)

    def run_phase(self, wf: WorkflowRow, index: int, phase: PhaseDefinition) -> transitions.Step | None:
        """Run one attempt of ``phase`` and record it; the next step, or None when the run stops here."""
        if phase.mode is Mode.MANUAL and wf.get("waiting") != f"approved:{phase.id}":
            self._await_approval(phase)
            return None
        attempt = self._begin(wf, index, phase)
        try:
            result = execute(self._phase_ctx(phase), wf, phase, attempt, self.daemon_run_dir)
        except Parked as park:
            self._parked(phase, attempt, park)
            return None
        except Blocked as blocked:
            self._blocked_attempt(phase, attempt, str(blocked))
            return None
        return self._record_result(wf, index, phase, attempt, result)

    def _await_approval(self, phase: PhaseDefinition) -> None:
        self.store.set_status(self.wf_id, "pending", checkpoint="awaiting_approval",
                              waiting=f"approval of phase {phase.id}: animus workflow approve {self.wf_id} "
                                      f"--phase {phase.id}", not_before=None, current_phase=phase.id)
        self.publish("workflow", "workflow_waiting", phase=phase.id, waiting=f"approval of phase {phase.id}")

    def _begin(self, wf: WorkflowRow, index: int, phase: PhaseDefinition) -> Attempt:
        provider = self._provider(phase)
        attempt_id, number = self.store.begin_attempt(self.wf_id, phase.id, index, phase.idempotency.value,
                                                      phase.mode.value, provider)
        attempt = Attempt(attempt_id, number, provider, self.run_dir / f"{phase.id}.session.json", time.monotonic())
        self.write_session(attempt.session_file, phase.id, {
            "provider": provider, "session_id": wf.get("resume_session"), "status": "running",
            "attempt": number, "workflow_id": self.wf_id})
        self.publish("phase", "phase_started", phase=phase.id, attempt=number, mode=phase.mode.value,
                     idempotency=phase.idempotency.value, provider=provider,
                     message=f"{phase.id} started (attempt {number}, {phase.mode.value}){self.on_node()}",
                     **self.where())
        return attempt

    def _parked(self, phase: PhaseDefinition, attempt: Attempt, park: Parked) -> None:
        with self.store.tx() as c:
            self.store.finish_attempt(attempt.id, c, "waiting", error=park.waiting)
            self.store.update(self.wf_id, c, status="pending", waiting=park.waiting, not_before=park.not_before)
            self.store.checkpoint(c, self.wf_id, "parked", phase.id)
        self.write_session(attempt.session_file, phase.id,
                           {"provider": attempt.provider, "session_id": None, "status": "waiting"})
        self.publish("workflow", "workflow_waiting", "warn", phase=phase.id, waiting=park.waiting)

    def _blocked_attempt(self, phase: PhaseDefinition, attempt: Attempt, reason: str) -> None:
        with self.store.tx() as c:
            self.store.finish_attempt(attempt.id, c, "failed", error=reason)
            self.store.update(self.wf_id, c, status="blocked", blocked_reason=reason)
            self.store.checkpoint(c, self.wf_id, "blocked", phase.id)
        self.publish("workflow", "workflow_blocked", "error", phase=phase.id, reason=reason)

    def _record_result(self, wf: WorkflowRow, index: int, phase: PhaseDefinition, attempt: Attempt,
                       result: PhaseResult) -> transitions.Step:
        """The attempt's result and where the run goes next, in one transaction."""
        duration_ms = round((time.monotonic() - attempt.started) * 1000, 1)
        red = redact.active()  # an agent's summary may quote a secret: not into workflow.db
        reason, tail, verdict = red.text(result.reason), red.text(result.tail), result.verdict
        definition = self.config.workflows[wf["workflow_ref"]]
        if phase.mode is Mode.COMMAND and verdict == "fail" and "rework" in definition.phases[index].on_verdict:
            verdict = "rework"  # a failing check sends the work back, as its entry says
        step = transitions.next_step(definition, index, verdict, dict(wf["rework"]), feedback=reason,
                                     task=wf["subject"] or {})
        status = "completed" if verdict in ("advance", "skip") else "failed"
        with self.store.tx() as c:
            self.store.finish_attempt(attempt.id, c, status, verdict=verdict, exit_code=result.exit_code,
                                      output_tail=tail[-OUTPUT_TAIL:], usage=result.usage,
                                      session_id=result.session_id, decision={"verdict": verdict, "reason": reason})
            self.store.update(self.wf_id, c, **self._next_fields(wf, step, result.usage))
            self.store.checkpoint(c, self.wf_id, "phase_completed", phase.id)
        self.write_session(attempt.session_file, phase.id,
                           {"provider": attempt.provider, "session_id": result.session_id, "status": status})
        self.publish("phase", "phase_completed", "info" if status == "completed" else "warn", phase=phase.id,
                     attempt=attempt.number, status=status, verdict=verdict, reason=reason[:500],
                     duration_ms=duration_ms, exit_code=result.exit_code, usage=result.usage,
                     provider=attempt.provider, message=f"{phase.id} {status} ({verdict}) in {duration_ms:.0f} ms")
        return step

    @staticmethod
    def _next_fields(wf: WorkflowRow, step: transitions.Step, usage: dict[str, Any]) -> dict[str, Any]:
        fields: dict[str, Any] = {"resume_session": None, "usage": add_usage(wf["usage"], usage)}
        if isinstance(step, transitions.Next):
            fields |= {"phase_index": step.phase_index, "current_phase": step.phase_id,
                       "rework": dict(step.rework_counts), "feedback": step.feedback}
        elif isinstance(step, transitions.Complete):  # with the last result, so no phase runs again for it
            fields["delivery"] = {"state": "pending"}
        else:  # the workflow fails with this result: one step, so a crash cannot make it run again
            fields |= {"status": "failed", "failure_reason": step.reason, "completed_at": time.time(),
                       "waiting": None}
        return fields

    # -- phase kinds ---------------------------------------------------------
    def _phase_ctx(self, phase: PhaseDefinition) -> RunContext:
        """The run's context, in the project root for a phase with ``worktree: skip``."""
        assert self.ctx is not None
        root = self.placement.root_for(phase.worktree, self.project_root)
        if root == self.ctx.task_root:
            return self.ctx
        return dataclasses.replace(self.ctx, task_root=root, agent_cwd=self.agent_cwd)

    def _provider(self, phase: PhaseDefinition) -> str | None:
        if phase.mode is not Mode.AGENT:
            return None
        agent = self.config.agents.get(phase.agent or "")
        return agent.provider if agent else None

    # -- endings -------------------------------------------------------------
    def _end(self, status: str, reason: str | None, **fields: Any) -> None:
        self.store.set_status(self.wf_id, status, reason, waiting=None, **fields)
        self._announce(status, reason)

    def _announce(self, status: str, reason: str | None) -> None:
        kind = f"workflow_{status}"
        self.publish("workflow", kind, "info" if status == "completed" else "error",
                     reason=reason, message=f"workflow {status}" + (f": {reason}" if reason else ""))

    def _kill_child(self) -> None:
        if self.ctx is not None:
            self.ctx.in_flight.kill_child()

    def _cancelled(self) -> None:
        self._kill_child()
        if self.ctx is not None and self.ctx.in_flight.agent_key:
            try:
                cancel_agent(self.ctx)
            except Exception:  # noqa: BLE001 - the provider may be gone; the cancel is recorded below
                pass
        with self.store.tx() as c:
            self.store.cancel_running_attempts(c, self.wf_id)
            self.store.update(self.wf_id, c, status="cancelled", completed_at=time.time(), waiting=None)
            self.store.checkpoint(c, self.wf_id, "cancelled", None)
        self.publish("workflow", "workflow_cancelled", "warn", message="cancelled by operator")

    def superseded(self, why: str) -> None:
        """Another run of this workflow is current (this runner outlived a daemon): stop, record nothing."""
        self._kill_child()
        self.publish("workflow", "runner_superseded", "warn", message=f"runner stopped without writing: {why}")

    def close(self) -> None:
        command_group.leave(self.run_dir)
        self.bus.close(linger_ms=3000)
        if self._control is not None:
            self._control.close()
        self.store.close()


def main() -> None:
    set_parent_death_signal()
    parent = int(os.environ.get("ANIMUS_PARENT_PID", "0") or 0)
    if parent and os.getppid() != parent:
        sys.exit(3)
    runner = Runner(sys.argv[1])
    try:
        code = runner.run()
    except StaleRun as stale:
        runner.superseded(str(stale))
        code = 0
    finally:
        runner.close()
    sys.exit(code)


def warm(env: dict[str, str]) -> None:
    """In the zygote, after it forked a runner: parse the compiled config and the git settings now,
    so the next runner inherits them parsed (``read_compiled`` keeps what it read and then only
    compares the file's bytes; ``GitSettings.from_env`` keeps its last text's)."""
    read_compiled(Path(env[p.ENV_STATE]) / "state")
    GitSettings.from_env(env.get(ENV_GIT))


ZYGOTE_MAIN = main  # the zygote calls these (animus.supervision.zygote)
ZYGOTE_WARM = warm

if __name__ == "__main__":
    main()
