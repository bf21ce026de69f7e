"""Run the vendor stand-ins through ``run_cli`` for real: argv, streaming, crashes, stops, orphans."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from animus.plugins.providers import CLI_VENDORS
from animus.plugins.providers.claude import engine as claude
from animus.plugins.providers.codex import engine as codex
from animus.plugins.providers.gemini import engine as gemini
from animus.plugins.providers.opencode import engine as opencode
from animus.plugins.providers.cli_process import probe_version, run_cli
from animus.plugins.providers.events import (
    Final,
    ProviderError,
    RunResult,
    SessionStarted,
    ToolResult,
)
from animus.plugins.providers.verdict import extract_verdict
from animus.testing import wait_until

BIN = Path(__file__).parent / "fixtures" / "providers" / "bin"
MODELS = {
    "claude": "sonnet",
    "codex": "gpt-5-codex",
    "gemini": "gemini-2.5-pro",
    "opencode": "anthropic/claude-sonnet-4-5",
}


def standin_env(tmp_path: Path, scenario: str = "success", **extra: str) -> dict[str, str]:
    """The stand-ins' ``#!/usr/bin/env python3`` finds this interpreter first (a pyenv shim costs 0.2 s)."""
    return {
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
        "HOME": str(tmp_path),
        "ANIMUS_STANDIN_SCENARIO": scenario,
        "ANIMUS_STANDIN_ARGV_FILE": str(tmp_path / "argv.jsonl"),
        "ANIMUS_STANDIN_PIDFILE": str(tmp_path / "pids"),
        **extra,
    }


def run(
    vendor: str,
    tmp_path: Path,
    scenario: str = "success",
    timeout: float | None = 20,
    session_id: str | None = None,
    cancel: threading.Event | None = None,
    on_event: Any = None,
    kill_grace: float = 2.0,
    on_spawn: Any = None,
    **env: str,
) -> tuple[RunResult, list[Any]]:
    module = CLI_VENDORS[vendor]
    argv = module.build_argv(
        str(BIN / vendor), "Fix the bug and decide.", MODELS[vendor], session_id=session_id
    )
    events: list[Any] = []

    def collect(event: Any) -> None:
        events.append(event)
        if on_event:
            on_event(event)

    result = run_cli(
        argv,
        tmp_path,
        standin_env(tmp_path, scenario, **env),
        timeout,
        collect,
        module.StreamParser(),
        cancel=cancel,
        on_spawn=on_spawn,
        kill_grace=kill_grace,
    )
    return result, events


def recorded_pids(tmp_path: Path) -> list[int]:
    return [int(p) for p in (tmp_path / "pids").read_text().split()]


def live_group_members(pgid: int) -> list[int]:
    members = []
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(proc.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def assert_all_gone(pids: list[int]) -> None:
    def gone(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_until(lambda: all(gone(p) for p in pids), timeout=3, what=f"processes {pids} to be gone")


# ---- argv -------------------------------------------------------------------------------


def test_build_argv_new_sessions() -> None:
    assert claude.build_argv("claude", "hi", "sonnet", system_prompt="be brief") == [
        "claude",
        "-p",
        "hi",
        "--output-format",
        "stream-json",
        "--verbose",
        "--model",
        "sonnet",
        "--append-system-prompt",
        "be brief",
    ]
    assert codex.build_argv(
        "codex", "hi", "gpt-5", extra_args=["--sandbox", "workspace-write"]
    ) == [
        "codex",
        "exec",
        "--json",
        "--skip-git-repo-check",
        "--model",
        "gpt-5",
        "--sandbox",
        "workspace-write",
        "hi",
    ]
    assert gemini.build_argv("gemini", "hi", None, system_prompt="sys") == [
        "gemini",
        "--output-format",
        "stream-json",
        "--prompt",
        "sys\n\nhi",
    ]
    assert opencode.build_argv("opencode", "hi", "openai/gpt-5") == [
        "opencode",
        "run",
        "--format",
        "json",
        "--model",
        "openai/gpt-5",
        "hi",
    ]


def test_build_argv_resume_uses_each_vendors_session_flag() -> None:
    assert claude.build_argv("c", "go on", "m", session_id="S")[-2:] == ["--resume", "S"]
    assert codex.build_argv("c", "go on", "m", session_id="S")[-3:] == ["resume", "S", "go on"]
    assert gemini.build_argv("g", "go on", "m", session_id="S")[3:7] == [
        "--model",
        "m",
        "--resume",
        "S",
    ]
    assert opencode.build_argv("o", "go on", "m", session_id="S")[-3:] == [
        "--session",
        "S",
        "go on",
    ]


def test_a_prompt_that_looks_like_a_flag_stays_a_prompt() -> None:
    assert claude.build_argv("c", "--help me", None)[2] == " --help me"


@pytest.mark.parametrize("vendor", sorted(CLI_VENDORS))
def test_standins_accept_the_argv_for_new_and_resumed_sessions(vendor: str, tmp_path: Path) -> None:
    first, _ = run(vendor, tmp_path)
    again, _ = run(vendor, tmp_path, session_id=first.session_id)
    assert first.ok and again.ok, (first.error, again.error)
    calls = [json.loads(line) for line in (tmp_path / "argv.jsonl").read_text().splitlines()]
    assert len(calls) == 2 and first.session_id in calls[1] and first.session_id not in calls[0]


def test_claude_without_verbose_fails_with_the_clis_own_message(tmp_path: Path) -> None:
    argv = [a for a in claude.build_argv(str(BIN / "claude"), "hi", None) if a != "--verbose"]
    result = run_cli(argv, tmp_path, standin_env(tmp_path), 10, None, claude.StreamParser())
    assert not result.ok and "requires --verbose" in result.error.message  # type: ignore[union-attr]


# ---- streaming ----------------------------------------------------------------------------


@pytest.mark.parametrize("vendor", sorted(CLI_VENDORS))
def test_success_through_run_cli(vendor: str, tmp_path: Path) -> None:
    result, events = run(vendor, tmp_path)
    assert result.ok and result.exit_code == 0
    assert isinstance(events[0], SessionStarted) and isinstance(events[-1], Final)
    assert events[-1].text == result.final_text
    assert extract_verdict(result.final_text)["verdict"] == "advance"  # type: ignore[index]
    assert result.input_tokens > 0 and result.output_tokens > 0


def test_events_arrive_while_the_cli_is_still_running(tmp_path: Path) -> None:
    alive_at_first_event: list[bool] = []

    def check(event: Any) -> None:
        if not alive_at_first_event:
            pid = recorded_pids(tmp_path)[0]
            alive_at_first_event.append(
                psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
            )

    result, _ = run("claude", tmp_path, "crash", on_event=check, ANIMUS_STANDIN_DELAY="0.15")
    assert alive_at_first_event == [True]
    assert not result.ok


@pytest.mark.parametrize("vendor", sorted(CLI_VENDORS))
def test_crash_mid_stream_reports_the_stderr_tail(vendor: str, tmp_path: Path) -> None:
    result, events = run(vendor, tmp_path, "crash")
    assert result.exit_code == -signal.SIGKILL
    assert isinstance(events[0], SessionStarted)  # partial output was forwarded
    assert result.error is not None and result.error.retryable
    assert "killed by SIGKILL" in result.error.message
    assert "fatal: simulated crash while streaming (stand-in)" in result.error.message
    assert result.stderr_tail[-1] == "fatal: simulated crash while streaming (stand-in)"
    assert events[-1] == result.error  # the caller hears about it as an event too


@pytest.mark.parametrize("vendor", sorted(CLI_VENDORS))
def test_long_lines(vendor: str, tmp_path: Path) -> None:
    result, events = run(
        vendor, tmp_path, "long_line", ANIMUS_STANDIN_LONG_BYTES=str(3 * 1024 * 1024)
    )
    assert result.ok, result.error
    assert [len(e.output) for e in events if isinstance(e, ToolResult)] == [3 * 1024 * 1024]


def test_rate_limit_through_run_cli(tmp_path: Path) -> None:
    result, events = run("claude", tmp_path, "rate_limit")
    assert result.rate_limit is not None and result.rate_limit.reset_at == 1771390800
    assert result.rate_limit in events and result.exit_code == 1


def test_opencode_error_event_with_exit_zero(tmp_path: Path) -> None:
    result, _ = run("opencode", tmp_path, "error")
    assert result.exit_code == 0 and not result.ok
    assert result.error == ProviderError("opencode: ProviderAuthError: Invalid API key.", False)


def test_missing_binary(tmp_path: Path) -> None:
    events: list[Any] = []
    result = run_cli(
        [str(tmp_path / "nope"), "-p", "x"], tmp_path, {}, 5, events.append, claude.StreamParser()
    )
    assert not result.ok and result.error.message.startswith("cannot start")  # type: ignore[union-attr]
    assert events == [result.error]


# ---- stopping: timeout, cancel, stubborn children, leftovers --------------------------------


def test_timeout_kills_the_whole_group(tmp_path: Path) -> None:
    spawned: list[int] = []
    started = time.monotonic()
    result, events = run("codex", tmp_path, "hang", timeout=0.5, on_spawn=spawned.append)
    assert time.monotonic() - started < 2.5
    assert result.timed_out and result.error is not None and result.error.retryable
    assert result.error.message.startswith("codex timed out after 0.5s")
    assert isinstance(events[0], SessionStarted)
    pids = recorded_pids(tmp_path)
    assert len(pids) == 2 and spawned == pids[:1]  # the CLI and the tool it spawned
    assert_all_gone(pids)
    assert live_group_members(spawned[0]) == []


def test_cancel_kills_the_whole_group(tmp_path: Path) -> None:
    cancel = threading.Event()
    spawned: list[int] = []
    result, _ = run(
        "gemini",
        tmp_path,
        "hang",
        cancel=cancel,
        on_event=lambda e: cancel.set(),
        on_spawn=spawned.append,
    )
    assert result.cancelled and result.error == ProviderError("cancelled", False)
    assert_all_gone(recorded_pids(tmp_path))
    assert live_group_members(spawned[0]) == []


def test_sigterm_ignored_escalates_to_sigkill(tmp_path: Path) -> None:
    started = time.monotonic()
    result, _ = run("opencode", tmp_path, "stubborn", timeout=0.3, kill_grace=0.4)
    elapsed = time.monotonic() - started
    assert result.timed_out and result.exit_code == -signal.SIGKILL
    assert 0.6 <= elapsed < 3.0
    assert_all_gone(recorded_pids(tmp_path))


def test_leftover_children_are_stopped_after_a_normal_exit(tmp_path: Path) -> None:
    started = time.monotonic()
    result, _ = run("claude", tmp_path, "leaves_child")
    assert result.ok and time.monotonic() - started < 3.0
    assert_all_gone(recorded_pids(tmp_path))


def test_cli_dies_when_its_owner_is_killed(tmp_path: Path) -> None:
    """PR_SET_PDEATHSIG: SIGKILL the process that called run_cli; the CLI must not survive it."""
    owner_code = (
        "import sys\n"
        "from animus.plugins.providers.claude import engine as claude\n"
        "from animus.plugins.providers.cli_process import run_cli\n"
        "env = dict(__import__('os').environ)\n"
        f"argv = claude.build_argv({str(BIN / 'claude')!r}, 'hi', None)\n"
        "run_cli(argv, None, env, 60, None, claude.StreamParser())\n"
    )
    env = {**os.environ, **standin_env(tmp_path, "hang")}
    owner = subprocess.Popen([sys.executable, "-c", owner_code], env=env)
    try:
        wait_until(
            lambda: (
                (tmp_path / "pids").exists() and (tmp_path / "pids").read_text().count("\n") == 2
            ),
            timeout=10,
            what="the stand-in to start",
        )
        cli_pid = recorded_pids(tmp_path)[0]
        assert psutil.Process(cli_pid).ppid() == owner.pid
        owner.kill()
        owner.wait()
        assert_all_gone([cli_pid])
    finally:
        owner.kill()
        owner.wait()
        for pid in recorded_pids(tmp_path):  # the grandchild is outside PDEATHSIG's reach
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# ---- version probes --------------------------------------------------------------------------


def test_versions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", standin_env(tmp_path)["PATH"])
    assert claude.version(str(BIN / "claude")) == "2.0.14"
    assert codex.version(str(BIN / "codex")) == "0.46.0"
    assert gemini.version(str(BIN / "gemini")) == "0.9.0"
    assert opencode.version(str(BIN / "opencode")) == "0.15.2"
    assert claude.version(str(tmp_path / "missing")) is None


def test_version_probe_times_out(tmp_path: Path) -> None:
    slow = tmp_path / "slow"
    slow.write_text("#!/bin/sh\nsleep 30\n")
    slow.chmod(0o755)
    started = time.monotonic()
    assert probe_version(str(slow), timeout=0.3) is None
    assert time.monotonic() - started < 2


def test_vendor_metadata() -> None:
    for name, module in CLI_VENDORS.items():
        assert module.NAME == name and module.install_hint.startswith("npm install -g ")
        assert module.env_required and all(v.to_dict()["name"] for v in module.env_required)
    assert claude.install_hint == "npm install -g @anthropic-ai/claude-code"
    assert "ANTHROPIC_API_KEY" in [v.name for v in claude.env_required]
    assert "OPENAI_API_KEY" in [v.name for v in codex.env_required]
    assert "GEMINI_API_KEY" in [v.name for v in gemini.env_required]


def test_the_version_is_probed_once_per_binary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A CLI provider's health comes with every ping: ``<cli> --version`` (seconds of node for some CLIs)
    runs again only when the binary is another file (an upgrade) or the answer is old."""
    from animus.plugins.providers import cli_process

    calls = tmp_path / "calls"
    cli = tmp_path / "fakecli"

    def install(version: str) -> None:
        cli.write_text(f"#!/bin/sh\necho probed >> {calls}\necho 'fakecli {version}'\n")
        cli.chmod(0o755)

    install("1.2.3")
    assert [cli_process.cached_version(str(cli)) for _ in range(3)] == ["1.2.3"] * 3
    assert calls.read_text().count("probed") == 1
    install("1.10.0")  # upgraded in place: another size, another mtime
    assert cli_process.cached_version(str(cli)) == "1.10.0"
    assert calls.read_text().count("probed") == 2
    monkeypatch.setattr(cli_process, "VERSION_TTL_S", 0.0)  # an old answer is probed again
    assert cli_process.cached_version(str(cli)) == "1.10.0"
    assert calls.read_text().count("probed") == 3
    assert cli_process.cached_version(str(tmp_path / "missing")) is None
    assert not cli_process.version_due(str(tmp_path / "missing"))  # nothing to probe: cheap
    assert cli_process.version_due(str(cli))  # the answer is old (the TTL is 0 here)
    monkeypatch.setattr(cli_process, "VERSION_TTL_S", 600.0)
    assert not cli_process.version_due(str(cli))  # fresh: health is cheap, answered in the pong
