"""Test helpers that ship with the package (as structlog.testing does).

One way to wait: ``wait_until(predicate, timeout)`` polls a real condition
with a deadline and fails loudly with what it was waiting for. A predicate
may raise while the thing it reads is coming up (a socket not bound yet, a
file not written yet): that counts as "not yet". An ``AssertionError``
does not: a predicate that asserts has found a wrong answer, and waiting
longer would only hide it.

One way to check what the daemon did: ``EventRecorder`` follows the bus's
capture lane (``<state_root>/logs/events.jsonl``, every bus event in the
order the log writer took them, nothing dropped), and
``check_sequence_matches`` compares a list of event kinds with an expected
sequence in which a set means "these, in any order" (trio's sequencer).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["wait_until", "FakeClock", "WaitTimeout", "EventRecorder", "check_sequence_matches"]

T = TypeVar("T")


class WaitTimeout(AssertionError):
    pass


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 5.0,
    interval: float = 0.01,
    what: str = "condition",
) -> T:
    """Return the first truthy value of ``predicate()`` before ``timeout`` seconds.

    An ``AssertionError`` raised by the predicate propagates at once; any
    other exception means "not yet" and is named in the timeout message.
    Polls every ``interval`` seconds at first, then less often (up to every
    0.1 s, or ``interval`` if longer): a long wait must not eat the CPU that
    the thing waited for needs, on a machine running many tests at once.
    """
    deadline = time.monotonic() + timeout
    delay, slowest = interval, max(interval, 0.1)
    last_error: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except AssertionError:
            raise
        except Exception as exc:  # a predicate may race with a process coming up
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise WaitTimeout(f"timed out after {timeout}s waiting for {what}{detail}")
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 1.5, slowest)


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def check_sequence_matches(seq: Sequence[Any], template: Sequence[Any]) -> None:
    """Assert that ``seq`` is exactly ``template``, where a set in the template
    stands for its members in any order: ``[a, {b, c}, d]`` matches
    ``[a, c, b, d]`` and ``[a, b, c, d]``, not ``[a, b, d, c]``."""
    i = 0
    for j, expected in enumerate(template):
        group = expected if isinstance(expected, (set, frozenset)) else {expected}
        got = list(seq[i:i + len(group)])
        if len(got) < len(group) or set(got) != group or len(set(got)) != len(got):
            raise AssertionError(f"sequence {list(seq)!r} does not match {list(template)!r}: "
                                 f"item {j} expected {_show(expected)}, got {got!r} at position {i}")
        i += len(group)
    if i != len(seq):
        raise AssertionError(f"sequence {list(seq)!r} does not match {list(template)!r}: "
                             f"{list(seq[i:])!r} left over at position {i}")


def _show(expected: Any) -> str:
    if isinstance(expected, (set, frozenset)):
        return "{" + ", ".join(sorted(map(repr, expected))) + "} in any order"
    return repr(expected)


class EventRecorder:
    """Every bus event of one daemon, read from its capture lane as it grows.

    ``poll()`` reads what was appended since the last call (a torn last line
    waits for its end); ``of``/``kinds`` filter what was recorded by kind and
    by fields of the envelope (``workflow_id=…``, ``cat=…``) or of its
    ``data`` (anything else); ``wait_for`` waits, with a deadline, for a
    matching event.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.partial = b""
        self.events: list[dict[str, Any]] = []

    @classmethod
    def of_state_root(cls, state_root: Path | str) -> EventRecorder:
        return cls(Path(state_root) / "logs" / "events.jsonl")

    def poll(self) -> list[dict[str, Any]]:
        """The events appended since the last poll (also kept in ``events``)."""
        try:
            with self.path.open("rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        *lines, self.partial = (self.partial + data).split(b"\n")
        new = [json.loads(line) for line in lines if line.strip()]
        self.events.extend(new)
        return new

    def select(self, kinds: Iterable[str] | None = None, **match: Any) -> list[dict[str, Any]]:
        """Whole events (envelopes), in order, of these kinds and matching ``match``."""
        self.poll()
        wanted = None if kinds is None else set(kinds)
        return [e for e in self.events if (wanted is None or e["kind"] in wanted) and _matches(e, match)]

    def of(self, kind: str, **match: Any) -> list[dict[str, Any]]:
        """The ``data`` of each recorded ``kind`` event matching ``match``."""
        return [e.get("data") or {} for e in self.select([kind], **match)]

    def kinds(self, kinds: Iterable[str] | None = None, **match: Any) -> list[str]:
        """The kinds of the matching events, in order (for ``check_sequence_matches``)."""
        return [e["kind"] for e in self.select(kinds, **match)]

    def wait_for(self, kind: str, timeout: float = 10.0, count: int = 1, **match: Any) -> list[dict[str, Any]]:
        """Wait until ``count`` matching ``kind`` events were recorded; return their data."""
        def enough() -> list[dict[str, Any]]:
            found = self.of(kind, **match)
            return found if len(found) >= count else []

        return wait_until(enough, timeout, what=f"{count} {kind} event(s) matching {match}")


_ENVELOPE = frozenset({"v", "ts", "seq", "src", "cat", "level", "kind", "workflow_id", "run_id", "phase"})


def _matches(event: dict[str, Any], match: dict[str, Any]) -> bool:
    data = event.get("data") or {}
    for key, value in match.items():
        if key in _ENVELOPE:
            if event.get(key) != value:  # the log drops an envelope field that is None
                return False
        elif not isinstance(data, dict) or data.get(key) != value:
            return False
    return True
