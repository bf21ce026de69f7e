"""Process entry of the daemon: ``python -m animus.supervision.daemon_main``.

``animus daemon start`` runs this detached (new session, output to
``daemon/daemon.log``) and waits on ``--ready-fd`` for one JSON line: the
readiness handshake (pid and state root) or the error that stopped the start.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from animus.errors import AnimusError

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="animus-daemon")
    parser.add_argument("--project-root")
    parser.add_argument("--ready-fd", type=int)
    parser.add_argument("--autonomous", action="store_true")
    args = parser.parse_args(argv)
    from animus.state.scope import resolve_scope
    from animus.supervision.root import run_daemon

    try:
        scope = resolve_scope(args.project_root)
        return run_daemon(scope, {"autonomous": args.autonomous}, args.ready_fd)
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
