"""The bus event envelope (schema v1) and its validation.

An event is a plain dict, as it travels as a msgpack map:
``v, ts, seq, src, cat, level, kind, workflow_id, run_id, phase, data``.
``seq`` is per publisher (``src`` names one process instance), so any
subscriber can see a gap. The topic frame is ``cat``, so SUB prefix filters
select categories.
"""

from __future__ import annotations

from typing import Any

__all__ = ["VERSION", "LEVELS", "make_event", "validate_event", "level_at_least"]

VERSION = 1
LEVELS = ("debug", "info", "warn", "error")
_RANK = {name: i for i, name in enumerate(LEVELS)}
_RANK["warning"] = 2
_REQUIRED = {"v": int, "ts": (int, float), "seq": int, "src": str, "cat": str, "level": str, "kind": str}


def make_event(
    src: str,
    seq: int,
    ts: float,
    cat: str,
    kind: str,
    level: str = "info",
    data: dict[str, Any] | None = None,
    workflow_id: str | None = None,
    run_id: str | None = None,
    phase: str | None = None,
) -> dict[str, Any]:
    return {
        "v": VERSION,
        "ts": ts,
        "seq": seq,
        "src": src,
        "cat": cat,
        "level": level,
        "kind": kind,
        "workflow_id": workflow_id,
        "run_id": run_id,
        "phase": phase,
        "data": data or {},
    }


def validate_event(obj: Any) -> dict[str, Any]:
    """Return the event if it has the v1 shape, else raise ValueError(reason)."""
    if not isinstance(obj, dict):
        raise ValueError(f"event is a {type(obj).__name__}, not a map")
    for key, typ in _REQUIRED.items():
        if not isinstance(obj.get(key), typ):
            raise ValueError(f"field {key!r} missing or of the wrong type")
    if obj["v"] != VERSION:
        raise ValueError(f"unsupported event version {obj['v']}")
    if obj["level"] not in _RANK:
        raise ValueError(f"unknown level {obj['level']!r}")
    if not isinstance(obj.get("data", {}), dict):
        raise ValueError("field 'data' is not a map")
    return obj


def level_at_least(level: str, minimum: str) -> bool:
    return _RANK.get(level, 0) >= _RANK.get(minimum, 0)
