"""animus trigger: list the configured triggers and fire one by hand.

Control methods trigger/list and trigger/fire, served by the workflows
supervisor, which routes a trigger event to its workflow.
"""

from __future__ import annotations

import json

import typer

from animus.cli import context
from animus.cli.output import echo, emit_json, guard
from animus.errors import InvalidInput

app = typer.Typer(help="Schedules, file watchers and webhooks that start workflows.", no_args_is_help=True)


@app.command("list")
def list_cmd(as_json: bool = typer.Option(False, "--json")) -> None:
    """Configured triggers and schedules."""

    def body() -> int:
        rows = context.call("workflow/triggers", {})
        if as_json:
            emit_json("animus.trigger.list.v1", {"triggers": rows})
        elif not rows:
            echo("no triggers or schedules configured")
        else:
            for r in rows:
                echo(f"{r['id']:<20} {r['type']:<12} -> {r.get('workflow_ref') or '-':<16} {r.get('detail', '')}")
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
