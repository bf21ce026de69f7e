"""Dispatch first, import late: the everyday commands answered without Typer.

Scripts run ``animus daemon status --json`` or ``subject list --json`` in
loops, so a command's latency is its interface. Importing Typer (click, and
the command groups) costs more than starting Python; the commands in
``COMMANDS`` skip it: one table maps ``<group> <command>`` to the body
function the Typer command calls too (``animus.cli.*_cmds``), with the
options it takes, so both print the same thing with the same exit codes.

Anything the table does not cover — ``--help``, an option it does not know,
a missing value or required option, a value of the wrong type, another
command — falls through to the Typer app, so usage errors, help and
completion stay Typer's. ``tests/test_cli_fast.py`` checks the table
against the Typer app (every option, parameter and default).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs a CLI call ~2.5 ms to import; annotations need it only for mypy
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Command", "COMMANDS", "parse", "dispatch"]


class Command:
    """One row of the table (a plain class: a NamedTuple would import typing)."""

    __slots__ = ("target", "options", "flags", "types", "positional", "required")

    def __init__(self, target: str, options: dict[str, str] | None = None, flags: dict[str, str] | None = None,
                 types: dict[str, type] | None = None, positional: str | None = None,
                 required: tuple[str, ...] = ()) -> None:
        self.target = target                # "module:function", a body taking keyword parameters
        self.options = options or {}        # --option VALUE -> parameter
        self.flags = flags or {}            # --flag -> parameter set to True
        self.types = types or {}            # parameter -> int or float (others are str)
        self.positional = positional        # one optional positional argument
        self.required = required            # parameters Typer requires (missing: Typer says so)


_WF_VERB = {"--id": "id", "--phase": "phase", "--note": "note"}
COMMANDS: dict[tuple[str, str], Command] = {
    ("daemon", "start"): Command("animus.cli.daemon_start:start_daemon", flags={
        "--foreground": "foreground", "--autonomous": "autonomous", "--skip-preflight": "skip_preflight",
        "--auto-install": "auto_install"}),
    ("daemon", "status"): Command("animus.cli.daemon_cmds:status"),
    ("daemon", "health"): Command("animus.cli.daemon_health:health_command", flags={"--strict": "strict"}),
    ("daemon", "metrics"): Command("animus.cli.daemon_cmds:metrics", {"--format": "fmt", "--interval-secs": "interval_secs"},
                                   {"--pretty": "pretty", "--watch": "watch"}, {"interval_secs": float}),
    ("daemon", "logs"): Command("animus.cli.logs_cmds:daemon_logs",
                                {"--limit": "limit", "--search": "search", "--level": "level"}, types={"limit": int}),
    ("logs", "tail"): Command("animus.cli.logs_cmds:tail", {"--level": "level", "--limit": "limit", "--cat": "cat"},
                              {"--follow": "follow"}, {"limit": int}),
    ("workflow", "list"): Command("animus.cli.workflow_cmds:list_workflows",
                                  {"--status": "status", "--limit": "limit", "--task-id": "task_id"}, types={"limit": int}),
    ("workflow", "get"): Command("animus.cli.workflow_cmds:get", {"--id": "id"}, positional="workflow_id"),
    ("workflow", "run"): Command("animus.cli.workflow_cmds:run", {"--task-id": "task_id", "--workflow": "workflow",
                                                                  "--workflow-ref": "workflow", "--title": "title"}),
    ("workflow", "resume"): Command("animus.cli.workflow_cmds:resume", _WF_VERB, {"--force": "force"},
                                    positional="workflow_id"),
    ("workflow", "cancel"): Command("animus.cli.workflow_cmds:cancel", _WF_VERB, {"--force": "force"},
                                    positional="workflow_id"),
    ("subject", "list"): Command("animus.cli.subject_cmds:list_subjects",
                                 {"--kind": "kind", "--status": "status", "--limit": "limit"}, types={"limit": int}),
    ("subject", "get"): Command("animus.cli.subject_cmds:get", {"--kind": "kind", "--id": "id"}, required=("id",)),
    ("subject", "create"): Command("animus.cli.subject_cmds:create", {
        "--kind": "kind", "--title": "title", "--status": "status", "--priority": "priority", "--labels": "labels",
        "--body": "body_text", "--description": "body_text"}, required=("title",)),
    ("subject", "status"): Command("animus.cli.subject_cmds:status", {
        "--kind": "kind", "--id": "id", "--status": "status", "--reason": "reason"}, required=("id", "status")),
    ("plugin", "list"): Command("animus.cli.plugin_cmds:list_plugins"),
    ("plugin", "info"): Command("animus.cli.plugin_cmds:info", {"--name": "name"}, required=("name",)),
}


def parse(args: list[str], cmd: Command) -> dict[str, Any] | None:
    """The body's keyword parameters, or None for anything Typer should handle."""
    params: dict[str, Any] = {}
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--json":
            params["as_json"] = True
        elif token in cmd.flags:
            params[cmd.flags[token]] = True
        elif token.startswith("--"):
            name, eq, value = token.partition("=")
            if name not in cmd.options:
                return None
            if not eq:
                i += 1
                if i == len(args):
                    return None
                value = args[i]
            params[cmd.options[name]] = value
        elif token.startswith("-") or cmd.positional is None or cmd.positional in params:
            return None
        else:
            params[cmd.positional] = token
        i += 1
    try:
        for name, kind in cmd.types.items():
            if name in params:
                params[name] = kind(params[name])
    except ValueError:
        return None
    return None if any(name not in params for name in cmd.required) else params


def dispatch(argv: list[str]) -> None:
    """Run ``argv`` if the table covers it (never returns then); return to hand it to Typer."""
    root: str | None = None
    if argv[:1] == ["--project-root"] and len(argv) >= 2:
        root, argv = argv[1], argv[2:]
    elif argv[:1] and argv[0].startswith("--project-root="):
        root, argv = argv[0].split("=", 1)[1], argv[1:]
    cmd = COMMANDS.get((argv[0], argv[1])) if len(argv) >= 2 else None
    params = parse(argv[2:], cmd) if cmd is not None else None
    if cmd is None or params is None:
        return
    from animus.cli import context
    from animus.cli.output import guard

    module, _, function = cmd.target.partition(":")
    body = getattr(__import__(module, fromlist=[function]), function)
    context.set_project_root(root)
    guard(bool(params.get("as_json")), lambda: body(**params))
