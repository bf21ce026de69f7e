"""Ignore globs for file changes, matched against paths relative to the project root.

- A pattern without ``/`` matches any single path component at any depth
  (``*.tmp`` ignores ``src/a.tmp``; ``node_modules`` ignores everything
  under any ``node_modules`` folder), as in ``.gitignore``.
- A pattern with ``/`` is anchored at the project root; ``**`` spans any
  number of folders (``build/**``, ``docs/**/*.png``), ``*`` and ``?``
  stay within one component, ``[…]`` is a character class.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable

__all__ = ["compile_globs"]


def _anchored(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    pattern = pattern.strip("/")
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append(r"(?:[^/]+/)*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(r".*")
            i += 2
        elif pattern[i] == "*":
            out.append(r"[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append(r"[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape("["))
                i += 1
            else:
                body = pattern[i + 1:end].replace("\\", "\\\\")
                out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
                i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"(?:/.*)?\Z")


def compile_globs(patterns: Iterable[str]) -> Callable[[str], bool]:
    """A predicate: is this relative path ignored by any of ``patterns``?"""
    anchored = [_anchored(p) for p in patterns if "/" in p.strip("/")]
    loose = [p.strip("/") for p in patterns if "/" not in p.strip("/") and p.strip("/")]

    def ignored(rel: str) -> bool:
        rel = rel.replace("\\", "/")
        rel = rel[2:] if rel.startswith("./") else rel
        parts = rel.split("/")
        if any(fnmatch.fnmatchcase(part, pat) for pat in loose for part in parts):
            return True
        return any(rx.match(rel) for rx in anchored)

    return ignored
