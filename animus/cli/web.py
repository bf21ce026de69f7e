"""animus web open: print the web UI's URL with its access token.

The HTTP transport binds 127.0.0.1 and requires the bearer token the daemon
creates at first start (``<state root>/token``, mode 0600).
"""

from __future__ import annotations

import typer

from animus.cli import context
from animus.cli.output import echo, emit_json, guard
from animus.errors import Unavailable

app = typer.Typer(help="The web UI.", no_args_is_help=True)


@app.command("open")
def open_cmd(as_json: bool = typer.Option(False, "--json")) -> None:
    """Print the URL of the web UI (with its token)."""

    def body() -> int:
        status = context.call("daemon/status")
        url = None
        for sup in status["tree"]:
            for child in sup.get("children", []):
                if child.get("url"):
                    url = child["url"]
        if url is None:
            raise Unavailable("no web transport is running",
                              fix="animus plugin install-defaults --include-transports, then restart the daemon")
        token = context.scope().token_file.read_text().strip()
        full = f"{url}/?token={token}"
        if as_json:
            emit_json("animus.web.open.v1", {"url": full})
        else:
            echo(full)
        return 0

    guard(as_json, body)
