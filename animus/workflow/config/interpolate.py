"""``${VAR}`` interpolation of workflow YAML, before it is parsed.

As in the original: ``${VAR}`` (required; the error names file and line),
``${VAR:-default}``, ``${VAR:?message}`` and ``$$`` for a literal ``$``. It
runs on the raw text line by line, so lines keep their numbers, and never
inside ``#`` comments (but inside block scalars, where ``#`` is text).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from animus.errors import InvalidInput

__all__ = ["interpolate"]

_REF = re.compile(r"\$(?:(?P<dollar>\$)|\{(?P<inner>[^}\n]*)\}|(?P<open>\{))")
_INNER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:-|:\?)(.*))?")
_BLOCK = re.compile(r"(?:^|[\s:\-])[|>][-+0-9]*\s*$")
_INTERP_FIX = "use ${NAME}, ${NAME:-default}, ${NAME:?message}, or $$ for a literal $"


def _comment_at(line: str) -> int:
    """Index where a ``#`` comment starts (outside quotes), or len(line)."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote and not (quote == '"' and line[i - 1] == "\\"):
                quote = ""
        elif ch in "'\"" and (i == 0 or line[i - 1] in " \t[{,:-"):
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return i
    return len(line)


def _substitute(text: str, env: Mapping[str, str], src: str, line: int) -> str:
    def one(m: re.Match[str]) -> str:
        if m.group("dollar"):
            return "$"
        inner = m.group("inner")
        parsed = None if inner is None else _INNER.fullmatch(inner)
        if parsed is None:
            what = "unterminated ${" if inner is None else f"bad variable reference ${{{inner}}}"
            raise InvalidInput(f"{src}:{line}: {what}", fix=_INTERP_FIX)
        name, op, arg = parsed.groups()
        value = env.get(name)
        if op == ":-":
            return value if value else arg
        if op == ":?" and not value:
            raise InvalidInput(f"{src}:{line}: ${{{name}}}: {arg or 'must be set'}",
                               fix=f"export {name}=<value>")
        if value is None:
            raise InvalidInput(f"{src}:{line}: ${{{name}}} is not set",
                               fix=f"export {name}=<value>, or write ${{{name}:-default}}")
        return value

    return _REF.sub(one, text)


def interpolate(text: str, env: Mapping[str, str], src: str) -> str:
    """Expand ``${VAR}``, ``${VAR:-default}``, ``${VAR:?msg}`` and ``$$``, skipping comments."""
    out: list[str] = []
    block_indent: int | None = None  # inside a block scalar (| or >), '#' is text
    for number, raw in enumerate(text.splitlines(keepends=True), 1):
        body = raw.rstrip("\r\n")
        indent = len(body) - len(body.lstrip(" "))
        if block_indent is not None and (not body.strip() or indent > block_indent):
            out.append(_substitute(raw, env, src, number))
            continue
        cut = _comment_at(body)
        block_indent = indent if _BLOCK.search(body[:cut]) else None
        out.append(_substitute(raw[:cut], env, src, number) + raw[cut:])
    return "".join(out)
