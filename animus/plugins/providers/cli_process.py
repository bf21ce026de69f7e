"""Run one vendor CLI to completion: spawn, stream, stop, reap.

This is the only module in the provider layer that touches processes; the
vendor parsers it drives are pure. Ownership rules (STYLE: every process has
an owner, nothing outlives it):

* The CLI runs in its **own process group** (``start_new_session``) so a stop
  reaches the tools it spawned (shells, language servers, MCP servers) too.
* The child sets ``PR_SET_PDEATHSIG=SIGKILL`` so it dies if the plugin process
  dies without cleaning up. Linux delivers that signal when the *thread* that
  forked the child exits; ``run_cli`` blocks in that thread until the child is
  reaped, so the two lifetimes match.
* **Stopping** (timeout, cancel, or leftovers after the leader exits) is one
  function: SIGTERM to the group, wait up to ``kill_grace`` (2 s) for the group
  to empty, then SIGKILL to the group. A stop therefore takes at most ~2 s.
* If the owner is SIGKILLed, the parent-death signal kills only the CLI; what
  the CLI started (shells, servers) would live on. So the caller passes an
  ``owner_token`` in the CLI's environment (``OWNER_ENV``; children inherit it),
  and its next incarnation calls ``reap_orphans`` to kill whatever carries a
  token of an owner that no longer runs.

stdout is read line by line with no 64 KiB limit (a single opencode or claude
event can be megabytes); each line goes through the parser and the resulting
events reach ``on_event`` in the caller's thread as they arrive. The last 20
stderr lines are kept: a crash is reported with them, never silently.
"""

from __future__ import annotations

import collections
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil

from animus.plugins.providers.events import (
    Final,
    ProviderError,
    ProviderEvent,
    RunResult,
    StreamParser,
)
from animus.process.handle import signal_group, stop_group
from animus.process.pdeathsig import die_with_parent
from animus.state.files import file_identity

__all__ = [
    "KILL_GRACE",
    "MAX_LINE_BYTES",
    "OWNER_ENV",
    "STDERR_TAIL_LINES",
    "owner_token",
    "cached_version",
    "version_due",
    "positional",
    "probe_version",
    "reap_orphans",
    "run_cli",
    "terminate_group",
]

KILL_GRACE = 2.0
STDERR_TAIL_LINES = 20
MAX_LINE_BYTES = 64 * 1024 * 1024  # a memory guard, not a format limit
_POLL = 0.05
_LINGER = 0.25  # after the leader exits, how long stray holders of stdout may keep it open
OWNER_ENV = "ANIMUS_PROVIDER_OWNER"


def positional(prompt: str) -> str:
    """A prompt passed as an argument must not be read as a flag by the CLI."""
    return " " + prompt if prompt.startswith("-") else prompt


def terminate_group(proc: subprocess.Popen[bytes], grace: float = KILL_GRACE) -> None:
    """SIGTERM the CLI's process group, wait up to ``grace``, then SIGKILL it; reap the leader."""
    stop_group(proc, grace)


def _pump_stdout(stream: Any, out: queue.Queue[bytes | None]) -> None:
    """Whole lines of any length; a line over MAX_LINE_BYTES is cut (and then fails to parse)."""
    try:
        while True:
            line = stream.readline(MAX_LINE_BYTES)
            if not line:
                break
            out.put(line)
            while not line.endswith(b"\n"):
                line = stream.readline(MAX_LINE_BYTES)
                if not line:
                    break
    except (OSError, ValueError):
        pass
    finally:
        out.put(None)


def _pump_stderr(stream: Any, tail: collections.deque[str]) -> None:
    try:
        for raw in iter(lambda: stream.readline(MAX_LINE_BYTES), b""):
            text = raw.decode("utf-8", errors="replace").rstrip()
            if text:
                tail.append(text)
    except (OSError, ValueError):
        pass


def run_cli(
    argv: Sequence[str],
    cwd: str | Path | None,
    env: Mapping[str, str] | None,
    timeout: float | None,
    on_event: Callable[[ProviderEvent], None] | None,
    parser: StreamParser,
    cancel: threading.Event | None = None,
    on_spawn: Callable[[int], None] | None = None,
    kill_grace: float = KILL_GRACE,
) -> RunResult:
    """Run ``argv`` to completion and return what its stream came to.

    Never raises for the CLI's own failures: a missing binary, a crash, a
    timeout or a cancel all come back as ``RunResult.error`` (and as a final
    ``ProviderError`` event), so callers have one path to handle.
    """
    run = _CliRun(parser, on_event)
    try:
        proc = subprocess.Popen(
            list(argv), cwd=cwd, env=dict(env) if env is not None else None, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
            # preexec_fn is the only way to run prctl in the child; it only calls prctl and getppid
            preexec_fn=die_with_parent(),  # noqa: PLW1509
        )
    except OSError as exc:
        error = ProviderError(f"cannot start {argv[0]}: {exc.strerror or exc}", retryable=False)
        run.forward(error)
        return replace(parser.finish(None), error=error)
    if on_spawn is not None:
        on_spawn(proc.pid)
    stopped = run.follow(proc, timeout, cancel, kill_grace)
    return run.result(proc, stopped, timeout)


class _CliRun:
    """One CLI run's stream: its lines read in threads, parsed, forwarded as events."""

    def __init__(self, parser: StreamParser, on_event: Callable[[ProviderEvent], None] | None) -> None:
        self.parser = parser
        self.on_event = on_event
        self.emitted: list[ProviderEvent] = []
        self.lines: queue.Queue[bytes | None] = queue.Queue()
        self.tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)

    def forward(self, event: ProviderEvent) -> None:
        self.emitted.append(event)
        if self.on_event is not None:
            self.on_event(event)

    def consume(self, item: bytes) -> None:
        for event in self.parser.feed(item.decode("utf-8", errors="replace")):
            self.forward(event)

    def follow(self, proc: subprocess.Popen[bytes], timeout: float | None, cancel: threading.Event | None,
               kill_grace: float) -> str | None:
        """Read the stream until the CLI is done; ``"timeout"``/``"cancel"`` if it was stopped."""
        readers = [threading.Thread(target=_pump_stdout, args=(proc.stdout, self.lines), daemon=True),
                   threading.Thread(target=_pump_stderr, args=(proc.stderr, self.tail), daemon=True)]
        for reader in readers:
            reader.start()
        try:
            stopped = self._loop(proc, time.monotonic() + timeout if timeout else None, cancel)
        finally:
            terminate_group(proc, kill_grace)
            for reader in readers:
                reader.join(timeout=kill_grace)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        while True:  # lines read before the loop ended still count, unless the run was stopped
            try:
                item = self.lines.get_nowait()
            except queue.Empty:
                break
            if item is not None and stopped is None:
                self.consume(item)
        return stopped

    def _loop(self, proc: subprocess.Popen[bytes], deadline: float | None,
              cancel: threading.Event | None) -> str | None:
        eof = False
        leader_gone_at: float | None = None
        while True:
            if cancel is not None and cancel.is_set():
                return "cancel"
            if deadline is not None and time.monotonic() >= deadline:
                return "timeout"
            if eof:  # stdout closed; let the CLI finish exiting on its own
                try:
                    proc.wait(timeout=_POLL)
                    return None
                except subprocess.TimeoutExpired:
                    continue
            try:
                item = self.lines.get(timeout=_POLL)
            except queue.Empty:
                if proc.poll() is not None:
                    leader_gone_at = leader_gone_at or time.monotonic()
                    if time.monotonic() - leader_gone_at > _LINGER:
                        return None  # something else in the group holds stdout; it is stopped after
                continue
            if item is None:
                eof = True
            else:
                self.consume(item)

    def result(self, proc: subprocess.Popen[bytes], stopped: str | None, timeout: float | None) -> RunResult:
        result = replace(self.parser.finish(proc.returncode), stderr_tail=tuple(self.tail))
        if stopped == "cancel":
            result = replace(result, cancelled=True, error=ProviderError("cancelled", retryable=False))
        elif stopped == "timeout":
            message = f"{self.parser.provider} timed out after {timeout:g}s"
            result = replace(result, timed_out=True, error=ProviderError(message, retryable=True))
        if result.error is not None and proc.returncode != 0 and self.tail:
            detail = " | ".join(list(self.tail)[-5:])
            result = replace(result, error=replace(result.error, message=f"{result.error.message}; stderr: {detail}"))
        if result.ok and result.final_text and not any(isinstance(e, Final) for e in self.emitted):
            self.forward(Final(result.final_text))
        if result.rate_limit is not None and result.rate_limit not in self.emitted:
            self.forward(result.rate_limit)
        if result.error is not None and result.error not in self.emitted:
            self.forward(result.error)
        return result


_VERSION = re.compile(r"\d+\.\d+(?:\.\d+)?(?:[-+.][0-9A-Za-z.-]+)?")


def probe_version(binary: str, timeout: float = 3.0) -> str | None:
    """``<binary> --version`` with a short timeout; the version number, or None if unusable."""
    try:
        proc = subprocess.Popen(
            [binary, "--version"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError:
        return None
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        signal_group(proc.pid, signal.SIGKILL)
        proc.communicate()
        return None
    if proc.returncode != 0:
        return None
    for line in out.decode("utf-8", errors="replace").splitlines():
        if line.strip():
            match = _VERSION.search(line)
            return match.group(0) if match else line.strip()
    return None


VERSION_TTL_S = 600.0  # how long a probed version is trusted while the binary stays the same file
FAILED_TTL_S = 30.0  # and a failed probe: a fixed or newly installed CLI is seen within this
# binary path -> (its file's identity, the version or None, when it was probed)
_VERSIONS: dict[str, tuple[tuple[int, int, int], str | None, float]] = {}


def _identity(binary: str) -> tuple[int, int, int] | None:
    """The binary's file as a probe saw it (inode, size, mtime: an upgrade is another), None if missing."""
    try:
        return file_identity(binary)
    except OSError:
        return None


def _remembered(binary: str, identity: tuple[int, int, int]) -> tuple[str | None] | None:
    """The version probed for this file while the answer is fresh (wrapped: None is an answer too)."""
    known = _VERSIONS.get(binary)
    if known is None or known[0] != identity:
        return None
    return (known[1],) if time.monotonic() - known[2] < (VERSION_TTL_S if known[1] else FAILED_TTL_S) else None


def version_due(binary: str) -> bool:
    """Whether ``cached_version(binary)`` would start the CLI (no fresh answer for this file)."""
    identity = _identity(binary)
    return identity is not None and _remembered(binary, identity) is None  # missing: None at once


def cached_version(binary: str, timeout: float = 3.0) -> str | None:
    """``probe_version``, remembered while ``binary`` is the same file (an upgrade probes again) for
    ``VERSION_TTL_S`` (a failure for ``FAILED_TTL_S``). A health check comes with every ping;
    ``<cli> --version`` starts the whole CLI (Gemini CLI: ~2 s of node, relaunched)."""
    identity = _identity(binary)
    if identity is None:
        return None
    if (remembered := _remembered(binary, identity)) is not None:
        return remembered[0]
    probed_at = time.monotonic()
    version = probe_version(binary, timeout)
    _VERSIONS[binary] = (identity, version, probed_at)
    return version


def owner_token(scope: str) -> str:
    """``<scope>|<pid>|<create time>`` of this process: who owns the CLIs it starts."""
    me = psutil.Process()
    return f"{scope}|{me.pid}|{me.create_time():.2f}"


def _owner_alive(pid: int, created: float) -> bool:
    try:
        return bool(abs(psutil.Process(pid).create_time() - created) < 0.05)
    except psutil.Error:
        return False


def reap_orphans(scope: str) -> list[int]:
    """SIGKILL every process whose ``OWNER_ENV`` names a dead owner of ``scope``; their pids.

    Only processes whose environment we can read are considered (our own user's);
    the create time in the token keeps a reused pid from passing for the owner.
    """
    prefix = f"{scope}|"
    killed: list[int] = []
    for proc in psutil.process_iter():
        try:
            token = proc.environ().get(OWNER_ENV, "")
        except psutil.Error:
            continue
        if not token.startswith(prefix):
            continue
        try:
            pid_text, created = token[len(prefix) :].split("|")
            if _owner_alive(int(pid_text), float(created)):
                continue
            proc.kill()
            killed.append(proc.pid)
        except (ValueError, psutil.Error):
            continue
    return killed
