"""The ``animus`` command line.

One module per command group (``animus/cli/<group>.py``); each is thin:
build a control message, send it, render the reply, exit with a named code.
Every command takes ``--json`` (one compact line, a named schema).
Exit codes: 0 ok, 1 internal, 2 invalid input, 3 not found, 4 conflict,
5 unavailable (daemon or plugin unreachable).

Start-up cost matters: scripts and health checks run ``animus daemon status
--json`` in loops. Importing typer (and the pydantic it pulls in) and every
command group costs ~250 ms, several times the command itself, so the app is
built only when needed, and ``daemon status --json`` is answered by a fast
path that never imports typer (same control call, same output, same exit
codes as ``animus.cli.daemon.status``).
"""

from __future__ import annotations

import sys
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Optional

from animus import __version__

if TYPE_CHECKING:
    import typer

__all__ = ["main"]  # and ``app``, built on first use


@lru_cache(maxsize=1)
def _app() -> typer.Typer:
    import typer

    app = typer.Typer(
        name="animus",
        help="Supervisor daemon for multi-phase AI coding-agent workflows.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    def _version(value: bool) -> None:
        if value:
            print(f"animus {__version__}")
            raise typer.Exit()

    @app.callback()
    def _root(
        project_root: Optional[str] = typer.Option(None, "--project-root", help="Project root (default: git common root, else cwd)."),
        version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    ) -> None:
        from animus.cli.context import set_project_root

        set_project_root(project_root)

    @app.command("version")
    def version_cmd(as_json: bool = typer.Option(False, "--json")) -> None:
        """Print the version."""
        from animus.cli.output import emit_json

        if as_json:
            emit_json("animus.version.v1", {"version": __version__})
        else:
            print(f"animus {__version__}")

    _register(app)
    return app


def _register(app: typer.Typer) -> None:
    from animus.cli import daemon, doctor, logs, mcp, plugin, subject, trigger, web, workflow

    app.add_typer(daemon.app, name="daemon")
    app.add_typer(plugin.app, name="plugin")
    app.add_typer(subject.app, name="subject")
    app.add_typer(workflow.app, name="workflow")
    app.add_typer(logs.app, name="logs")
    app.add_typer(trigger.app, name="trigger")
    app.add_typer(web.app, name="web")
    app.add_typer(mcp.app, name="mcp")
    app.command("doctor")(doctor.doctor)


def __getattr__(name: str) -> Any:
    if name == "app":  # built on first use (PEP 562)
        return _app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _fast_path(argv: list[str]) -> None:
    """Answer ``[--project-root R] daemon status --json`` without typer; return if argv is anything else."""
    root: str | None = None
    if argv[:1] == ["--project-root"] and len(argv) >= 2:
        root, argv = argv[1], argv[2:]
    elif argv[:1] and argv[0].startswith("--project-root="):
        root, argv = argv[0].split("=", 1)[1], argv[1:]
    if argv != ["daemon", "status", "--json"]:
        return
    from animus.cli import context
    from animus.cli.output import emit_json, guard

    context.set_project_root(root)

    def body() -> int:  # as animus.cli.daemon.status does with --json
        result = context.call("daemon/status")
        emit_json(result.pop("schema"), result)
        return 0

    guard(True, body)


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] in (["--version"], ["-V"]):
        print(f"animus {__version__}")
        return
    _fast_path(argv)
    _app()(prog_name="animus")


if __name__ == "__main__":
    main()
