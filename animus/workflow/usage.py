"""Token usage and cost: the one way to add them up (phase, workflow, task)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["USAGE_KEYS", "add_usage", "sum_usage"]

USAGE_KEYS = ("input_tokens", "output_tokens", "cost_usd")


def add_usage(total: Mapping[str, Any], usage: Mapping[str, Any]) -> dict[str, Any]:
    """``total`` plus ``usage``, key by key; keys that are not numbers are left alone."""
    out = dict(total)
    for key in USAGE_KEYS:
        if isinstance(usage.get(key), (int, float)):
            out[key] = round(out.get(key, 0) + usage[key], 6)
    return out


def sum_usage(items: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {}
    for usage in items:
        total = add_usage(total, usage)
    return total
