"""animus web open: print the web UI's URL with its access token.

The HTTP transport (plugin ``transport-http``) binds 127.0.0.1 on the port
its config names (an ephemeral one by default) and records where it
listens in ``<state root>/transports/transport-http.json``; every request
needs the token in ``<state root>/token`` (mode 0600, created by the
transport at its first start). This command reads both files (no control
method) and prints ``<url>/?token=<token>``: opening it signs the browser
in (a cookie) and drops the token from the address bar.
"""

from __future__ import annotations

import json

import typer

from animus.cli import context
from animus.cli.output import echo, emit_json, guard
from animus.errors import Unavailable
from animus.state.pids import pid_alive

app = typer.Typer(help="The web UI.", no_args_is_help=True)
TRANSPORT = "transport-http"
_FIX = ("animus plugin install-defaults --include-transports, then animus daemon stop && animus daemon start; "
        "check it with animus daemon health")


@app.command("open")
def open_cmd(as_json: bool = typer.Option(False, "--json")) -> None:
    """Print the URL of the web UI (with its token)."""

    def body() -> int:
        scope = context.scope()
        record = scope.root / "transports" / f"{TRANSPORT}.json"
        try:
            info = json.loads(record.read_text())
        except (FileNotFoundError, ValueError):
            raise Unavailable("no web transport is running", fix=_FIX) from None
        if not isinstance(info, dict) or not info.get("url") or not pid_alive(info.get("pid")):
            raise Unavailable(f"the {TRANSPORT} plugin is not running (stale {record.name})", fix=_FIX)
        try:
            token = scope.token_file.read_text().strip()
        except FileNotFoundError:
            raise Unavailable(f"{scope.token_file} does not exist", fix=_FIX) from None
        base = str(info["url"]).rstrip("/")
        full = f"{base}/?token={token}"
        if as_json:
            emit_json("animus.web.open.v1", {"url": full, "base_url": base, "pid": info["pid"]})
        else:
            echo(full)
        return 0

    guard(as_json, body)
