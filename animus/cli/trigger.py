"""animus trigger: list the configured triggers and fire one by hand.

Control methods workflow/triggers and workflow/fire, served by the workflows
supervisor. ``list`` shows the workflow config's ``schedules:`` (type cron)
and ``triggers:`` (cron, file_watcher, webhook) with when each last started
a workflow; ``fire`` routes an event to the trigger's workflow exactly as a
trigger plugin's ``trigger/event`` would (source ``cli``). An id that
matches nothing exits 3 and is counted as
``trigger_events_total{plugin="cli",routed="false"}``.
"""

from __future__ import annotations

import json
import time

import typer

from animus.cli import context
from animus.cli.output import echo, emit_json, guard
from animus.errors import InvalidInput

app = typer.Typer(help="Schedules, file watchers and webhooks that start workflows.", no_args_is_help=True)


@app.command("list")
def list_cmd(as_json: bool = typer.Option(False, "--json")) -> None:
    """Configured schedules and triggers."""

    def body() -> int:
        rows = context.call("workflow/triggers", {})
        if as_json:
            emit_json("animus.trigger.list.v1", {"triggers": rows})
        elif not rows:
            echo("no triggers or schedules configured")
        else:
            echo(f"{'ID':<20} {'TYPE':<12} {'ENABLED':<8} {'WORKFLOW':<16} {'LAST RUN':<20} DETAIL")
            for r in rows:
                last = r.get("last_run")
                when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(last)) if last else "-"
                echo(f"{r['id']:<20} {r['type']:<12} {'yes' if r.get('enabled', True) else 'no':<8} "
                     f"{r.get('workflow_ref') or '(default)':<16} {when:<20} {r.get('detail', '')}")
        return 0

    guard(as_json, body)


@app.command()
def fire(trigger_id: str = typer.Argument(...), payload: str = typer.Option("{}", "--payload"),
         as_json: bool = typer.Option(False, "--json")) -> None:
    """Deliver a trigger event now, as if it had fired."""

    def body() -> int:
        try:
            data = json.loads(payload)
        except ValueError as exc:
            raise InvalidInput(f"--payload is not valid JSON: {exc}") from None
        result = context.call("workflow/fire", {"trigger_id": trigger_id, "payload": data, "source": "cli"})
        if as_json:
            emit_json("animus.trigger.fire.v1", result)
        else:
            echo(f"{trigger_id}: {'started workflow ' + result['workflow_id'] if result.get('workflow_id') else result.get('status')}")
        return 0

    guard(as_json, body)
