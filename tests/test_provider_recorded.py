"""The parsers over real CLI output, recorded from the pinned CLIs (``fixtures/providers/recorded``).

Each folder is named ``<vendor>-<version>``; a pin changed in
``scripts/install-agent-clis`` without re-recording fails
``test_a_recording_exists_for_each_pinned_version`` (re-record with
``tests/fixtures/providers/record_streams.py``), and a format change shows up
as the one replay below that stops matching. Pure: no CLI runs here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import agent_cli_support as clis
from animus.plugins.providers import CLI_VENDORS, decide
from animus.plugins.providers.codex.engine import sandbox_denials
from animus.plugins.providers.events import (
    Final,
    PermissionDenied,
    ProviderEvent,
    RunResult,
    SessionStarted,
    ToolCall,
    ToolResult,
)

RECORDED = Path(__file__).parent / "fixtures" / "providers" / "recorded"
PINS = clis.pinned_versions()


def replay(vendor: str, scenario: str) -> tuple[list[ProviderEvent], RunResult]:
    folder = RECORDED / f"{vendor}-{PINS[vendor]}"
    parser = CLI_VENDORS[vendor].StreamParser()
    events: list[ProviderEvent] = []
    for line in (folder / f"{scenario}.jsonl").read_text().splitlines():
        events += parser.feed(line)
    return events, parser.finish(0)


def test_a_recording_exists_for_each_pinned_version() -> None:
    for vendor, version in PINS.items():
        folder = RECORDED / f"{vendor}-{version}"
        assert {p.name for p in folder.glob("*.jsonl")} >= {"tool_write.jsonl", "denied.jsonl", "resume.jsonl"}, (
            f"no recording of {vendor} {version}: run tests/fixtures/providers/record_streams.py")


@pytest.mark.parametrize("vendor", clis.VENDORS)
def test_tool_write_run(vendor: str) -> None:
    events, result = replay(vendor, "tool_write")
    assert result.ok and result.session_id and result.exit_code == 0
    assert isinstance(events[0], SessionStarted) or any(isinstance(e, SessionStarted) for e in events)
    (call,) = [e for e in events if isinstance(e, ToolCall)]
    assert "greeting.txt" in str(call.input)
    (done,) = [e for e in events if isinstance(e, ToolResult)]
    assert done.id == call.id and not done.is_error
    assert result.input_tokens >= 240 and result.output_tokens >= 60  # two scripted turns of 120 / 30
    assert any(isinstance(e, Final) for e in events) or vendor == "opencode"  # opencode: on exit
    decision = decide(result.final_text, allow_missing_decision=False)
    assert decision["verdict"] == "advance" and decision["reason"] == "wrote greeting.txt"
    assert not result.denials
    if vendor == "claude":
        assert result.cost_usd is not None and result.cost_usd > 0


@pytest.mark.parametrize("vendor", clis.VENDORS)
def test_denied_run_reports_the_denial(vendor: str) -> None:
    events, result = replay(vendor, "denied")
    denials = list(result.denials)
    if vendor == "codex":  # its --json output shows nothing; the session log does
        assert not denials
        rollout = (RECORDED / f"codex-{PINS['codex']}" / "denied.rollout.jsonl").read_text().splitlines()
        denials = sandbox_denials(rollout)
    else:
        assert [e for e in events if isinstance(e, PermissionDenied)] == denials
    (denial,) = denials
    assert "denied.txt" in denial.input and denial.message and denial.tool


@pytest.mark.parametrize("vendor", clis.VENDORS)
def test_resumed_run_keeps_the_session(vendor: str) -> None:
    _, first = replay(vendor, "tool_write")
    _, resumed = replay(vendor, "resume")
    assert resumed.ok and resumed.session_id == first.session_id
    assert decide(resumed.final_text, allow_missing_decision=False)["reason"] == "resumed"


@pytest.mark.parametrize("vendor", ["claude", "codex", "opencode"])  # Gemini retries for minutes
def test_rate_limited_run_parks_instead_of_failing(vendor: str) -> None:
    """Every model call answered 429 with the vendor's body: the run is rate limited, not an error."""
    _, result = replay(vendor, "rate_limit")
    assert result.rate_limit is not None and result.error is None, result
    assert "429" in result.rate_limit.message or "rate limit" in result.rate_limit.message.lower()
    if vendor == "opencode":  # it passes the Retry-After header on
        assert result.rate_limit.reset_at is not None
