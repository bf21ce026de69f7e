"""YAML front matter that a person wrote, edited by a program without spoiling it.

A task file belongs to the person as much as to Animus: their key order,
comments, quoting and body must survive an Animus status change. So an edit
rewrites only the lines of the keys whose values changed, in place, keeps an
inline comment on such a line, and appends new keys at the end; every other
byte stays as it was. Dumping a fresh YAML document would lose all of that.

The textual edit is then checked: the edited front matter is parsed again
and must equal the intended mapping. If it does not (an exotic layout such
as a multi-line flow mapping), the front matter is re-dumped whole, in the
original key order: comments are lost, but the data is never wrong.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from animus.errors import InvalidInput

__all__ = ["Document", "REMOVE", "parse", "edit", "render_new"]


class _Remove:
    def __repr__(self) -> str:
        return "REMOVE"


REMOVE: Any = _Remove()  # a change that deletes the key
# libyaml's loader when present: every read of a task directory parses every file.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Document:
    """A Markdown file split into its front matter and its body, both verbatim."""

    header_lines: tuple[str, ...]  # between the delimiters, with their line endings
    body: str  # everything after the closing delimiter, untouched
    data: dict[str, Any]
    has_front_matter: bool
    newline: str

    def text(self, header_lines: tuple[str, ...] | None = None, body: str | None = None) -> str:
        lines = self.header_lines if header_lines is None else header_lines
        rest = self.body if body is None else body
        if not self.has_front_matter and header_lines is None:
            return rest
        nl = self.newline
        return f"---{nl}{''.join(lines)}---{nl}{rest}"


def parse(text: str, name: str) -> Document:
    """Split ``text``; a file without front matter is all body."""
    lines = text.splitlines(keepends=True)
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    if not lines or lines[0].rstrip("\r\n") != "---":
        return Document((), text, {}, False, newline)
    for index in range(1, len(lines)):
        if lines[index].rstrip("\r\n").rstrip() in ("---", "..."):
            header = tuple(lines[1:index])
            body = "".join(lines[index + 1 :])
            return Document(header, body, _load(header, name), True, newline)
    raise InvalidInput(f"{name}: the front matter has no closing '---' line")


def _load(header: tuple[str, ...], name: str) -> dict[str, Any]:
    try:
        data = yaml.load("".join(header), Loader=_Loader)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 2})" if where is not None else ""
        raise InvalidInput(f"{name}: the front matter is not valid YAML{line}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidInput(f"{name}: the front matter must be a mapping of keys to values")
    return data


def _render(key: str, value: Any, block: bool = False) -> str:
    """``key: value`` as YAML; a list goes in flow style (``[a, b]``) unless ``block``."""
    flow = None if isinstance(value, list) and not block else False
    return yaml.safe_dump(
        {key: value}, default_flow_style=flow, allow_unicode=True, sort_keys=False, width=1 << 30
    )


def render_new(mapping: Mapping[str, Any], newline: str = "\n") -> tuple[str, ...]:
    """Header lines for a file Animus writes whole."""
    text = "".join(_render(key, value) for key, value in mapping.items())
    return tuple(text.replace("\n", newline).splitlines(keepends=True))


def _span(lines: list[str], key: str) -> tuple[int, int] | None:
    """Line range of a top-level key: its line plus indented or ``- `` continuation lines."""
    pattern = re.compile(rf"^(['\"]?){re.escape(key)}\1\s*:(\s|$)")
    for start, line in enumerate(lines):
        if pattern.match(line):
            end = start + 1
            while (
                end < len(lines)
                and (lines[end][:1] in (" ", "\t") or lines[end].startswith("- "))
                and lines[end].strip()
            ):
                end += 1
            return start, end
    return None


def _inline_comment(line: str, key: str, old_value: Any) -> str:
    """The ``  # comment`` after a one-line value, if the value parses without it."""
    body = line.rstrip("\r\n")
    for match in re.finditer(r"\s+#", body):
        try:
            parsed = yaml.load(body[: match.start()], Loader=_Loader)
        except yaml.YAMLError:
            continue
        if isinstance(parsed, dict) and key in parsed and parsed[key] == old_value:
            return body[match.start() :]
    return ""


def edit(doc: Document, changes: Mapping[str, Any], name: str) -> tuple[str, ...]:
    """New header lines with ``changes`` applied (``REMOVE`` deletes a key)."""
    expected = dict(doc.data)
    for key, value in changes.items():
        if value is REMOVE:
            expected.pop(key, None)
        else:
            expected[key] = value
    lines = list(doc.header_lines)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += doc.newline
    for key, value in changes.items():
        span = _span(lines, key)
        if value is REMOVE:
            if span is not None:
                del lines[span[0] : span[1]]
            continue
        block = (
            span is not None and span[1] - span[0] > 1 and isinstance(value, list) and bool(value)
        )
        new = _render(key, value, block).replace("\n", doc.newline).splitlines(keepends=True)
        if span is None:
            lines.extend(new)
            continue
        if block:  # keep the person's indentation of the dashes
            indent = lines[span[0] + 1][
                : len(lines[span[0] + 1]) - len(lines[span[0] + 1].lstrip())
            ]
            new = [new[0]] + [indent + line if line.startswith("-") else line for line in new[1:]]
        elif span[1] - span[0] == 1 and len(new) == 1:
            comment = _inline_comment(lines[span[0]], key, doc.data.get(key))
            if comment:
                new = [new[0].rstrip("\r\n") + comment + doc.newline]
        lines[span[0] : span[1]] = new
    try:
        if _load(tuple(lines), name) == expected:
            return tuple(lines)
    except InvalidInput:
        pass
    return render_new(expected, doc.newline)
