"""Normalized provider events, the run result, and the parser every vendor shares.

Each vendor CLI speaks its own JSON-lines dialect; the workflow runner should
not care which. A vendor parser turns one stdout line into zero or more of the
events below, and ``finish(exit_code)`` turns the whole run into a
``RunResult``. Events are frozen dataclasses with ``to_dict()`` so they can be
forwarded as ``agent/output`` notifications without another translation step.

``Usage`` is an *increment*: a vendor that reports per turn (codex, opencode)
emits one per turn, a vendor that reports run totals once (claude, gemini)
emits one. ``RunResult`` holds the sums.

Parsing is pure (no processes, clock injected) so every recorded fixture can be
replayed in milliseconds; ``cli_process.run_cli`` is the only part that spawns.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from animus.supervision.exit_reason import ExitReason

__all__ = [
    "EnvVar",
    "Final",
    "JsonLineParser",
    "PermissionDenied",
    "ProviderError",
    "ProviderEvent",
    "RateLimited",
    "RunResult",
    "SessionStarted",
    "StreamParser",
    "TextDelta",
    "ToolCall",
    "ToolResult",
    "Usage",
    "as_dict",
    "as_int",
    "as_str",
    "looks_retryable",
    "rate_limit_from_text",
    "summarize_input",
]


class _Event:
    kind: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **vars(self)}


@dataclass(frozen=True)
class SessionStarted(_Event):
    kind: ClassVar[str] = "session_started"
    session_id: str
    model: str | None = None


@dataclass(frozen=True)
class TextDelta(_Event):
    kind: ClassVar[str] = "text_delta"
    text: str


@dataclass(frozen=True)
class ToolCall(_Event):
    kind: ClassVar[str] = "tool_call"
    name: str
    input: dict[str, Any]
    id: str


@dataclass(frozen=True)
class ToolResult(_Event):
    kind: ClassVar[str] = "tool_result"
    id: str
    output: str
    is_error: bool = False


@dataclass(frozen=True)
class PermissionDenied(_Event):
    """The CLI refused a tool use under its permission settings (never asked anyone: headless)."""

    kind: ClassVar[str] = "permission_denied"
    tool: str
    input: str  # a one-line summary of what the tool was asked to do
    message: str  # the CLI's own words
    id: str = ""


@dataclass(frozen=True)
class Usage(_Event):
    kind: ClassVar[str] = "usage"
    input_tokens: int
    output_tokens: int
    cost_usd: float | None = None


@dataclass(frozen=True)
class RateLimited(_Event):
    kind: ClassVar[str] = "rate_limited"
    reset_at: float | None  # epoch seconds, when the vendor said
    message: str


@dataclass(frozen=True)
class Final(_Event):
    kind: ClassVar[str] = "final"
    text: str


@dataclass(frozen=True)
class ProviderError(_Event):
    kind: ClassVar[str] = "provider_error"
    message: str
    retryable: bool = False


ProviderEvent = (
    SessionStarted
    | TextDelta
    | ToolCall
    | ToolResult
    | PermissionDenied
    | Usage
    | RateLimited
    | Final
    | ProviderError
)


@dataclass(frozen=True)
class RunResult:
    """What one agent run came to. ``ok`` is the only success test callers need."""

    provider: str
    session_id: str | None = None
    final_text: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    error: ProviderError | None = None
    rate_limit: RateLimited | None = None
    exit_code: int | None = None
    ignored_lines: int = 0
    stderr_tail: tuple[str, ...] = ()
    timed_out: bool = False
    cancelled: bool = False
    denials: tuple[PermissionDenied, ...] = ()
    workspace_changed: bool | None = None  # set by the plugin, which saw the directory before and after

    @property
    def ok(self) -> bool:
        return self.error is None and self.rate_limit is None

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["error"] = self.error.to_dict() if self.error else None
        out["rate_limit"] = self.rate_limit.to_dict() if self.rate_limit else None
        out["stderr_tail"] = list(self.stderr_tail)
        out["denials"] = [d.to_dict() for d in self.denials]
        out["ok"] = self.ok
        return out


@dataclass(frozen=True)
class EnvVar:
    """One ``env_required`` manifest entry: only these names cross ``env_clear()``."""

    name: str
    description: str = ""
    sensitive: bool = True
    required: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class StreamParser(Protocol):
    @property
    def provider(self) -> str: ...  # read-only, so the parsers' ClassVar satisfies it

    def feed(self, line: str) -> list[ProviderEvent]: ...

    def finish(self, exit_code: int | None) -> RunResult: ...


_EPOCH_SUFFIX = re.compile(r"\|(\d{10,13})\s*$")
_UNITS = r"days?|d|hours?|h|minutes?|mins?|m|seconds?|secs?|s"
_RELATIVE = re.compile(
    rf"(?:try again|retry) in\s+((?:\d+(?:\.\d+)?\s*(?:{_UNITS})\b[\s,]*(?:and\s+)?)+)",
    re.IGNORECASE,
)
_UNIT = re.compile(rf"(\d+(?:\.\d+)?)\s*({_UNITS})\b", re.IGNORECASE)
_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_RATE_WORDS = re.compile(
    r"usage limit|rate limit|hit your limit|too many requests|\b429\b|resource_exhausted|quota",
    re.IGNORECASE,
)
_RETRY_WORDS = re.compile(
    r"overloaded|timed? ?out|\b50[0234]\b|internal server error|econnreset"
    r"|connection (?:reset|refused)|network|unavailable",
    re.IGNORECASE,
)


def rate_limit_from_text(message: str, now: float) -> RateLimited | None:
    """Recognise a vendor's quota message and read its reset time, if it gives one.

    Vendors say it differently: claude appends ``|<epoch>``, codex says "try
    again in 2 hours 5 minutes", the Gemini API says "Please retry in 37.5s".
    A clock-time reset ("try again at 3:28 PM") has no date or zone, so it is
    kept in the message and ``reset_at`` stays None rather than guessed.
    """
    if not _RATE_WORDS.search(message):
        return None
    reset_at: float | None = None
    if m := _EPOCH_SUFFIX.search(message):
        value = int(m.group(1))
        reset_at = value / 1000.0 if value > 10**11 else float(value)
    elif m := _RELATIVE.search(message):
        total = sum(float(n) * _UNIT_SECONDS[u[0].lower()] for n, u in _UNIT.findall(m.group(1)))
        reset_at = now + total
    return RateLimited(reset_at=reset_at, message=message.strip())


def as_int(value: Any) -> int:
    """Token counts arrive as ints, floats, strings or nulls depending on vendor and version."""
    if isinstance(value, bool):
        return 0
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def looks_retryable(message: str) -> bool:
    """Transient-looking failures (overload, 5xx, network) are worth one more try."""
    return bool(_RETRY_WORDS.search(message))


@dataclass
class JsonLineParser:
    """Shared bookkeeping; a vendor subclass implements ``on_object`` and ``completed``.

    Defensive by design: blank lines are skipped, non-JSON lines and non-object
    JSON are counted in ``ignored_lines`` (CLIs print banners on stdout), and
    unknown event types produce no events, so a vendor adding a new event type
    never breaks a run.
    """

    provider: ClassVar[str] = "provider"
    clock: Callable[[], float] = time.time
    session_id: str | None = None
    model: str | None = None
    final_text: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    error: ProviderError | None = None
    rate_limit: RateLimited | None = None
    ignored_lines: int = 0
    denials: list[PermissionDenied] = dataclasses.field(default_factory=list)
    calls: dict[str, ToolCall] = dataclasses.field(default_factory=dict)

    def feed(self, line: str) -> list[ProviderEvent]:
        line = line.strip()
        if not line:
            return []
        try:
            obj = json.loads(line)
        except ValueError:
            self.ignored_lines += 1
            return []
        if not isinstance(obj, dict):
            self.ignored_lines += 1
            return []
        out = self.on_object(obj)
        for event in out:
            self.record(event)
        return out

    def on_object(self, obj: dict[str, Any]) -> list[ProviderEvent]:
        raise NotImplementedError

    def completed(self, exit_code: int | None) -> bool:
        """Did the vendor signal a finished run? Vendor-specific."""
        raise NotImplementedError

    def record(self, event: ProviderEvent) -> None:
        """Fold one event into the run totals (``feed`` does this for parsed lines)."""
        if isinstance(event, SessionStarted):
            self.session_id = event.session_id
            self.model = event.model or self.model
        elif isinstance(event, Usage):
            self.input_tokens += event.input_tokens
            self.output_tokens += event.output_tokens
            if event.cost_usd is not None:
                self.cost_usd = (self.cost_usd or 0.0) + event.cost_usd
        elif isinstance(event, RateLimited):
            self.rate_limit = event
        elif isinstance(event, ProviderError) and self.error is None:
            self.error = event
        elif isinstance(event, Final):
            self.final_text = event.text
        elif isinstance(event, ToolCall):
            self.calls[event.id] = event
        elif isinstance(event, PermissionDenied) and all(d.id != event.id or not d.id for d in self.denials):
            self.denials.append(event)

    def denied(self, tool_id: str, tool: str, message: str) -> PermissionDenied:
        """A denial of the call ``tool_id``, its input summarized from the call seen before it."""
        call = self.calls.get(tool_id)
        summary = summarize_input(call.input) if call is not None else ""
        return PermissionDenied(tool or (call.name if call else ""), summary, " ".join(message.split()), tool_id)

    def error_or_rate_limit(self, message: str, retryable: bool | None = None) -> ProviderEvent:
        """One vendor failure message, classified as a rate limit or an error."""
        limited = rate_limit_from_text(message, self.clock())
        if limited is not None:
            return limited
        return ProviderError(message, looks_retryable(message) if retryable is None else retryable)

    def finish(self, exit_code: int | None) -> RunResult:
        error = self.error
        if error is None and self.rate_limit is None and not self.completed(exit_code):
            error = ProviderError(_abnormal_end(self.provider, exit_code), retryable=True)
        return RunResult(
            provider=self.provider,
            session_id=self.session_id,
            final_text=self.final_text or "",
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cost_usd=self.cost_usd,
            error=error,
            rate_limit=self.rate_limit,
            exit_code=exit_code,
            ignored_lines=self.ignored_lines,
            denials=tuple(self.denials),
        )


def summarize_input(value: dict[str, Any], limit: int = 200) -> str:
    """A tool's input on one line: its command or path when it has one, else compact JSON."""
    for key in ("command", "cmd", "file_path", "filePath", "path", "url", "pattern"):
        if isinstance(value.get(key), str):
            text = value[key]
            break
    else:
        text = json.dumps(value, sort_keys=True)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _abnormal_end(provider: str, exit_code: int | None) -> str:
    if exit_code is None:
        return f"{provider} ended without a final event"
    if exit_code < 0:
        return f"{provider} {ExitReason.from_status(exit_code).describe()} before finishing its run"
    if exit_code == 0:
        return f"{provider} exited 0 without a final event (truncated stream)"
    return f"{provider} exited with code {exit_code} before finishing its run"
