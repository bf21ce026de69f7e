"""The daemon's own log (stderr, or daemon/daemon.log when detached).

Human-readable by default; ``ANIMUS_LOG_FORMAT=json`` (or the legacy
``ANIMUS_LOG_JSON=1``) switches to one JSON object per line. Configured once,
at start-up, by the process that owns the log.
"""

from __future__ import annotations

import logging
import os
import sys

# structlog imports rich, where it is installed (Typer needs it), for pretty tracebacks: ~50-150 ms of
# a daemon's start, on its critical path, for a log file that wants plain lines. Unless stderr is a
# terminal (a foreground daemon), structlog is imported as if rich were absent; anything importing
# rich later in this process gets it as usual.
_PLAIN = "rich" not in sys.modules and not sys.stderr.isatty()
if _PLAIN:
    sys.modules["rich"] = None  # type: ignore[assignment]
try:
    import structlog
finally:
    if _PLAIN:
        del sys.modules["rich"]

from animus import redact  # noqa: E402

__all__ = ["configure", "get_logger", "json_logs"]


def json_logs() -> bool:
    return os.environ.get("ANIMUS_LOG_FORMAT", "").lower() == "json" or os.environ.get(
        "ANIMUS_LOG_JSON", ""
    ) not in ("", "0", "false")


def configure(component: str) -> None:
    renderer: structlog.types.Processor
    if json_logs():
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact.processor,  # secret values never reach the log
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(component=component, pid=os.getpid())


def get_logger() -> structlog.stdlib.BoundLogger:
    return structlog.get_logger()  # type: ignore[no-any-return]
