"""Comments on a subject, kept through the subject backends' own ``update``.

Why this shape: the backends (SQLite, Markdown files, Linear) share one
surface — list, get, create, update, status, next — and no comment verb. A
comment is therefore one key of the subject's ``custom`` map,
``comment.<RFC 3339 time>.<4 hex>`` → ``{author, body}``, written with
``update(fields={"custom": {key: {...}}})``. The stores merge ``custom`` key
by key inside their own write (an SQLite transaction; the Markdown store's
re-check under its directory lock, which refuses a concurrent edit with a
conflict rather than losing it), so two agents commenting at once both keep
their comment; a list under one key would be read-modify-write and could
lose one. Keys sort by time, so ``comments_of`` is the thread in order, and
a person editing the Markdown file sees each comment in the front matter.

A backend without ``custom`` (Linear issues) refuses with its own one-line
error; Linear's own comments are not reached through Animus yet.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

__all__ = ["PREFIX", "MAX_BODY", "comment_fields", "comments_of"]

PREFIX = "comment."
MAX_BODY = 20_000  # a comment is a note, not a log: keeps a Markdown task file readable


def comment_fields(body: str, author: str, now_stamp: str | None = None) -> tuple[str, dict[str, Any]]:
    """The ``custom`` key of a new comment and the update ``fields`` that add it."""
    # the subjects' own timestamp form (RFC 3339, UTC, microseconds, Z): sorts as text
    stamp = now_stamp or datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    key = f"{PREFIX}{stamp}.{secrets.token_hex(2)}"
    return key, {"custom": {key: {"author": author, "body": body}}}


def comments_of(subject: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A subject's comments, oldest first: ``{id, at, author, body}``."""
    custom = subject.get("custom") or {}
    out = []
    for key in sorted(k for k in custom if isinstance(k, str) and k.startswith(PREFIX)):
        value = custom[key]
        if not isinstance(value, Mapping):
            continue
        at = key[len(PREFIX):].rsplit(".", 1)[0]
        out.append({"id": key, "at": at, "author": value.get("author"), "body": value.get("body")})
    return out
