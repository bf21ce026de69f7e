"""animus daemon: start, stop, status, health, metrics, stream, logs, preflight, backup, restore.

Control methods: daemon/status, daemon/health, daemon/metrics, daemon/stop,
daemon/logs, bus/sync. ``start`` and ``stop`` are CLI-local (they start and
signal the process); ``logs`` and ``health`` fall back to files and one-shot
probes when the daemon is down; ``backup`` and ``restore`` work on files.
"""

from __future__ import annotations

from typing import Optional

import typer

from animus.cli import context
from animus.cli.output import echo, emit_json, guard

app = typer.Typer(help=__doc__.split("\n")[0], no_args_is_help=True)

JSON = typer.Option(False, "--json", help="One compact JSON line with a named schema.")


@app.command()
def start(
    foreground: bool = typer.Option(False, "--foreground", help="Stay attached (logs to stderr)."),
    autonomous: bool = typer.Option(False, "--autonomous", help="Run the scheduler: take ready tasks and run their workflows."),
    skip_preflight: bool = typer.Option(False, "--skip-preflight", help="Skip the required-plugins check (dev only)."),
    auto_install: bool = typer.Option(False, "--auto-install", help="Install missing default plugins before starting."),
    auto_merge: Optional[bool] = typer.Option(None, "--auto-merge/--no-auto-merge", help="Merge every successful run's branch into its target (overrides post_success.merge.auto_merge)."),
    auto_pr: Optional[bool] = typer.Option(None, "--auto-pr/--no-auto-pr", help="Push every successful run's branch and open a pull request (overrides create_pr)."),
    auto_commit: Optional[bool] = typer.Option(None, "--auto-commit-before-merge/--no-auto-commit-before-merge", help="Commit what a run left uncommitted before delivery (default: on)."),
    auto_prune: Optional[bool] = typer.Option(None, "--auto-prune-worktrees-after-merge/--no-auto-prune-worktrees-after-merge", help="Remove a run's worktree after delivery (overrides cleanup_worktree)."),
    startup_cleanup: bool = typer.Option(True, "--startup-cleanup/--no-startup-cleanup", help="At start, remove the worktrees of finished or deleted runs (default: on)."),
    as_json: bool = JSON,
) -> None:
    """Start the daemon; return once the whole tree is up (readiness handshake)."""
    from animus.cli.daemon_start import git_options, start_daemon

    git = git_options(auto_merge, auto_pr, auto_commit, auto_prune, startup_cleanup)
    guard(as_json, lambda: start_daemon(foreground, autonomous, skip_preflight, auto_install, as_json, git))


@app.command("run")
def run_foreground(
    autonomous: bool = typer.Option(False, "--autonomous"),
    skip_preflight: bool = typer.Option(False, "--skip-preflight"),
    auto_merge: Optional[bool] = typer.Option(None, "--auto-merge/--no-auto-merge"),
    auto_pr: Optional[bool] = typer.Option(None, "--auto-pr/--no-auto-pr"),
    auto_commit: Optional[bool] = typer.Option(None, "--auto-commit-before-merge/--no-auto-commit-before-merge"),
    auto_prune: Optional[bool] = typer.Option(None, "--auto-prune-worktrees-after-merge/--no-auto-prune-worktrees-after-merge"),
    startup_cleanup: bool = typer.Option(True, "--startup-cleanup/--no-startup-cleanup"),
    as_json: bool = JSON,
) -> None:
    """Run the daemon in the foreground (same as start --foreground)."""
    from animus.cli.daemon_start import git_options, start_daemon

    git = git_options(auto_merge, auto_pr, auto_commit, auto_prune, startup_cleanup)
    guard(as_json, lambda: start_daemon(True, autonomous, skip_preflight, False, as_json, git))


@app.command()
def stop(
    shutdown_timeout_secs: float = typer.Option(60.0, "--shutdown-timeout-secs", help="Wait this long, then kill what is left."),
    as_json: bool = JSON,
) -> None:
    """Stop the daemon gracefully and wait until it has exited."""
    from animus.cli.daemon_start import stop_daemon

    guard(as_json, lambda: stop_daemon(shutdown_timeout_secs, as_json))


@app.command()
def status(as_json: bool = JSON) -> None:
    """The live supervisor tree (schema animus.daemon.status.v1)."""
    from animus.cli import daemon_cmds

    guard(as_json, lambda: daemon_cmds.status(as_json))


@app.command()
def health(
    strict: bool = typer.Option(False, "--strict", help="Fail on any row that is not Healthy (Unconfigured too)."),
    as_json: bool = JSON,
) -> None:
    """Per-plugin health; exits 5 on any Unhealthy row (an unused, unconfigured plugin is Unconfigured,
    not a failure). Probes one-shot when the daemon is down."""
    from animus.cli.daemon_health import health_command

    guard(as_json, lambda: health_command(as_json, strict))


@app.command()
def preflight(
    auto_install: bool = typer.Option(False, "--auto-install", help="Install the default plugin for each missing role."),
    as_json: bool = JSON,
) -> None:
    """Required-plugins matrix (schema animus.daemon.preflight.v1): 0 ok, 2 role missing, 1 discovery failed."""
    from animus.cli.daemon_start import preflight_command

    guard(as_json, lambda: preflight_command(auto_install, as_json))


@app.command()
def metrics(
    pretty: bool = typer.Option(False, "--pretty", help="One 'name{labels} value' line per metric."),
    watch: bool = typer.Option(False, "--watch", help="Refresh until Ctrl-C."),
    interval_secs: float = typer.Option(5.0, "--interval-secs"),
    fmt: str = typer.Option("json", "--format", help="json or prometheus."),
    as_json: bool = JSON,
) -> None:
    """Counters, gauges and histograms of the daemon (control method daemon/metrics)."""
    from animus.cli import daemon_cmds

    guard(as_json, lambda: daemon_cmds.metrics(pretty, watch, interval_secs, fmt, as_json))


@app.command()
def stream(
    pretty: bool = typer.Option(False, "--pretty", help="A readable, colored line per event."),
    workflow: Optional[str] = typer.Option(None, "--workflow", help="Only this workflow (exits when it ends)."),
    run: Optional[str] = typer.Option(None, "--run", help="Only this run."),
    cat: Optional[str] = typer.Option(None, "--cat", help="Category prefix, e.g. phase."),
    level: Optional[str] = typer.Option(None, "--level", help="Minimum level: debug, info, warn, error."),
    tail: int = typer.Option(0, "--tail", help="First print this many past events from the log."),
    as_json: bool = JSON,
) -> None:
    """Live events from the bus, with gap reports; Ctrl-C exits cleanly."""
    from animus.cli.daemon_stream import stream_events

    guard(as_json, lambda: stream_events(pretty, workflow, run, cat, level, tail, as_json))


@app.command()
def logs(
    limit: int = typer.Option(100, "--limit"),
    search: Optional[str] = typer.Option(None, "--search", help="Only lines containing this text."),
    level: Optional[str] = typer.Option(None, "--level"),
    as_json: bool = JSON,
) -> None:
    """Recent daemon events (reads logs/events.jsonl when the daemon is down)."""
    from animus.cli import logs_cmds

    guard(as_json, lambda: logs_cmds.daemon_logs(limit, search, level, as_json))


def _child_op(method: str, name: str, as_json: bool) -> None:
    def body() -> int:
        node = context.call(method, {"child": name}, timeout=60)
        if as_json:
            emit_json(f"animus.daemon.{method.split('/')[1]}.v1", {"child": node})
        else:
            echo(f"{node['name']}: {node['state']} (pid {node.get('pid') or '-'}, restarts {node['restarts']})")
        return 0

    guard(as_json, body)


@app.command("stop-child")
def stop_child(name: str = typer.Option(..., "--name", help="A plugin or a child supervisor."), as_json: bool = JSON) -> None:
    """Stop one child (an operator stop: never counted as a crash; it stays stopped)."""
    _child_op("supervisor/stop_child", name, as_json)


@app.command("start-child")
def start_child(name: str = typer.Option(..., "--name", help="A plugin or a child supervisor."), as_json: bool = JSON) -> None:
    """Start (or restart) one child that an operator stopped."""
    _child_op("supervisor/restart_child", name, as_json)


@app.command()
def backup(
    dest: Optional[str] = typer.Option(None, "--dest", help="Folder for the archive (default $ANIMUS_HOME/backups)."),
    as_json: bool = JSON,
) -> None:
    """One archive of workflow.db (SQLite online backup), logs/, state/, runs/, .animus/ and the plugins;
    the daemon may keep running (schema animus.daemon.backup.v1)."""
    from animus.cli.daemon_backup import backup_command

    guard(as_json, lambda: backup_command(dest, as_json))


@app.command()
def restore(
    archive: str = typer.Argument(..., help="An archive written by animus daemon backup."),
    as_json: bool = JSON,
) -> None:
    """Restore a backup into this ANIMUS_HOME and project (daemon stopped; checksums verified first;
    all or nothing)."""
    from animus.cli.daemon_backup import restore_command

    guard(as_json, lambda: restore_command(archive, as_json))
