"""Read a phase decision (the universal verdict envelope) out of an agent's last message.

Agents are asked (``verdict_instructions()``) to end with a fenced ```json
block holding ``{verdict, reason, confidence, risk, evidence[]}``. Models
drift: they also write bare JSON in prose, repeat a draft verdict before the
real one, or wrap evidence in strings. So the rule is simple and stated once:
the **last** JSON object that carries a top-level ``verdict`` key wins, wherever
it sits in the text. A verdict that is present but malformed is an error with a
one-line reason (the runner turns it into a rework prompt); a missing one is
``advance`` only when the phase allows a missing decision (spec §B.5, G.3).

``confidence`` and ``risk`` may be left out: they default to
``DEFAULT_CONFIDENCE`` (0.8) and ``DEFAULT_RISK`` (medium), which pass the
default decision contract, and the decision lists them under ``defaulted``.
A phase whose ``decision_contract`` is stricter than those defaults
(``min_confidence`` above 0.8, ``max_risk: low``) needs them given: the
workflow side sends such a decision back for rework, saying which is missing.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = [
    "DEFAULT_CONFIDENCE",
    "DEFAULT_RISK",
    "RISKS",
    "VERDICTS",
    "VerdictError",
    "decide",
    "extract_verdict",
    "verdict_instructions",
]

VERDICTS = ("advance", "rework", "skip", "fail")
RISKS = ("low", "medium", "high")
DEFAULT_CONFIDENCE = 0.8
DEFAULT_RISK = "medium"

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_-]*)[ \t]*\n(.*?)```", re.DOTALL)
_VERDICT_KEY = re.compile(r"\{[^{}]*?[\"']verdict[\"']\s*:", re.DOTALL)
_DECODER = json.JSONDecoder()


class VerdictError(ValueError):
    """A verdict block was found but cannot be used; ``str()`` is one line."""


def _objects(text: str) -> list[tuple[int, int, Any]]:
    """Every JSON object in ``text`` as (start, end, value), outermost only, in order."""
    found: list[tuple[int, int, Any]] = []
    pos = text.find("{")
    while pos != -1:
        try:
            value, end = _DECODER.raw_decode(text, pos)
        except ValueError:
            pos = text.find("{", pos + 1)
            continue
        found.append((pos, end, value))
        pos = text.find("{", end)
    return found


def _malformed_candidates(text: str, parsed: list[tuple[int, int, Any]]) -> list[tuple[int, str]]:
    """Places that look like a verdict object but did not parse as JSON, with why."""
    covered = [(s, e) for s, e, _ in parsed]
    fences = list(_FENCE.finditer(text))

    def inside_parsed(i: int) -> bool:
        return any(s <= i < e for s, e in covered)

    out: list[tuple[int, str]] = []
    for m in fences:
        body = m.group(2)
        brace = body.find("{")
        if "verdict" not in body or brace == -1 or inside_parsed(m.start(2) + brace):
            continue
        try:
            json.loads(body)
        except json.JSONDecodeError as exc:
            out.append(
                (m.start(2), f"verdict block is not valid JSON ({exc.msg} at line {exc.lineno})")
            )
    for m in _VERDICT_KEY.finditer(text):
        in_fence = any(f.start(2) <= m.start() < f.end(2) for f in fences)
        if not in_fence and not inside_parsed(m.start()):
            out.append((m.start(), "verdict object is not valid JSON"))
    return out


def _fail(message: str) -> VerdictError:
    return VerdictError(" ".join(message.split()))


def _validate(raw: dict[str, Any]) -> dict[str, Any]:
    out = dict(raw)
    verdict = raw.get("verdict")
    if not isinstance(verdict, str) or verdict.strip().lower() not in VERDICTS:
        raise _fail(f"verdict must be one of {'|'.join(VERDICTS)}, got {verdict!r}")
    out["verdict"] = verdict.strip().lower()

    reason = raw.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise _fail("verdict needs a non-empty 'reason' string")

    defaulted = [key for key in ("confidence", "risk") if raw.get(key) is None]
    if defaulted:
        out["defaulted"] = defaulted
    confidence = raw.get("confidence", DEFAULT_CONFIDENCE)
    confidence = DEFAULT_CONFIDENCE if confidence is None else confidence
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)):
        raise _fail(f"confidence must be a number between 0 and 1, got {confidence!r}")
    if not 0.0 <= float(confidence) <= 1.0:
        raise _fail(f"confidence must be between 0 and 1, got {confidence}")
    out["confidence"] = float(confidence)

    risk = raw.get("risk") or DEFAULT_RISK
    if not isinstance(risk, str) or risk.strip().lower() not in RISKS:
        raise _fail(f"risk must be one of {'|'.join(RISKS)}, got {risk!r}")
    out["risk"] = risk.strip().lower()

    out["evidence"] = _evidence(raw.get("evidence", []))
    return out


def _evidence(value: Any) -> list[dict[str, Any]]:
    """Evidence is optional (G.3); plain strings are accepted as notes, models write them."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise _fail(f"evidence must be a list, got {type(value).__name__}")
    items: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            items.append({"kind": "note", "description": item})
            continue
        if not isinstance(item, dict):
            raise _fail(f"evidence[{i}] must be an object, got {type(item).__name__}")
        kind, description = item.get("kind"), item.get("description")
        if not isinstance(kind, str) or not kind.strip():
            raise _fail(f"evidence[{i}] needs a 'kind' string")
        if not isinstance(description, str):
            raise _fail(f"evidence[{i}] needs a 'description' string")
        if (
            "file_path" in item
            and item["file_path"] is not None
            and not isinstance(item["file_path"], str)
        ):
            raise _fail(f"evidence[{i}].file_path must be a string")
        items.append(dict(item))
    return items


def extract_verdict(final_text: str) -> dict[str, Any] | None:
    """The last verdict envelope in ``final_text``, validated; None when there is none.

    Raises ``VerdictError`` when the last verdict-looking object is malformed
    (bad JSON, unknown verdict, confidence out of range, ...).
    """
    if not final_text:
        return None
    parsed = _objects(final_text)
    candidates: list[tuple[int, dict[str, Any] | str]] = [
        (start, value)
        for start, _, value in parsed
        if isinstance(value, dict) and "verdict" in value
    ]
    candidates.extend(_malformed_candidates(final_text, parsed))
    if not candidates:
        return None
    _, last = max(candidates, key=lambda c: c[0])
    if isinstance(last, str):
        raise _fail(last)
    return _validate(last)


def decide(final_text: str, allow_missing_decision: bool = True) -> dict[str, Any]:
    """The phase decision: the agent's verdict, or ``advance`` when none and allowed."""
    found = extract_verdict(final_text)
    if found is not None:
        return found
    if not allow_missing_decision:
        raise VerdictError(
            "no verdict block in the agent's final message and this phase requires one"
        )
    return {
        "verdict": "advance",
        "reason": "no decision block in the final message; advancing by default",
        "confidence": 1.0,
        "risk": "low",
        "evidence": [],
        "defaulted": ["verdict", "confidence", "risk"],
    }


def verdict_instructions() -> str:
    """Text appended to every phase prompt so the agent ends with a parseable decision."""
    return (
        "When you are done, end your final message with your decision as a fenced JSON block, "
        "exactly in this shape, and nothing after it:\n"
        "```json\n"
        "{\n"
        '  "verdict": "advance",\n'
        '  "reason": "one sentence on why",\n'
        '  "confidence": 0.9,\n'
        '  "risk": "low",\n'
        '  "evidence": [{"kind": "test_result", "description": "what you checked", '
        '"file_path": "optional/path"}]\n'
        "}\n"
        "```\n"
        "verdict is one of advance (the phase's work is done), rework (the work needs another "
        "pass; say what is wrong in reason), skip (this phase does not apply) or fail (the "
        "workflow cannot continue). confidence is a number from 0 to 1; risk is low, medium "
        "or high. If you write several decision blocks, only the last one counts."
    )
