"""A command phase: one program, its output streamed line by line, its exit code a verdict.

A command runs with a declared environment (``command_env``), and secret
values are masked in its output (``animus.redact``) before it goes three
ways: ``runs/<id>/<phase>.<attempt>.log`` (everything; made at the first
output, so a command that printed nothing leaves no empty file),
``phase_output`` events on the bus (each line, up to 4 000 characters), and
the tail kept on the attempt. A command runs in its own process group in its
runner's session, so a cancel, a timeout or the runner's death takes its
whole tree with it (``command_group``: what it left in its group when it
ended, or in the session when its runner died, is killed). ``cwd_mode`` chooses where it
runs: ``project_root``, ``task_root`` (the run's worktree) or ``path``
(relative to the project root).
``run_streamed`` is also what runs a worktree's setup and teardown commands.
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from animus import redact
from animus.workflow import command_group
from animus.workflow.command_env import UnresolvedSecret, command_env, resolve_argv
from animus.workflow.model import CwdMode, PhaseDefinition
from animus.workflow.run_context import RunContext

ENV_COMMAND_ENV = "ANIMUS_COMMAND_ENV"
__all__ = ["ENV_COMMAND_ENV", "OUTPUT_TAIL", "CommandOutcome", "command_cwd", "run_command", "run_streamed"]

OUTPUT_TAIL = 4000


@dataclass(frozen=True)
class CommandOutcome:
    verdict: str
    reason: str
    exit_code: int
    tail: str


def command_cwd(ctx: RunContext, mode: CwdMode, path: str | None) -> Path:
    if mode is CwdMode.TASK_ROOT:
        return ctx.task_root
    if mode is CwdMode.PATH and path:
        return (ctx.project_root / path).resolve()
    return ctx.project_root


def run_streamed(ctx: RunContext, argv: Sequence[str], cwd: Path, env: Mapping[str, str], timeout: float,
                 log_path: Path, phase: str) -> tuple[int | None, str]:
    """Run ``argv``, streaming its output; return (exit code or None on timeout, output tail).

    ``OSError`` (no such program) propagates before anything runs."""
    tail = ""
    with _Log(log_path) as log:
        child = command_group.start(argv, cwd, env, die_with_runner=ctx.remote)  # in the runner's session
        ctx.in_flight.child = child
        stream = child.stdout
        assert stream is not None
        deadline = time.monotonic() + timeout
        buf = b""
        try:
            while True:
                ready, _, _ = select.select([stream], [], [], 0.2)
                if ready:
                    chunk = os.read(stream.fileno(), 65536)
                    if not chunk:
                        break
                    *lines, buf = (buf + chunk).split(b"\n")
                    for raw in lines:
                        tail = _emit(ctx, phase, raw, tail, "\n", log)
                elif time.monotonic() > deadline:
                    ctx.in_flight.kill_child()
                    return None, tail
            if buf:
                tail = _emit(ctx, phase, buf, tail, "", log)
            return command_group.finish(child), tail
        except BaseException:
            ctx.in_flight.kill_child()
            raise
        finally:
            ctx.in_flight.child = None


class _Log:
    """A command's log file, made when it first has a line to hold (appended to, across restarts)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file: BinaryIO | None = None

    def write(self, data: bytes) -> None:
        if self.file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(self.path, "ab")  # noqa: SIM115 - closed by __exit__
        self.file.write(data)

    def __enter__(self) -> _Log:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.file is not None:
            self.file.close()


def _emit(ctx: RunContext, phase: str, raw: bytes, tail: str, end: str, log: _Log) -> str:
    """One line to the log file, the bus and the tail, with secret values masked in all three."""
    red = redact.active()
    line = red.text(raw.decode("utf-8", "replace"))
    log.write(line.encode() + end.encode() if red else raw + end.encode())
    ctx.publish("phase", "phase_output", "info", phase=phase, stream="stdout", line=line[:4000])
    return (tail + line + end)[-OUTPUT_TAIL:]


def run_command(ctx: RunContext, phase: PhaseDefinition, attempt: int) -> CommandOutcome:
    spec = phase.command
    assert spec is not None
    try:  # a declared environment, never the runner's (animus.workflow.command_env)
        env = command_env(os.environ, spec.env, command_passthrough(ctx.project_root), {
            "ANIMUS_WORKFLOW_ID": ctx.wf_id, "ANIMUS_PHASE": phase.id, "ANIMUS_ATTEMPT": str(attempt),
            "ANIMUS_TASK_ROOT": str(ctx.task_root)})
        argv = resolve_argv(spec.program, spec.args, os.environ)
    except UnresolvedSecret as exc:
        return CommandOutcome("fail", str(exc), 127, str(exc))
    timeout = spec.timeout_secs or phase.timeout_secs or 1800
    try:
        code, tail = run_streamed(ctx, argv, command_cwd(ctx, spec.cwd_mode, spec.cwd_path),
                                  env, timeout, ctx.run_dir / f"{phase.id}.{attempt}.log", phase.id)
    except OSError as exc:
        return CommandOutcome("fail", f"cannot run {spec.program}: {exc}", 127, str(exc))
    if code is None:
        return CommandOutcome("fail", f"timed out after {timeout}s", -9, tail)
    ok = code in spec.success_exit_codes
    reason = f"exit code {code}" + ("" if ok else f" (expected {', '.join(map(str, spec.success_exit_codes))})")
    return CommandOutcome("advance" if ok else "fail", reason, code, tail)


def command_passthrough(project_root: Path) -> tuple[str, ...]:
    """Names every command phase gets from the runner's environment (``commands.env``).

    The workflows service hands them to its runners in ``ANIMUS_COMMAND_ENV`` (comma-separated)."""
    return tuple(n for n in os.environ.get(ENV_COMMAND_ENV, "").split(",") if n)
