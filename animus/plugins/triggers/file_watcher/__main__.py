"""``file-watcher`` trigger plugin: debounced file changes start workflows.

Each enabled ``type: file_watcher`` trigger names ``config.paths`` (relative
to the project root, or absolute), ``config.debounce_secs`` (quiet period
before the changes so far become one event; 5 s by default, as in the
original) and ``config.ignore`` (globs, see ``triggers.globs``; ``.git``
and ``__pycache__`` are always ignored). One OS-level watch (watchfiles:
inotify on Linux) covers the union of the paths; each change goes to every
trigger whose paths contain it and whose globs do not ignore it, into that
trigger's ``Debouncer``. A due batch is sent as ``trigger/event`` with
payload ``{changes: [{path, change}], count, truncated}``.

The watch is rebuilt when the compiled config changes and, while some path
does not exist yet, every few seconds (the missing paths are named in
health). ``file_watcher/status`` says what is watched and whether the watch
is live. SIGTERM: the watch loop wakes within 0.1 s and ends.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import watchfiles

from animus.plugins.triggers.base import TriggerPlugin
from animus.plugins.triggers.debounce import Debouncer
from animus.plugins.triggers.globs import compile_globs
from animus.plugin_runtime.sdk import RequestContext, method, run_plugin

DEFAULT_DEBOUNCE_SECS = 5.0
ALWAYS_IGNORED = (".git", "__pycache__")
MAX_CHANGES = 200
RETRY_MISSING_SECS = 3.0
_CHANGE = {watchfiles.Change.added: "added", watchfiles.Change.modified: "modified",
           watchfiles.Change.deleted: "deleted"}


@dataclass
class Watch:
    trigger_id: str
    roots: list[Path]
    ignored: Any
    debouncer: Debouncer

    def covers(self, path: Path) -> bool:
        return any(path == root or root in path.parents for root in self.roots)


class FileWatcher(TriggerPlugin):
    name = "file-watcher"
    kind = "file_watcher"
    description = "File-watcher triggers (triggers: type file_watcher) with debounce and ignore globs"

    def __init__(self) -> None:
        super().__init__()
        self.watching: list[str] = []
        self.missing: list[str] = []
        self.live = False
        self.seen = 0
        self.ignored_changes = 0

    def _watches(self) -> list[Watch]:
        project = Path(self.project_root).resolve()
        out = []
        for trig in self.my_triggers():
            roots = [(project / p).resolve() if not os.path.isabs(p) else Path(p).resolve()
                     for p in trig.config["paths"]]
            quiet = float(trig.config.get("debounce_secs", DEFAULT_DEBOUNCE_SECS))
            out.append(Watch(trig.id, roots, compile_globs([*ALWAYS_IGNORED, *trig.config.get("ignore", [])]),
                             Debouncer(quiet)))
        return out

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            watches = self._watches()
            roots = sorted({str(r) for w in watches for r in w.roots})
            self.watching = [r for r in roots if os.path.exists(r)]
            self.missing = [r for r in roots if not os.path.exists(r)]
            self.last_error = f"paths do not exist (yet): {', '.join(self.missing)}" if self.missing else None
            if not self.watching:
                self.live = False
                stop.wait(1.0)
                continue
            self._watch(stop, watches)

    def _watch(self, stop: threading.Event, watches: list[Watch]) -> None:
        stamp = self._cfg_stamp
        started = time.monotonic()
        project = Path(self.project_root).resolve()
        for changes in watchfiles.watch(*self.watching, watch_filter=None, debounce=200, step=20,
                                        rust_timeout=100, yield_on_timeout=True, stop_event=stop,
                                        raise_interrupt=False):
            self.live = True
            now = time.monotonic()
            for change, raw in changes:
                path = Path(raw)
                rel = os.path.relpath(path, project)
                self.seen += 1
                for w in watches:
                    if not w.covers(path):
                        continue
                    if w.ignored(rel):
                        self.ignored_changes += 1
                    else:
                        w.debouncer.add(rel, _CHANGE.get(change, "modified"), now)
            for w in watches:
                batch = w.debouncer.take(now)
                if batch:
                    self._fire(w.trigger_id, batch)
            self.workflow_config()  # refresh the stamp
            if self._cfg_stamp != stamp or (self.missing and now - started > RETRY_MISSING_SECS):
                break
        self.live = False
        for w in watches:  # a rebuild or a stop does not swallow changes already seen
            if w.debouncer.pending and not stop.is_set():
                self._fire(w.trigger_id, sorted(w.debouncer.pending.items()))

    def _fire(self, trigger_id: str, batch: list[tuple[str, str]]) -> None:
        changes = [{"path": p, "change": c} for p, c in batch[:MAX_CHANGES]]
        self.deliver(trigger_id, {"changes": changes, "count": len(batch), "truncated": len(batch) > MAX_CHANGES})

    @method("file_watcher/status")
    def status(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        return {"live": self.live, "watching": self.watching, "missing": self.missing,
                "triggers": [t.id for t in self._safe_triggers()], "changes_seen": self.seen,
                "changes_ignored": self.ignored_changes, "events_sent": self.events_sent}

    def health(self) -> dict[str, Any]:
        return super().health() | {"live": self.live, "watching": self.watching}


if __name__ == "__main__":
    run_plugin(FileWatcher)
