"""The shape of the package holds: no import cycles, layers import downwards, modules stay short.

Imports are read from the source (``ast``), every kind counted: module level,
inside functions, and under ``TYPE_CHECKING`` (a type import is a design
dependency too). The layers are docs/architecture.md's, lowest first.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "animus"
MAX_LINES = 400

# lowest first; a module may import its own layer and those below it
LAYERS: tuple[tuple[str, ...], ...] = (
    ("animus", "animus.errors", "animus.tasks", "animus.redact", "animus.logs", "animus.state", "animus.process",
     "animus.git"),
    ("animus.bus",),
    ("animus.plugin_runtime",),
    ("animus.supervision",),
    ("animus.workflow",),
    ("animus.daemon", "animus.plugins", "animus.mcp", "animus.cli", "animus.testing", "animus.testing_worker"),
)


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    def owner(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package
                    for _ in range(node.level - 1):
                        anchor = anchor.rpartition(".")[0]
                    base = f"{anchor}.{base}" if base else anchor
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            for name in names:
                target = owner(name) if name.startswith("animus") else None
                if target and target != mod:
                    graph[mod].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def layer(mod: str) -> int:
    best, depth = -1, -1
    for level, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            inside = mod == prefix or (prefix != "animus" and mod.startswith(prefix + "."))
            if inside and prefix.count(".") > depth:
                best, depth = level, prefix.count(".")
    assert best >= 0, f"{mod} belongs to no layer: add its package to LAYERS and docs/architecture.md"
    return best


def test_no_import_cycle_between_modules() -> None:
    assert cycles(imports(modules())) == []


def test_layers_import_only_downwards() -> None:
    upward = sorted(f"{m} -> {d}" for m, deps in imports(modules()).items() for d in deps if layer(d) > layer(m))
    assert upward == []


def test_no_module_over_400_lines() -> None:
    long = {m: n for m, p in modules().items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_the_checker_sees_a_cycle_and_an_upward_import() -> None:
    graph = {"animus.bus.a": {"animus.workflow.b"}, "animus.workflow.b": {"animus.bus.a"}}
    assert cycles(graph) == [["animus.bus.a", "animus.workflow.b"]]
    assert layer("animus.bus.a") < layer("animus.workflow.b")
