"""The trigger plugin shape: read my triggers from the compiled config, fire them.

A subclass names the trigger ``kind`` it serves and implements ``run(stop)``,
its loop, which the base runs in a thread from ``initialize`` until
shutdown; an exception in the loop ends the process (the supervisor
restarts it under the restart budget: let it crash, but loudly).

``deliver(trigger_id, payload)`` sends ``trigger/event`` to the host with a
fresh ``event_id`` and counts it; ``trigger/ack`` from the host (the
outcome: dispatched, unmatched, failed) arrives through the SDK's
``on_notification`` hook and is counted by status (``health/check``).

``workflow_config()`` re-reads ``state/workflow-config.v1.json`` only when the
file changed, so a loop may call it every tick.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

from animus.plugin_runtime import protocol as p
from animus.plugin_runtime.sdk import Plugin
from animus.workflow.config import COMPILED_FILE, read_compiled
from animus.workflow.model import Trigger, WorkflowConfig

__all__ = ["TriggerPlugin"]


class TriggerPlugin(Plugin):
    role = "trigger"
    version = "0.5.0"
    kind = ""  # the TriggerType value this plugin serves

    def __init__(self) -> None:
        super().__init__()
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.events_sent = 0
        self.acks: dict[str, int] = {}
        self.last_ack: dict[str, Any] | None = None
        self._cfg: WorkflowConfig | None = None
        self._cfg_stamp: tuple[int, int] | None = None

    # -- config --------------------------------------------------------------
    @property
    def state_dir(self) -> Path:
        return Path(self.state_root) / "state"

    @property
    def own_dir(self) -> Path:
        """Where this plugin keeps its own state (``<state root>/triggers``)."""
        path = Path(self.state_root) / "triggers"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def workflow_config(self) -> WorkflowConfig | None:
        """The compiled config (cached until the file changes); None while there is none."""
        try:
            st = (self.state_dir / COMPILED_FILE).stat()
        except FileNotFoundError:
            self._cfg, self._cfg_stamp = None, None
            return None
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._cfg_stamp:
            self._cfg = read_compiled(self.state_dir)
            self._cfg_stamp = stamp
        return self._cfg

    def my_triggers(self) -> list[Trigger]:
        cfg = self.workflow_config()
        return [t for t in (cfg.triggers if cfg else ()) if t.type.value == self.kind and t.enabled]

    # -- events --------------------------------------------------------------
    def deliver(self, trigger_id: str, payload: dict[str, Any]) -> str:
        event_id = f"{self.name}-{uuid.uuid4().hex[:12]}"
        self.notify("trigger/event", {"trigger_id": trigger_id, "payload": payload, "event_id": event_id})
        self.events_sent += 1
        return event_id

    def on_notification(self, method_name: str, params: dict[str, Any]) -> None:
        if method_name == "trigger/ack":
            status = str(params.get("status") or "unknown")
            self.acks[status] = self.acks.get(status, 0) + 1
            self.last_ack = dict(params)

    # -- lifecycle -----------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """The plugin's loop; return when ``stop`` is set."""
        stop.wait()

    def on_initialize(self, params: dict[str, Any]) -> None:
        self.thread = threading.Thread(target=self._main, name=self.name, daemon=True)
        self.thread.start()

    def wait_for_workflows(self, stop: threading.Event, timeout: float = 120.0) -> bool:
        """Wait until the workflows supervisor answers, so no early event is routed nowhere.

        The triggers supervisor starts before the workflows supervisor; an event
        sent in between would fail to route (and be lost).
        """
        from animus.bus.rpc import ControlClient
        from animus.errors import AnimusError

        endpoint = os.environ.get(p.ENV_CONTROL)
        if not endpoint:
            return True
        client = ControlClient(endpoint, timeout=2.0)
        deadline = time.monotonic() + timeout
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                try:
                    client.call("workflow/stats", {}, timeout=2.0)
                    return True
                except AnimusError:
                    client.close()
                    stop.wait(0.2)
        finally:
            client.close()
        return False

    def _main(self) -> None:
        try:
            if not self.wait_for_workflows(self.stop):
                self.last_error = "the workflows supervisor did not answer; trigger events may fail to route"
            self.run(self.stop)
        except Exception:
            traceback.print_exc(file=sys.stderr)
            sys.stderr.flush()
            os._exit(1)  # the supervisor restarts us under the budget and reports the stderr tail

    health_blocks = False  # the watcher thread's state and counters

    def health(self) -> dict[str, Any]:
        alive = self.thread is not None and self.thread.is_alive()
        status = "degraded" if self.last_error else "healthy"
        if self.thread is not None and not alive and not self.stop.is_set():
            status = "unhealthy"
        return {"status": status, "last_error": self.last_error, "events_sent": self.events_sent,
                "acks": dict(self.acks), "triggers": [t.id for t in self._safe_triggers()]}

    def _safe_triggers(self) -> list[Any]:
        try:
            return self.my_triggers()
        except Exception as exc:  # a damaged compiled config is a health problem, not a crash here
            self.last_error = f"cannot read the workflow config: {exc}"
            return []

    def on_shutdown(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(2.0)


def sleep_until(stop: threading.Event, deadline: float) -> bool:
    """Wait until ``deadline`` (time.time) or stop; True if stopped."""
    return stop.wait(max(0.0, deadline - time.time()))
