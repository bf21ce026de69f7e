"""The bus event envelope (schema v1) and its validation.

An event is a plain dict, as it travels as a msgpack map:
``v, ts, seq, src, cat, level, kind, workflow_id, run_id, phase, data``.
``seq`` is per publisher (``src`` names one process instance), so any
subscriber can see a gap. The topic frame is ``cat``, so SUB prefix filters
select categories.
"""

from __future__ import annotations

from typing import Any

__all__ = ["WATERMARK_KIND", "VERSION", "LEVELS", "make_event", "validate_event", "level_at_least"]

WATERMARK_KIND = "bus_watermark"  # the broker's per-publisher last seq (animus.bus.broker)

VERSION = 1
LEVELS = ("debug", "info", "warn", "error")
_RANK = {name: i for i, name in enumerate(LEVELS)}
_RANK["warning"] = 2
_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "v": int, "ts": (int, float), "seq": int, "src": str, "cat": str, "level": str, "kind": str,
}
# Beyond these a field is a publisher bug, not an event: the log line, the
# metric label and the terminal line would all be unreadable.
_MAX_TEXT = {"src": 256, "cat": 64, "kind": 128}
_MAX_TS = 1e11  # year 5138; also keeps time.gmtime from overflowing
_NUMBER = (int, float)


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
    """Return the event if it has the v1 shape, else raise ValueError(reason).

    Written for the hot path (the log writer and every subscriber call it per
    event): one pass of exact type checks, the reasons worked out only on
    failure.
    """
    if type(obj) is not dict:
        raise ValueError(f"event is a {type(obj).__name__}, not a map")
    try:
        v, ts, seq, level = obj["v"], obj["ts"], obj["seq"], obj["level"]
        src, cat, kind = obj["src"], obj["cat"], obj["kind"]
    except KeyError:
        raise ValueError(_wrong_field(obj)) from None
    if (type(v) is not int or type(seq) is not int or type(ts) not in _NUMBER
            or type(level) is not str or type(src) is not str or type(cat) is not str
            or type(kind) is not str):
        raise ValueError(_wrong_field(obj))
    if v != VERSION:
        raise ValueError(f"unsupported event version {v}")
    if level not in _RANK:
        raise ValueError(f"unknown level {level!r}")
    if not 0 <= ts < _MAX_TS:  # also false for NaN
        raise ValueError("field 'ts' is not a plausible epoch time")
    if seq < 0:
        raise ValueError("field 'seq' is negative")
    if not (0 < len(src) <= _MAX_TEXT["src"] and 0 < len(cat) <= _MAX_TEXT["cat"]
            and 0 < len(kind) <= _MAX_TEXT["kind"]):
        key = next(k for k, n in _MAX_TEXT.items() if not 0 < len(obj[k]) <= n)
        raise ValueError(f"field {key!r} is empty or longer than {_MAX_TEXT[key]} characters")
    if "data" in obj and type(obj["data"]) is not dict:
        raise ValueError("field 'data' is not a map")
    return obj


def _wrong_field(obj: dict[str, Any]) -> str:
    for key, typ in _REQUIRED.items():
        value = obj.get(key)
        if not isinstance(value, typ) or isinstance(value, bool):
            return f"field {key!r} missing or of the wrong type"
    return "a field has a subclassed type"


def level_at_least(level: str, minimum: str) -> bool:
    return _RANK.get(level, 0) >= _RANK.get(minimum, 0)
