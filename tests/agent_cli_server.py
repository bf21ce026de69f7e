"""A scripted loopback model server for the real agent CLIs (Claude Code, Codex, Gemini, opencode).

The vendors' APIs cannot be reached from tests, so one stdlib HTTP server on
127.0.0.1 speaks each vendor's real streaming wire format as its CLI uses it
(the encodings are in ``agent_cli_wire``): Anthropic Messages SSE
(``/v1/messages``), OpenAI Responses SSE (``/v1/responses``, Codex), OpenAI
Chat Completions SSE (``/v1/chat/completions``, opencode) and Gemini
``streamGenerateContent?alt=sse``.

A test registers a *script* and puts its marker (``[script:<name>]``) in the
prompt (the last marker in a conversation counts: a resumed history holds the
earlier prompts too). The step a request gets is the number of tool results already in
its conversation: step 0 answers the prompt, step 1 answers the first tool
result, and so on, so a resumed conversation (the history replayed) picks up
where the script left off. Requests without tools (a CLI's own side calls,
such as a title or a next-speaker check) get a short plain answer and do not
advance the script. Every request is recorded with the script it matched,
so a test can check what the CLI sent (the resumed history, the tool result
of a denied call).
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import agent_cli_wire as wire

__all__ = ["Fail", "Hold", "McpTool", "Recorded", "Say", "ScriptedModels", "Shell", "WriteFile"]

_MARKER = re.compile(r"\[script:([A-Za-z0-9_.-]+)\]")


@dataclass(frozen=True)
class Shell:
    """Ask the CLI's shell tool to run ``command`` in its working directory."""

    command: str


@dataclass(frozen=True)
class WriteFile:
    """Ask the CLI's file-writing tool to write ``content`` to ``path`` (relative to its cwd)."""

    path: str
    content: str


@dataclass(frozen=True)
class McpTool:
    """Call ``tool`` of the MCP server ``server`` by whatever name the CLI gave it in the request
    (``mcp__animus__subject_status``, ``animus_subject_status`` …)."""

    tool: str
    arguments: dict[str, Any]
    server: str = "animus"


@dataclass(frozen=True)
class Say:
    """Answer with text and end the turn."""

    text: str


@dataclass(frozen=True)
class Fail:
    """Answer with the vendor's rate-limit error: HTTP 429, its error body, ``Retry-After``."""

    retry_after: int = 30


@dataclass(frozen=True)
class Hold:
    """The first request at this step is held open until ``release(gate)``; later ones get ``then``."""

    gate: str
    then: Shell | WriteFile | Say


Step = Shell | WriteFile | McpTool | Say | Fail | Hold


@dataclass(frozen=True)
class Recorded:
    vendor: str
    path: str
    body: dict[str, Any]
    script: str | None
    step: int | None

    @property
    def text(self) -> str:
        return json.dumps(self.body)


@dataclass
class _Script:
    steps: tuple[Step, ...]
    held: set[int] = field(default_factory=set)


class ScriptedModels:
    """One server for a whole test session; scripts are told apart by their marker."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._scripts: dict[str, _Script] = {}
        self._gates: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def close(self) -> None:
        for gate in self._gates.values():
            gate.set()
        self._server.shutdown()
        self._server.server_close()

    def script(self, name: str, *steps: Step) -> str:
        """Register a script; returns the marker to put in the prompt."""
        with self._lock:
            self._scripts[name] = _Script(tuple(steps))
            for step in steps:
                if isinstance(step, Hold):
                    self._gates.setdefault(step.gate, threading.Event())
        return f"[script:{name}]"

    def release(self, gate: str) -> None:
        self._gates[gate].set()

    def seen(self, name: str, vendor: str | None = None) -> list[Recorded]:
        """The scripted (tool-carrying) requests that matched ``name``, oldest first."""
        with self._lock:
            return [r for r in self.requests if r.script == name and r.step is not None
                    and (vendor is None or r.vendor == vendor)]

    # -- serving -------------------------------------------------------------
    def pick(self, vendor: str, path: str, body: dict[str, Any]) -> tuple[str | None, Step | None]:
        """Which script and step answer this request; (None, None) for a side call."""
        text = json.dumps(body)
        names = _MARKER.findall(text)
        name = names[-1] if names else None  # the latest prompt (a resumed history holds earlier ones)
        scripted = wire.has_tools(vendor, body) and name is not None
        index = wire.tool_results(vendor, body) if scripted else None
        with self._lock:
            self.requests.append(Recorded(vendor, path, body, name, index))
            script = self._scripts.get(name or "") if scripted else None
        if script is None or index is None:
            return name, None
        step = script.steps[min(index, len(script.steps) - 1)]
        if isinstance(step, Hold):
            if index in script.held or self._gates[step.gate].is_set():
                return name, step.then
            script.held.add(index)
            return name, step
        return name, step

    def wait_gate(self, gate: str, timeout: float) -> None:
        self._gates[gate].wait(timeout)


def _handler(models: ScriptedModels) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_HEAD(self) -> None:
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            vendor = wire.vendor_of(self.path)
            self._json(200, wire.models_list(vendor))

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b"{}"
            try:
                body = json.loads(raw)
            except ValueError:
                self._json(400, {"error": {"message": "body is not JSON"}})
                return
            vendor = wire.vendor_of(self.path)
            if vendor is None:
                self._json(404, {"error": {"message": f"no such endpoint {self.path}"}})
                return
            if not wire.is_stream(vendor, self.path, body):
                self._json(200, wire.plain_reply(vendor, body, "ok"))
                return
            _, step = models.pick(vendor, self.path, body)
            if isinstance(step, Hold):
                models.wait_gate(step.gate, 120)
                self.close_connection = True
                return  # the CLI was killed meanwhile; nothing to answer
            if isinstance(step, Fail):
                self._json(429, wire.rate_limit_body(vendor, step.retry_after),
                           {"retry-after": str(step.retry_after)})
                return
            events = wire.stream(vendor, body, step if step is not None else Say("ok"))
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("cache-control", "no-cache")
            self.send_header("connection", "close")
            self.end_headers()
            self.close_connection = True
            try:
                for chunk in events:
                    self.wfile.write(chunk)
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _json(self, status: int, data: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            out = json.dumps(data).encode()
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

    return Handler
