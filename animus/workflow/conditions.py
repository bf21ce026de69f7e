"""``skip_if`` expressions: a small closed grammar, evaluated without ``eval``.

Workflow files are authored by people and by agents, so a skip condition must
never execute code. The original accepts two spellings (``task_type == docs``
and ``"task.type == 'docs'"``); both parse here to the same ``Condition``::

    <field> == <value>          <field> != <value>
    <field> in [a, b, 'c d']    <field> not in [a, b]
    <field> contains <value>    <field> not contains <value>

A field is a dotted name with an optional ``task.`` prefix; ``task_type`` and
``type`` name the same thing. Values are bare words or quoted strings and are
compared as text. Anything else is rejected when the YAML is loaded, so a typo
cannot silently make a phase run (or never run).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from animus.errors import InvalidInput

__all__ = ["Condition", "evaluate", "first_match", "parse_condition"]

_TOKEN = re.compile(
    r"""\s*(?:(?P<str>'[^']*'|"[^"]*")|(?P<op>==|!=|\[|\]|,)|(?P<word>[\w.:/@+*-]+))"""
)
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_ALIASES = {"task_type": "type", "type": "task_type"}
_FIX = ("write e.g. task_type == docs, priority != p0, status in [ready, blocked] "
        "or labels contains ui")


@dataclass(frozen=True)
class Condition:
    source: str
    field: tuple[str, ...]
    op: str
    values: tuple[str, ...]

    def matches(self, task: Mapping[str, Any]) -> bool:
        actual = _lookup(task, self.field)
        if self.op in ("contains", "not contains"):
            if isinstance(actual, (list, tuple, set, frozenset)):
                found = self.values[0] in {_text(v) for v in actual}
            else:
                found = actual is not None and self.values[0] in _text(actual)
            return found if self.op == "contains" else not found
        hit = actual is not None and _text(actual) in self.values
        return hit if self.op in ("==", "in") else not hit


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _lookup(task: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    head, rest = path[0], path[1:]
    scopes = [task, task.get("custom")]
    for scope in scopes:
        if not isinstance(scope, Mapping):
            continue
        for name in (head, _ALIASES.get(head)):
            if name is not None and name in scope:
                value = scope[name]
                for part in rest:
                    value = value.get(part) if isinstance(value, Mapping) else None
                return value
    return None


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    stripped = text.rstrip()
    while pos < len(stripped):
        m = _TOKEN.match(stripped, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"unexpected {stripped[pos:].strip()[:1]!r}")
        kind = m.lastgroup or "word"
        value = m.group(kind)
        out.append((kind, value[1:-1] if kind == "str" else value))
        pos = m.end()
    return out


def _value(tok: tuple[str, str]) -> str:
    kind, value = tok
    if kind == "op":
        raise ValueError(f"expected a value, got {value!r}")
    return value


@lru_cache(maxsize=512)
def parse_condition(text: str) -> Condition:
    """Parse one ``skip_if`` expression; raise ``InvalidInput`` on anything unknown."""
    try:
        toks = _tokens(text)
        if len(toks) < 3 or toks[0][0] != "word" or not _FIELD.match(toks[0][1]):
            raise ValueError("expected <field> <operator> <value>")
        parts = tuple(toks[0][1].split("."))
        if parts[0] == "task" and len(parts) > 1:
            parts = parts[1:]
        op, rest = toks[1][1], toks[2:]
        if op == "not" and rest and rest[0][1] in ("in", "contains"):
            op, rest = f"not {rest[0][1]}", rest[1:]
        if op in ("==", "!=", "contains", "not contains"):
            if len(rest) != 1:
                raise ValueError(f"expected one value after {op!r}")
            return Condition(text, parts, op, (_value(rest[0]),))
        if op in ("in", "not in"):
            if len(rest) < 2 or rest[0] != ("op", "[") or rest[-1] != ("op", "]"):
                raise ValueError(f"expected a list like [a, b] after {op!r}")
            inner = rest[1:-1]
            values = tuple(_value(t) for t in inner[0::2])
            if not values or any(t != ("op", ",") for t in inner[1::2]) or len(inner) % 2 == 0:
                raise ValueError("expected a comma-separated list of values")
            return Condition(text, parts, op, values)
        raise ValueError(f"unknown operator {op!r}")
    except ValueError as exc:
        raise InvalidInput(f"cannot parse skip_if expression {text!r}: {exc}", fix=_FIX) from None


def evaluate(text: str, task: Mapping[str, Any]) -> bool:
    return parse_condition(text).matches(task)


def first_match(expressions: Iterable[str], task: Mapping[str, Any]) -> str | None:
    """The first expression that holds for ``task`` (skip_if is an OR), or None."""
    return next((e for e in expressions if evaluate(e, task)), None)
