"""``cron`` trigger plugin: schedules fire on time, once, across restarts.

It serves every enabled ``schedules:`` entry and every enabled ``triggers:``
entry of ``type: cron`` (``config.cron``). Each tick (``tick_secs``, 1 s by
default, never later than the next due time) it asks ``cron_plan.plan``
what is due, records the new last runs in ``<state root>/triggers/cron.json``
(atomically, *before* sending, so a crash never fires one twice), then sends
one ``trigger/event`` per firing with ``payload {schedule, cron, due}``.
A schedule seen for the first time starts counting from then; one that
came due while the daemon was down fires once at start.

``cron/status`` lists each entry with its last run and next due time.
SIGTERM: the loop stops at once (it only ever waits on the stop event).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from animus.plugins.triggers.base import TriggerPlugin, sleep_until
from animus.plugins.triggers.cron_plan import CronEntry, next_due, plan
from animus.state.files import atomic_write
from animus.plugin_runtime.sdk import RequestContext, method, run_plugin

STATE_FILE = "cron.json"


class CronTrigger(TriggerPlugin):
    name = "cron"
    kind = "cron"
    description = "Fires schedules (schedules:) and cron triggers (triggers: type cron) on time"

    def entries(self) -> list[CronEntry]:
        cfg = self.workflow_config()
        if cfg is None:
            return []
        out = [CronEntry(s.id, s.cron) for s in cfg.schedules if s.enabled]
        out += [CronEntry(t.id, str(t.config["cron"])) for t in self.my_triggers()]
        return out

    def load_state(self) -> dict[str, float]:
        try:
            data = json.loads((self.own_dir / STATE_FILE).read_text())
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            self.last_error = f"{STATE_FILE} was unreadable ({exc}); schedules start counting again"
            return {}
        runs = data.get("last_run") if isinstance(data, dict) else None
        return {str(k): float(v) for k, v in (runs or {}).items() if isinstance(v, (int, float))}

    def save_state(self, table: dict[str, float]) -> None:
        atomic_write(self.own_dir / STATE_FILE, json.dumps({"v": 1, "last_run": table}, sort_keys=True).encode())

    def run(self, stop: threading.Event) -> None:
        tick = float(self.config.get("tick_secs") or 1.0)
        table = self.load_state()
        while not stop.is_set():
            now = time.time()
            entries = self.entries()
            fires, new_table = plan(entries, table, now)
            if new_table != table:
                self.save_state(new_table)
                table = new_table
            for fire in fires:
                cron = next(e.cron for e in entries if e.id == fire.id)
                self.deliver(fire.id, {"schedule": fire.id, "cron": cron, "due": fire.due})
                self.publish("trigger", "schedule_fired", data={"schedule": fire.id, "due": fire.due,
                                                                 "message": f"schedule {fire.id} fired"})
            upcoming = [next_due(e.cron, table[e.id]) for e in entries if e.id in table]
            sleep_until(stop, min([now + tick, *upcoming]))

    @method("cron/status")
    def status(self, params: dict[str, Any], ctx: RequestContext) -> list[dict[str, Any]]:
        table = self.load_state()
        return [{"id": e.id, "cron": e.cron, "last_run": table.get(e.id),
                 "next_due": next_due(e.cron, table[e.id]) if e.id in table else None} for e in self.entries()]


if __name__ == "__main__":
    run_plugin(CronTrigger)
