"""Process entry of the daemon: ``python -m animus.daemon.main``, and ``run_daemon``.

``animus daemon start`` runs this detached (new session, output to
``daemon/daemon.log``) and waits on ``--ready-fd`` for one JSON line: the
readiness handshake (pid and state root) or the error that stopped the start.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from animus.errors import AnimusError
from animus.state.scope import Scope

__all__ = ["main", "run_daemon"]

# what a child supervisor imports beyond the root, and the workflows service: the zygote imports the
# first at the first fork and the service while idle, before the workflows supervisor (which starts
# after providers and subjects) is forked
ZYGOTE_PRELOAD = ("animus.supervision.child", "animus.workflow.service")


def run_daemon(scope: Scope, options: dict[str, Any], ready_fd: int | None = None) -> int:
    """Run the daemon in this process until it is told to stop.

    One daemon per scope (the lock), leftovers of a crashed one reaped, the
    operator's config read and the workflow YAML compiled before the tree
    starts: a bad file stops the start with its one-line error."""
    import asyncio

    from animus.daemon.config import load_daemon_config
    from animus.daemon.control import control_handlers
    from animus.daemon.plugin_children import declared_sensitive
    from animus.daemon.tree import AnimusTree
    from animus.logs import configure, get_logger
    from animus.redact import ENV_SENSITIVE
    from animus.supervision.launcher import Launcher
    from animus.supervision.pidlock import acquire_lock, reap_leftovers, write_pidfile
    from animus.supervision.root import Root, RootSettings
    from animus.workflow.compile import compile_project

    scope.ensure()
    # names (never values) of the plugins' sensitive variables: we and every process we start redact them
    os.environ[ENV_SENSITIVE] = ",".join(declared_sensitive(scope))
    # the child supervisors' zygote, forked from us while we have no thread and no ZeroMQ context (and
    # before our log is configured): it shares what we imported and preloads what they need beyond
    launcher = Launcher(list(ZYGOTE_PRELOAD), fork_self=True, detach=True)
    configure("daemon")
    try:
        lock_fd = acquire_lock(scope)
    except BaseException:
        launcher.close()
        raise
    try:
        reaped = reap_leftovers(scope)
        write_pidfile(scope)
        if reaped:
            get_logger().warning("reaped processes left by a previous crashed daemon", count=reaped)
        config = load_daemon_config(scope.project_root)
        ray = config.runners.get("backend") == "ray"
        if ray:
            from animus.workflow.remote.ray_config import require_ray

            require_ray()
        settings = RootSettings(intensity=config.intensity, period=config.period, ready_timeout=config.ready_timeout,
                                bus_tcp=tuple(config.bus_tcp),
                                runner_address=config.runners["ray"]["daemon_address"] if ray else None,
                                autonomous=bool(options.get("autonomous")))
        root = Root(scope, settings, AnimusTree(scope, config, options), control_handlers(config), launcher)
        compile_project(scope)
        return asyncio.run(root.run(ready_fd))
    finally:
        launcher.close()
        scope.pidfile.unlink(missing_ok=True)
        os.close(lock_fd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="animus-daemon")
    parser.add_argument("--project-root")
    parser.add_argument("--ready-fd", type=int)
    parser.add_argument("--autonomous", action="store_true")
    parser.add_argument("--git-options", default="{}", help="JSON: delivery flags and startup cleanup")
    args = parser.parse_args(argv)
    from animus.state.scope import resolve_scope

    try:
        scope = resolve_scope(args.project_root)
        return run_daemon(scope, {"autonomous": args.autonomous, "git": json.loads(args.git_options)},
                          args.ready_fd)
    except AnimusError as exc:
        if args.ready_fd is not None:
            try:
                os.write(args.ready_fd, json.dumps({"ok": False, "error": exc.to_dict()}).encode())
            except OSError:
                pass
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return int(exc.exit_code)


if __name__ == "__main__":
    # detached, the daemon has no terminal: its log needs no rich tracebacks, and keeping structlog
    # from importing rich keeps ~5 MiB of RSS and ~25 ms of start off the root
    sys.modules.setdefault("rich", None)  # type: ignore[arg-type]  # None: "not importable"
    sys.exit(main())
