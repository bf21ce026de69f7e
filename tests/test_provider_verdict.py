"""The phase decision read from an agent's final message, and the error-text classifiers."""

from __future__ import annotations

import json

import pytest

from animus.plugins.providers.events import looks_retryable, rate_limit_from_text
from animus.plugins.providers.verdict import (
    DEFAULT_CONFIDENCE,
    DEFAULT_RISK,
    VerdictError,
    decide,
    extract_verdict,
    verdict_instructions,
)

GOOD = {
    "verdict": "advance",
    "reason": "tests pass",
    "confidence": 0.9,
    "risk": "low",
    "evidence": [],
}


def fenced(obj: object) -> str:
    return "```json\n" + json.dumps(obj, indent=2) + "\n```"


def test_fenced_block() -> None:
    assert extract_verdict("Done.\n\n" + fenced(GOOD)) == GOOD


def test_bare_object_in_prose() -> None:
    text = f"My decision is {json.dumps(GOOD)} and that is final."
    assert extract_verdict(text) == GOOD


def test_the_last_verdict_wins() -> None:
    draft = dict(GOOD, verdict="rework", reason="draft")
    text = f"First thought: {json.dumps(draft)}\n\nAfter checking again:\n{fenced(GOOD)}"
    assert extract_verdict(text)["verdict"] == "advance"  # type: ignore[index]
    text = f"{fenced(GOOD)}\nActually no: {json.dumps(draft)}"
    assert extract_verdict(text)["verdict"] == "rework"  # type: ignore[index]


def test_unfenced_code_block_and_other_json_are_skipped() -> None:
    text = '```\n{"files": ["a.py"]}\n```\nand ' + fenced(GOOD) + '\n{"unrelated": 1}'
    assert extract_verdict(text) == GOOD


def test_normalizes_case_evidence_strings_and_keeps_phase_fields() -> None:
    raw = dict(
        GOOD,
        verdict=" Rework ",
        risk="HIGH",
        confidence=1,
        evidence=["tests fail"],
        files_modified=["a.py"],
    )
    got = extract_verdict(fenced(raw))
    assert got == {
        "verdict": "rework",
        "reason": "tests pass",
        "confidence": 1.0,
        "risk": "high",
        "evidence": [{"kind": "note", "description": "tests fail"}],
        "files_modified": ["a.py"],
    }


def test_evidence_is_optional() -> None:
    raw = {k: v for k, v in GOOD.items() if k != "evidence"}
    assert extract_verdict(fenced(raw))["evidence"] == []  # type: ignore[index]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"verdict": "maybe"}, "verdict must be one of advance|rework|skip|fail, got 'maybe'"),
        ({"verdict": 3}, "verdict must be one of advance|rework|skip|fail, got 3"),
        ({"reason": ""}, "verdict needs a non-empty 'reason' string"),
        ({"confidence": 1.5}, "confidence must be between 0 and 1, got 1.5"),
        ({"confidence": "high"}, "confidence must be a number between 0 and 1, got 'high'"),
        ({"confidence": True}, "confidence must be a number between 0 and 1, got True"),
        ({"risk": "extreme"}, "risk must be one of low|medium|high, got 'extreme'"),
        ({"evidence": "lots"}, "evidence must be a list, got str"),
        ({"evidence": [{"description": "x"}]}, "evidence[0] needs a 'kind' string"),
        (
            {"evidence": [{"kind": "k", "description": "d", "file_path": 3}]},
            "evidence[0].file_path must be a string",
        ),
    ],
)
def test_malformed_envelope(change: dict[str, object], message: str) -> None:
    with pytest.raises(VerdictError) as info:
        extract_verdict(fenced(dict(GOOD, **change)))
    assert str(info.value) == message
    assert "\n" not in str(info.value)


def test_missing_confidence_and_risk_take_the_documented_defaults() -> None:
    raw = {k: v for k, v in GOOD.items() if k not in ("risk", "confidence")}
    found = extract_verdict(fenced(raw))
    assert found is not None
    assert (found["confidence"], found["risk"]) == (DEFAULT_CONFIDENCE, DEFAULT_RISK) == (0.8, "medium")
    assert found["defaulted"] == ["confidence", "risk"]


def test_missing_reason_is_still_an_error() -> None:
    raw = {k: v for k, v in GOOD.items() if k != "reason"}
    with pytest.raises(VerdictError, match="non-empty 'reason'"):
        extract_verdict(fenced(raw))


def test_invalid_json_in_fenced_block() -> None:
    text = 'Done.\n```json\n{"verdict": "advance", "reason": "ok",}\n```'
    with pytest.raises(VerdictError, match=r"^verdict block is not valid JSON \(.* at line 1\)$"):
        extract_verdict(text)


def test_invalid_bare_verdict_object() -> None:
    with pytest.raises(VerdictError, match="verdict object is not valid JSON"):
        extract_verdict("I decide {'verdict': 'advance', reason: ok}")


def test_a_later_malformed_verdict_beats_an_earlier_good_one() -> None:
    text = fenced(GOOD) + '\n\nFinal answer:\n```json\n{"verdict": "fail" "reason": "x"}\n```'
    with pytest.raises(VerdictError):
        extract_verdict(text)


def test_missing_verdict() -> None:
    assert extract_verdict("") is None
    assert extract_verdict("All done, the verdict is clear.") is None
    assert (
        extract_verdict('```json\n{"result": {"verdict": "advance"}}\n```') is None
    )  # nested is not top level


def test_decide() -> None:
    assert decide(fenced(GOOD)) == GOOD
    default = decide("no block here")
    assert default["verdict"] == "advance" and "verdict" in default["defaulted"]
    with pytest.raises(VerdictError, match="requires one"):
        decide("no block here", allow_missing_decision=False)


def test_instructions_example_parses() -> None:
    text = verdict_instructions()
    assert "```json" in text
    got = extract_verdict(text)
    assert got is not None and got["verdict"] == "advance"


@pytest.mark.parametrize(
    ("message", "reset"),
    [
        ("Claude AI usage limit reached|1771390800", 1771390800.0),
        ("Claude AI usage limit reached|1771390800000", 1771390800.0),
        (
            "You've hit your usage limit. Try again in 3 days 6 hours 57 minutes.",
            1000.0 + 3 * 86400 + 6 * 3600 + 57 * 60,
        ),
        ("429 Too Many Requests. Please retry in 37.5s.", 1037.5),
        ("You've hit your usage limit. Try again at 3:28 PM.", None),
        ("Rate limit exceeded", None),
    ],
)
def test_rate_limit_from_text(message: str, reset: float | None) -> None:
    got = rate_limit_from_text(message, now=1000.0)
    assert got is not None and got.reset_at == (pytest.approx(reset) if reset else None)


def test_not_a_rate_limit() -> None:
    assert rate_limit_from_text("Invalid API key", now=0) is None
    assert looks_retryable("API Error: 529 Overloaded") and looks_retryable(
        "HTTP 503 Service Unavailable"
    )
    assert not looks_retryable("Invalid API key")


def test_contract_accepts_defaulted_fields_unless_it_needs_more() -> None:
    """Issue 14: a block without confidence/risk is accepted, unless the phase's contract asks for more."""
    from animus.workflow.agent_phase import apply_contract
    from animus.workflow.model import DecisionContract, Risk

    raw = {k: v for k, v in GOOD.items() if k not in ("confidence", "risk")}
    decided = extract_verdict(fenced(raw))
    assert decided is not None
    kept = apply_contract(dict(decided), DecisionContract())  # defaults: min 0.6, max medium
    assert kept["verdict"] == "advance"
    strict = apply_contract(dict(decided), DecisionContract(min_confidence=0.9))
    assert strict["verdict"] == "rework"
    assert strict["reason"] == "decision rejected by contract: no confidence given (default 0.8) < 0.9"
    low = apply_contract(dict(decided), DecisionContract(max_risk=Risk.LOW))
    assert low["reason"] == "decision rejected by contract: no risk given (default medium) above low"
    given = apply_contract(dict(GOOD, confidence=0.5), DecisionContract())
    assert given["reason"] == "decision rejected by contract: confidence 0.5 < 0.6"
