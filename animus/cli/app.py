"""The Typer app of the ``animus`` command line: every command group, for the paths that need it.

Built only when ``animus.cli.main`` cannot answer from its fast path
(``animus.cli.fast``): ``--help``, completion, usage errors and the commands
outside the fast path's table.
"""

from __future__ import annotations

from typing import Optional

import typer

from animus import __version__

__all__ = ["build"]


def build() -> typer.Typer:
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


