"""animus mcp serve: the board and the workflows as Model Context Protocol tools.

Serves MCP on stdin/stdout (what an agent CLI spawns), or with --http on
http://127.0.0.1:<port>/mcp behind the transports' token (<state
root>/token, sent as Authorization: Bearer). Tools: subject_list, get,
create, update, status, next, comment; workflow_list, get, run, events;
daemon_status. Each is a control call on the daemon's control socket
(subject/call, workflow/list|get|run, daemon/logs, daemon/status); the
server never opens workflow.db and keeps no state, so running it twice is
harmless. With the daemon down, every tool answers one error: daemon not
running. ANIMUS_TASK_ID and ANIMUS_WORKFLOW_ID, when set, are "my task" and
"my run" for tools called without an id. See docs/mcp.md.
"""

from __future__ import annotations

import typer

from animus.cli import context
from animus.cli.output import guard

app = typer.Typer(help="The board and the workflows as Model Context Protocol tools.", no_args_is_help=True)


@app.command(help=__doc__)
def serve(http: bool = typer.Option(False, "--http", help="Serve streamable HTTP on 127.0.0.1 instead of stdio."),
          port: int = typer.Option(0, "--port", help="Port for --http (0: a free one, printed on stderr).")) -> None:
    def body() -> int:
        from animus.mcp.listen import bind

        sock = bind(port) if http else None  # first: a busy port fails before the SDK loads
        import anyio

        from animus.mcp.link import DaemonLink
        from animus.mcp.run_env import RunEnv
        from animus.mcp.server import build_server, serve_http, serve_stdio

        link = DaemonLink()
        server = build_server(link, RunEnv.from_environ())
        try:
            if sock is not None:
                from animus.plugins.transports.token import ensure_token

                root = context.scope().root
                anyio.run(serve_http, server, sock, ensure_token(root), str(root / "token"))
            else:
                anyio.run(serve_stdio, server)
        finally:
            link.close()
        return 0

    guard(False, body)
