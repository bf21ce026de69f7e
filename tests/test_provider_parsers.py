"""Replay every recorded vendor stream through its parser.

One fixture, one expectation: if a vendor changes its format, the fixture
re-recorded from the new CLI breaks exactly the test that names it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from animus.plugins.providers.claude import engine as claude
from animus.plugins.providers.codex import engine as codex
from animus.plugins.providers.gemini import engine as gemini
from animus.plugins.providers.opencode import engine as opencode
from animus.plugins.providers.events import (
    Final,
    ProviderError,
    RateLimited,
    RunResult,
    SessionStarted,
    TextDelta,
    ToolCall,
    ToolResult,
    Usage,
)
from animus.plugins.providers.verdict import extract_verdict

STREAMS = Path(__file__).parent / "fixtures" / "providers" / "streams"
NOW = 1_760_000_000.0
VENDORS = {"claude": claude, "codex": codex, "gemini": gemini, "opencode": opencode}
LONG = 300_000


def replay(vendor: str, scenario: str, exit_code: int | None) -> tuple[list[Any], RunResult]:
    parser = VENDORS[vendor].StreamParser(clock=lambda: NOW)
    events: list[Any] = []
    for line in (STREAMS / vendor / f"{scenario}.jsonl").read_text().splitlines():
        events += parser.feed(line.replace("__LONG_TEXT__", "x" * LONG))
    return events, parser.finish(exit_code)


def kinds(events: list[Any]) -> list[str]:
    return [e.kind for e in events]


# ---- success: session, tools, usage, cost, final text, verdict ------------------------

# The success streams are the pinned CLIs' own output (recorded/<vendor>-<version>/tool_write.jsonl,
# copied): one shell tool call that writes greeting.txt, two scripted turns of 120 / 30 tokens.
SUCCESS_TOOLS = {"claude": "Bash", "codex": "shell", "gemini": "run_shell_command", "opencode": "bash"}


@pytest.mark.parametrize("vendor", sorted(SUCCESS_TOOLS))
def test_success_stream(vendor: str) -> None:
    events, result = replay(vendor, "success", 0)
    assert isinstance(events[0], SessionStarted) and events[0].session_id == result.session_id
    (call,) = [e for e in events if isinstance(e, ToolCall)]
    (done,) = [e for e in events if isinstance(e, ToolResult)]
    assert call.name == SUCCESS_TOOLS[vendor] and "greeting.txt" in json.dumps(call.input)
    assert done.id == call.id and not done.is_error
    assert result.ok and result.error is None and result.rate_limit is None
    assert (result.input_tokens, result.output_tokens) == (240, 60)
    assert (result.cost_usd or 0) > 0 if vendor == "claude" else not result.cost_usd
    verdict = extract_verdict(result.final_text)
    assert verdict is not None and verdict["verdict"] == "advance" and verdict["confidence"] == 0.9
    assert [e["kind"] for e in verdict["evidence"]] == ["file"]


def test_gemini_final_text_is_what_follows_the_last_tool_call() -> None:
    events, result = replay("gemini", "success", 0)
    last_tool = max(i for i, e in enumerate(events) if isinstance(e, ToolResult))
    assert result.final_text.startswith("All done.")
    assert result.final_text == "".join(e.text for e in events[last_tool:] if isinstance(e, TextDelta))
    assert events[-1] == Final(result.final_text)


# ---- rate limits with reset times -------------------------------------------------------

RATE_LIMITS = {
    ("claude", "rate_limit", 1): 1771390800.0,  # rate_limit_event resetsAt
    ("claude", "rate_limit_legacy", 1): 1771390800.0,  # "usage limit reached|<epoch>"
    ("codex", "rate_limit", 1): NOW + 2 * 3600 + 5 * 60,  # "try again in 2 hours 5 minutes"
    ("gemini", "rate_limit", 1): NOW + 37.5,  # "Please retry in 37.5s"
    ("opencode", "rate_limit", 0): NOW + 30,  # statusCode 429, retry-after: 30
}


@pytest.mark.parametrize(("vendor", "scenario", "code"), sorted(RATE_LIMITS))
def test_rate_limit_stream(vendor: str, scenario: str, code: int) -> None:
    events, result = replay(vendor, scenario, code)
    limits = [e for e in events if isinstance(e, RateLimited)]
    assert len(limits) == 1
    assert limits[0].reset_at == pytest.approx(RATE_LIMITS[(vendor, scenario, code)])
    assert result.rate_limit == limits[0]
    assert not result.ok and result.error is None
    assert not any(isinstance(e, Final) for e in events)


# ---- errors -----------------------------------------------------------------------------

ERRORS = {
    ("claude", 1): ("claude stopped: error_max_turns after 5 turns", False),
    ("codex", 1): (
        "codex: unexpected status 401 Unauthorized: Missing bearer or basic authentication in header",
        False,
    ),
    ("gemini", 53): (
        (
            "gemini: Reached max session turns for this session. Increase the number of turns by "
            "specifying maxSessionTurns in settings.json."
        ),
        False,
    ),
    ("opencode", 0): (
        "opencode: ProviderAuthError: Invalid API key.",
        False,
    ),  # exit 0 is not success here
}


@pytest.mark.parametrize(("vendor", "code"), sorted(ERRORS))
def test_error_stream(vendor: str, code: int) -> None:
    events, result = replay(vendor, "error", code)
    message, retryable = ERRORS[(vendor, code)]
    assert result.error == ProviderError(message, retryable)
    assert [e for e in events if isinstance(e, ProviderError)] == [result.error]
    assert not result.ok


def test_claude_error_still_reports_cost() -> None:
    _, result = replay("claude", "error", 1)
    assert result.cost_usd == pytest.approx(0.3107)
    assert result.input_tokens == 2409 + 29104 + 161780


def test_codex_reconnect_error_is_not_terminal() -> None:
    _, result = replay("codex", "reconnect_then_success", 0)
    assert result.ok and result.final_text == "Done. Nothing to change."


# ---- partial output, then the process died ----------------------------------------------


@pytest.mark.parametrize("vendor", sorted(VENDORS))
def test_crash_mid_stream(vendor: str) -> None:
    events, result = replay(vendor, "crash", -9)
    assert isinstance(events[0], SessionStarted)
    assert result.error is not None and result.error.retryable
    assert "killed by SIGKILL" in result.error.message
    assert result.session_id == events[0].session_id  # resumable


@pytest.mark.parametrize("vendor", sorted(VENDORS))
def test_stream_cut_short_with_exit_zero_is_not_success(vendor: str) -> None:
    _, result = replay(vendor, "crash", 0)
    assert (result.ok, vendor) == (vendor == "opencode", vendor)  # opencode has no terminal event


def test_opencode_nonzero_exit_without_error_event_fails() -> None:
    _, result = replay("opencode", "success", 1)
    assert not result.ok and "exited with code 1" in result.error.message  # type: ignore[union-attr]
    assert result.final_text.startswith("All done.")


# ---- long lines, noise, unknown events ---------------------------------------------------


@pytest.mark.parametrize("vendor", sorted(VENDORS))
def test_lines_longer_than_64k(vendor: str) -> None:
    events, result = replay(vendor, "long_line", 0)
    outputs = [e.output for e in events if isinstance(e, ToolResult)]
    assert [len(o) for o in outputs] == [LONG]
    assert result.ok and extract_verdict(result.final_text) is not None


@pytest.mark.parametrize("vendor", sorted(VENDORS))
def test_noise_and_unknown_events_are_ignored(vendor: str) -> None:
    parser = VENDORS[vendor].StreamParser()
    for line in [
        "",
        "   ",
        "npm WARN something",
        "[1, 2]",
        '"just a string"',
        "{broken",
        json.dumps({"type": "brand_new_event", "payload": {"x": 1}}),
        json.dumps({"no_type": True}),
    ]:
        assert parser.feed(line) == []
    assert (
        parser.ignored_lines == 4
    )  # the non-JSON and non-object lines; unknown events are not noise


def test_event_to_dict() -> None:
    assert Usage(1, 2, 0.5).to_dict() == {
        "kind": "usage",
        "input_tokens": 1,
        "output_tokens": 2,
        "cost_usd": 0.5,
    }
    assert TextDelta("hi").to_dict() == {"kind": "text_delta", "text": "hi"}
    _, result = replay("claude", "rate_limit", 1)
    out = result.to_dict()
    assert out["ok"] is False and out["rate_limit"]["reset_at"] == 1771390800.0
    json.dumps(out)


# ---- gemini --output-format json -----------------------------------------------------------


def test_gemini_json_output() -> None:
    result = gemini.parse_json_output((STREAMS / "gemini" / "json_output.json").read_text(), 0)
    assert result.ok and result.session_id == "c7a1e0f2-6b3d-4e5f-9a8b-1c2d3e4f5a6b"
    assert (result.input_tokens, result.output_tokens) == (24939 + 8965, 20 + 10)
    verdict = extract_verdict(result.final_text)
    assert verdict is not None and verdict["verdict"] == "rework" and verdict["risk"] == "medium"


def test_gemini_json_error_is_a_rate_limit() -> None:
    result = gemini.parse_json_output(
        (STREAMS / "gemini" / "json_error.json").read_text(), 1, clock=lambda: NOW
    )
    assert result.rate_limit is not None and result.rate_limit.reset_at == NOW + 37.5


def test_gemini_json_garbage() -> None:
    result = gemini.parse_json_output("Loaded cached credentials.\n", 1)
    assert not result.ok and result.ignored_lines == 1
