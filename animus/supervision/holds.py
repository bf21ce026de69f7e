"""Child supervisors that need others up first start at once, held, and go when those are up.

The tree says which child supervisor needs which started first
(``TreeSpec.start_after``: the workflows one needs providers and subjects).
Rather than spawn it only after them, the root spawns every child supervisor
at once; one whose needs are not yet settled is told to *hold*: it forks,
imports, connects and prepares, says ``held``, and starts its children and
service only on the root's ``go``. So its own start-up cost runs alongside
the others' instead of after them. A need is settled once its start attempt
is over, whatever came of it (running, failed and restarting, disabled), as
an ordered start would have gone on after it too.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from animus.supervision.supervisor import ChildState, Supervisor

__all__ = ["StartHolds"]

Tell = Callable[[str, dict[str, Any]], Coroutine[Any, Any, bool]]


class StartHolds:
    def __init__(self, after: Mapping[str, Sequence[str]], tell: Tell,
                 spawn: Callable[[Coroutine[Any, Any, Any]], Any]) -> None:
        self.after = after
        self.tell = tell
        self.spawn = spawn
        self.sup: Supervisor | None = None
        self.holding: set[str] = set()  # spawned held, not yet told to go
        self.prepared: dict[str, int] = {}  # held and said so: name -> pid

    def _unsettled(self, name: str) -> list[str]:
        assert self.sup is not None
        out = []
        for need in self.after.get(name, ()):
            rec = self.sup.children.get(need)
            if rec is not None and (rec.state is ChildState.STARTING or (rec.state is ChildState.STOPPED
                                                                        and rec.proc is None)):
                out.append(need)
        return out

    def hold(self, name: str) -> bool:
        """Whether ``name``, about to be spawned, must wait for the root's word."""
        self.prepared.pop(name, None)
        if self.sup is None or not self._unsettled(name):
            self.holding.discard(name)
            return False
        self.holding.add(name)
        return True

    def held(self, name: str, pid: int) -> None:
        """``name`` is prepared (it said ``held``)."""
        if name in self.holding:
            self.prepared[name] = pid
            self.release()

    def release(self) -> None:
        """Tell every prepared child whose needs are settled to go (called on every change)."""
        for name in [n for n in self.holding if n in self.prepared and not self._unsettled(n)]:
            self.holding.discard(name)
            rec = self.sup.children.get(name) if self.sup is not None else None
            if rec is not None and rec.proc is not None and rec.proc.pid == self.prepared.pop(name):
                self.spawn(self.tell(name, {"type": "go"}))
