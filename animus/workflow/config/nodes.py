"""The node layer of the YAML loader: typed values read from PyYAML's node tree.

Lines come from ``yaml.compose``'s nodes, which keep the marks that
``safe_load`` throws away, so every error is one ``InvalidInput`` line naming
``file:line`` and the field path: an operator fixing YAML needs to know where.
``NodeReader`` has the generic reads (mappings with known keys, strings, ids,
numbers, choices, lists); ``sections`` builds the workflow model with them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Sequence
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from animus.errors import InvalidInput
from animus.git.spec import SpecError

__all__ = ["ID", "MAX_PHASES", "MAX_VALUES", "NONE", "NodeReader", "absent", "cron_ok", "hint", "line_of",
           "one_line", "show"]

E = TypeVar("E", bound=StrEnum)
T = TypeVar("T")
_NULL, _STR = "tag:yaml.org,2002:null", "tag:yaml.org,2002:str"
ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:/@+-]*$")


def line_of(node: Node) -> int:
    return int(node.start_mark.line) + 1


def absent(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _NULL


def one_line(text: str, limit: int = 400) -> str:
    """Messages are one line: control characters are escaped, long text is cut."""
    flat = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in text)
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def show(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node.tag == _NULL:
        return "null"
    text = one_line(str(node.value), 60)
    return f"'{text}'" if node.tag == _STR else text


def hint(word: str, choices: Collection[str]) -> str:
    import difflib  # only when a name is wrong

    found = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean '{found[0]}'?)" if found else ""


MAX_PHASES = 1000
MAX_VALUES = 100_000  # YAML aliases can expand exponentially ("billion laughs")


def jsonable(value: Any, budget: list[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise ValueError(f"expands to more than {MAX_VALUES} values (aliases?)")
    if isinstance(value, dict):
        return {str(k): jsonable(v, budget) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v, budget) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("numbers must be finite")
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise ValueError(f"unsupported value of type {type(value).__name__}")


def cron_ok(expr: str) -> bool:
    expr = expr.strip()
    if not (expr.startswith("@") or len(expr.split()) == 5):
        return False
    try:
        from croniter import croniter  # imported here: runners read compiled config without it

        return bool(croniter.is_valid(expr))
    except Exception:  # noqa: BLE001 - croniter raises assorted types; all mean "invalid"
        return False


NONE: frozenset[str] = frozenset()
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


def _node_at(node: Node, rest: str) -> Node:
    """The node at ``rest`` (``.a.b[2]``) below ``node``; for a block, its key (the block's line)."""
    steps = _STEP.findall(rest)
    for n, (key, index) in enumerate(steps):
        if key and isinstance(node, MappingNode):
            pair = next(((k, v) for k, v in node.value if isinstance(k, ScalarNode) and k.value == key), None)
            if pair is None:
                return node
            last = n == len(steps) - 1
            node = pair[0] if last and not isinstance(pair[1], ScalarNode) else pair[1]
        elif index and isinstance(node, SequenceNode) and int(index) < len(node.value):
            node = node.value[int(index)]
        else:
            return node
    return node


class NodeReader:
    """Reads one file's node tree: typed values, each error located at file:line."""

    def __init__(self, src: str, root: Path | None) -> None:
        self.src, self.root = src, root
        self.locs: dict[str, tuple[str, int]] = {}  # where each cross-checked field was written
        self._ctor = SafeConstructor()
        self._key_line: dict[int, int] = {}  # id(value node) -> line of its key

    def err(self, at: Node | int, path: str, msg: str, fix: str | None = None) -> InvalidInput:
        if isinstance(at, int):
            line = at
        else:  # a block mapping or list starts a line below its key; point at the key
            line = self._key_line.get(id(at), line_of(at))
            line = line_of(at) if isinstance(at, ScalarNode) else line
        where = f"{path}: " if path else ""
        return InvalidInput(one_line(f"{self.src}:{line}: {where}{msg}"), fix=fix,
                            details={"file": self.src, "line": line, "field": path})

    def note(self, path: str, node: Node) -> None:
        self.locs[path] = (self.src, line_of(node))

    def items(self, node: Node, path: str) -> list[tuple[str, Node, Node]]:
        if absent(node):
            return []
        if not isinstance(node, MappingNode):
            raise self.err(node, path, f"expected a mapping, got {show(node)}",
                           fix="write key: value pairs here, indented under the parent key")
        self._ctor.flatten_mapping(node)  # resolve '<<' merge keys in place
        seen: set[str] = set()
        out: list[tuple[str, Node, Node]] = []
        for k, v in node.value:
            if not isinstance(k, ScalarNode):
                raise self.err(k, path, "keys must be plain strings",
                               fix="use a plain name such as build or review as the key")
            key = str(k.value)
            if key in seen:
                raise self.err(k, f"{path}.{key}".lstrip("."), "duplicate key in this file",
                               fix="keep one definition (later files may override earlier ones)")
            seen.add(key)
            self._key_line[id(v)] = line_of(k)
            out.append((key, k, v))
        return out

    def fields(self, node: Node, path: str, allowed: Collection[str],
               ignored: Collection[str] = NONE, required: Sequence[str] = ()) -> dict[str, Node]:
        out: dict[str, Node] = {}
        for key, k, v in self.items(node, path):
            if key not in allowed and key not in ignored:
                raise self.err(k, f"{path}.{key}".lstrip("."),
                               "unknown key" + hint(key, [*allowed, *ignored]),
                               fix="known keys here: " + ", ".join(sorted(allowed)))
            if key in allowed and not absent(v):  # null means "not given"
                out[key] = v
        for name in required:
            if name not in out:
                raise self.err(node, path, f"missing required key '{name}'",
                               fix=f"add {name}: <value> here")
        return out

    def opt(self, f: dict[str, Node], key: str, path: str,
            parse: Callable[[Node, str], T], default: T) -> T:
        return parse(f[key], f"{path}.{key}") if key in f else default

    def alias(self, f: dict[str, Node], path: str, a: str, b: str) -> Node | None:
        if a in f and b in f:
            raise self.err(f[b], f"{path}.{b}", f"give {a} or {b}, not both",
                           fix=f"{b} is another name for {a}; keep one")
        return f[a] if a in f else f.get(b)

    def build(self, at: Node | int, path: str, factory: Callable[..., T], **kwargs: Any) -> T:
        try:
            return factory(**kwargs)
        except InvalidInput as exc:  # the model's own combination checks, now located
            raise self.err(at, path, exc.message, exc.fix) from None

    # scalars ---------------------------------------------------------------

    def text(self, node: Node, path: str) -> str:
        if not isinstance(node, ScalarNode) or absent(node):
            raise self.err(node, path, f"expected a string, got {show(node)}",
                           fix="write a single value here; quote it if it contains : or #")
        return str(node.value)

    def ident(self, node: Node, path: str, what: str = "an id") -> str:
        value = self.text(node, path)
        if not ID.match(value):
            raise self.err(node, path, f"expected {what}, got {show(node)}",
                           fix="ids use letters, digits and _ . : / - (no spaces)")
        return value

    def _scalar(self, node: Node) -> Any:
        if not isinstance(node, ScalarNode):
            return None
        return self._ctor.construct_object(node, deep=True)

    def integer(self, node: Node, path: str, minimum: int = 1) -> int:
        value = self._scalar(node)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            kind = {1: "a positive integer", 0: "a non-negative integer"}.get(minimum, "an integer")
            raise self.err(node, path, f"expected {kind}, got {show(node)}",
                           fix="write a whole number without quotes"
                               + (", 1 or more" if minimum == 1 else ""))
        return value

    def number(self, node: Node, path: str, lo: float, hi: float = math.inf) -> float:
        value = self._scalar(node)
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not math.isfinite(value) or not lo <= value <= hi):
            span = f"between {lo:g} and {hi:g}" if math.isfinite(hi) else f">= {lo:g}"
            raise self.err(node, path, f"expected a number {span}, got {show(node)}",
                           fix=f"write a plain number {span}, without quotes")
        return float(value)

    def boolean(self, node: Node, path: str) -> bool:
        value = self._scalar(node)
        if not isinstance(value, bool):
            raise self.err(node, path, f"expected true or false, got {show(node)}",
                           fix="write true or false, without quotes")
        return value

    def choice(self, node: Node, path: str, enum: type[E]) -> E:
        value = self.text(node, path)
        names = [e.value for e in enum]
        if value not in names:
            raise self.err(node, path, f"expected one of {', '.join(names)}, got {show(node)}"
                           + hint(value, names), fix=f"use one of: {', '.join(names)}")
        return enum(value)

    def seq(self, node: Node, path: str, single_ok: bool = False) -> list[Node]:
        if single_ok and isinstance(node, ScalarNode) and not absent(node):
            return [node]
        if not isinstance(node, SequenceNode):
            raise self.err(node, path, f"expected a list, got {show(node)}",
                           fix="write a list: [a, b] or one '- item' per line")
        return list(node.value)

    def texts(self, node: Node, path: str) -> tuple[str, ...]:
        return tuple(self.text(n, f"{path}[{i}]") for i, n in enumerate(self.seq(node, path)))

    def value(self, node: Node, path: str) -> Any:
        """Any node (a scalar, a list, a mapping) as JSON-ready data."""
        try:
            return jsonable(self._ctor.construct_object(node, deep=True), [MAX_VALUES])
        except ValueError as exc:
            raise self.err(node, path, str(exc),
                           fix="use plain strings, numbers, booleans, lists and mappings") from None

    def spec(self, node: Node, path: str, parse: Callable[[Any, str], T]) -> T:
        """A value read by one of ``animus.git.spec``'s parsers; its error points at the field it names."""
        try:
            return parse(self.value(node, path), path)
        except SpecError as exc:
            raise self.err(_node_at(node, exc.where[len(path):]), exc.where, exc.reason, exc.fix) from None

    def plain(self, node: Node, path: str) -> dict[str, Any]:
        """A free-form mapping (daemon settings, schedule input) as JSON-ready data."""
        if not isinstance(node, MappingNode):
            raise self.err(node, path, f"expected a mapping, got {show(node)}",
                           fix="write key: value pairs here")
        try:
            return dict(jsonable(self._ctor.construct_object(node, deep=True), [MAX_VALUES]))
        except ValueError as exc:
            raise self.err(node, path, str(exc),
                           fix="use plain strings, numbers, booleans, lists and mappings") from None
