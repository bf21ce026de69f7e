"""OpenAI-compatible ``/v1/chat/completions`` provider (vLLM, llama.cpp, Ollama, OpenRouter, ...).

Why stdlib ``urllib``: one streaming POST with a handful of headers needs no
connection pool or async client, and the plugin stays free of extra
dependencies; ``httpx`` would add nothing the retry loop below needs.

Wire format: ``stream: true`` server-sent events, one ``data: {...}`` chunk per
delta (``choices[0].delta.content``), ``data: [DONE]`` at the end; with
``stream_options.include_usage`` the last chunk has empty ``choices`` and a
``usage{prompt_tokens, completion_tokens}``.

Failures: 429 and 5xx (and unreachable servers) are retried with exponential
backoff, honouring ``Retry-After`` (seconds or an HTTP date). No single wait
exceeds ``max_backoff``; a 429 whose ``Retry-After`` is longer than that, or
one still there when retries run out, raises ``OaiRateLimited`` carrying a
``RateLimited`` event with the reset time, so the scheduler can park the phase
instead of holding a worker. Other failures raise ``OaiError`` carrying a
``ProviderError``. A request that already streamed text is never retried
(the text has been forwarded). Cancellation is checked between chunks.

Sessions: the API is stateless, so a session is the message history, saved
as ``<state_dir>/sessions/<session_id>.json`` (write, fsync, rename) after each
successful turn; ``resume(session_id, prompt)`` sends the history again.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

from animus.plugins.providers.events import (
    EnvVar,
    Final,
    ProviderError,
    ProviderEvent,
    RateLimited,
    RunResult,
    SessionStarted,
    TextDelta,
    Usage,
    as_dict,
    as_int,
    looks_retryable,
)

__all__ = [
    "NAME",
    "OaiClient",
    "OaiConfig",
    "OaiError",
    "OaiRateLimited",
    "SessionStore",
    "chat_url",
    "env_required",
    "install_hint",
    "retry_after_seconds",
]

NAME = "oai"
install_hint = "nothing to install: point base_url at any OpenAI-compatible server"
env_required: tuple[EnvVar, ...] = (
    EnvVar("OPENAI_API_KEY", "bearer token for the server (local servers often need none)"),
    EnvVar("OPENAI_BASE_URL", "server base URL, e.g. http://127.0.0.1:8000/v1", sensitive=False),
)
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
OnEvent = Callable[[ProviderEvent], None]


@dataclass(frozen=True)
class OaiConfig:
    base_url: str
    model: str
    state_dir: Path
    api_key: str | None = None
    timeout: float = 300.0  # per socket read; a slow model may think for minutes
    max_retries: int = 4
    backoff_base: float = 1.0
    max_backoff: float = 60.0  # cap on any one wait, Retry-After included
    include_usage: bool = True  # some older servers reject stream_options


class OaiError(Exception):
    def __init__(self, event: ProviderError, status: int | None = None) -> None:
        super().__init__(event.message)
        self.event: ProviderEvent = event
        self.status = status


class OaiRateLimited(OaiError):
    def __init__(self, event: RateLimited, attempts: int) -> None:
        super().__init__(ProviderError(event.message, retryable=True), 429)
        self.event = event
        self.rate_limited = event
        self.attempts = attempts


def chat_url(base_url: str) -> str:
    """``.../v1`` (OpenAI's convention) gets ``/chat/completions``; a bare host gets ``/v1/...``."""
    base = base_url.rstrip("/")
    if re.search(r"/v\d+$", urlsplit(base).path):
        return base + "/chat/completions"
    return base + "/v1/chat/completions"


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """``Retry-After`` is either delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


class SessionStore:
    """Message histories, one JSON file per session, replaced atomically."""

    def __init__(self, state_dir: Path) -> None:
        self.root = Path(state_dir) / "sessions"

    def path(self, session_id: str) -> Path:
        if not _SESSION_ID.match(session_id):
            raise OaiError(ProviderError(f"invalid session id {session_id!r}", retryable=False))
        return self.root / f"{session_id}.json"

    def load(self, session_id: str) -> list[dict[str, Any]]:
        try:
            data = json.loads(self.path(session_id).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise OaiError(
                ProviderError(f"no saved oai session {session_id}", retryable=False)
            ) from None
        messages = data.get("messages") if isinstance(data, dict) else None
        if not isinstance(messages, list):
            raise OaiError(ProviderError(f"oai session {session_id} is corrupt", retryable=False))
        return messages

    def save(self, session_id: str, model: str, messages: list[dict[str, Any]]) -> None:
        path = self.path(session_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp.{os.getpid()}")
        body = {
            "session_id": session_id,
            "model": model,
            "updated_at": time.time(),
            "messages": messages,
        }
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(body, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)


class OaiClient:
    provider = NAME

    def __init__(
        self,
        config: OaiConfig,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.sessions = SessionStore(config.state_dir)
        self._sleep = sleep
        self._clock = clock

    def run(
        self,
        prompt: str,
        system_prompt: str | None = None,
        on_event: OnEvent | None = None,
        cancel: threading.Event | None = None,
    ) -> RunResult:
        """Start a new session; its id is in the result and the first event."""
        history = [{"role": "system", "content": system_prompt}] if system_prompt else []
        return self._turn(uuid.uuid4().hex, history, prompt, on_event, cancel)

    def resume(
        self,
        session_id: str,
        prompt: str,
        on_event: OnEvent | None = None,
        cancel: threading.Event | None = None,
    ) -> RunResult:
        """Continue a saved session: the whole history is sent again, then ``prompt``."""
        return self._turn(session_id, self.sessions.load(session_id), prompt, on_event, cancel)

    def _turn(
        self,
        session_id: str,
        history: list[dict[str, Any]],
        prompt: str,
        on_event: OnEvent | None,
        cancel: threading.Event | None,
    ) -> RunResult:
        emit: OnEvent = on_event or (lambda _event: None)
        messages = history + [{"role": "user", "content": prompt}]
        emit(SessionStarted(session_id, self.config.model))
        body: dict[str, Any] = {"model": self.config.model, "messages": messages, "stream": True}
        if self.config.include_usage:
            body["stream_options"] = {"include_usage": True}
        text, usage = self._complete(json.dumps(body).encode(), emit, cancel)
        self.sessions.save(
            session_id, self.config.model, messages + [{"role": "assistant", "content": text}]
        )
        if usage is not None:
            emit(usage)
        emit(Final(text))
        return RunResult(
            provider=NAME,
            session_id=session_id,
            final_text=text,
            input_tokens=usage.input_tokens if usage else 0,
            output_tokens=usage.output_tokens if usage else 0,
        )

    def _complete(
        self, body: bytes, emit: OnEvent, cancel: threading.Event | None
    ) -> tuple[str, Usage | None]:
        """POST with retries; retry only while nothing has been forwarded yet."""
        attempt = 0
        while True:
            wait: float | None = None
            streamed = [False]
            try:
                return self._post(body, emit, cancel, streamed)
            except HTTPError as exc:
                status, detail = exc.code, _error_detail(exc)
                wait = retry_after_seconds(exc.headers.get("Retry-After"), self._clock())
                exc.close()
                if status not in RETRY_STATUSES:
                    raise OaiError(
                        ProviderError(f"oai: HTTP {status}: {detail}", retryable=False), status
                    ) from None
                if status == 429 and (
                    attempt >= self.config.max_retries or (wait or 0) > self.config.max_backoff
                ):
                    reset = self._clock() + wait if wait is not None else None
                    raise OaiRateLimited(
                        RateLimited(reset, f"oai: rate limited (HTTP 429): {detail}"), attempt + 1
                    ) from None
                if attempt >= self.config.max_retries:
                    message = f"oai: HTTP {status} after {attempt + 1} attempts: {detail}"
                    raise OaiError(ProviderError(message, retryable=True), status) from None
            except (URLError, OSError, http.client.HTTPException) as exc:
                if streamed[0] or attempt >= self.config.max_retries:
                    reason = getattr(exc, "reason", exc)
                    raise OaiError(
                        ProviderError(f"oai: {self.url}: {reason}", retryable=True)
                    ) from None
            delay = wait if wait is not None else self.config.backoff_base * 2**attempt
            self._pause(min(delay, self.config.max_backoff), cancel)
            attempt += 1

    @property
    def url(self) -> str:
        return chat_url(self.config.base_url)

    def _pause(self, seconds: float, cancel: threading.Event | None) -> None:
        if self._sleep is not None:
            self._sleep(seconds)
        elif cancel is not None:
            if cancel.wait(seconds):
                raise OaiError(ProviderError("cancelled", retryable=False))
        else:
            time.sleep(seconds)

    def _post(
        self, body: bytes, emit: OnEvent, cancel: threading.Event | None, streamed: list[bool]
    ) -> tuple[str, Usage | None]:
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
            "User-Agent": "animus",
        }
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        request = Request(self.url, data=body, headers=headers, method="POST")
        with urlopen(request, timeout=self.config.timeout) as resp:
            if resp.headers.get_content_type() == "application/json":  # server ignored stream: true
                return _whole(json.loads(resp.read() or b"{}"), emit)
            parts: list[str] = []
            usage: Usage | None = None
            finished = False  # [DONE] or a finish_reason; anything else is a cut connection
            for raw in resp:
                if cancel is not None and cancel.is_set():
                    raise OaiError(ProviderError("cancelled", retryable=False))
                line = raw.decode("utf-8", errors="replace").strip()
                if not line.startswith("data:"):
                    continue  # comments, event:, id:, keep-alives
                data = line[5:].strip()
                if data == "[DONE]":
                    finished = True
                    break
                try:
                    chunk = json.loads(data)
                except ValueError:
                    continue
                if not isinstance(chunk, dict):
                    continue
                if "error" in chunk:
                    message = str(as_dict(chunk["error"]).get("message") or chunk["error"])
                    raise OaiError(ProviderError(f"oai: {message}", looks_retryable(message)))
                if isinstance(chunk.get("usage"), dict):
                    usage = _usage(chunk["usage"])
                for choice in chunk.get("choices") or []:
                    finished = finished or bool(as_dict(choice).get("finish_reason"))
                    content = as_dict(as_dict(choice).get("delta")).get("content")
                    if isinstance(content, str) and content:
                        streamed[0] = True
                        parts.append(content)
                        emit(TextDelta(content))
            if not finished:
                raise http.client.IncompleteRead(b"".join(p.encode() for p in parts))
            return "".join(parts), usage


def _usage(raw: dict[str, Any]) -> Usage:
    return Usage(as_int(raw.get("prompt_tokens")), as_int(raw.get("completion_tokens")), None)


def _whole(body: Any, emit: OnEvent) -> tuple[str, Usage | None]:
    choices = as_dict(body).get("choices") or [{}]
    text = as_dict(as_dict(choices[0]).get("message")).get("content") or ""
    if text:
        emit(TextDelta(str(text)))
    usage = as_dict(body).get("usage")
    return str(text), _usage(usage) if isinstance(usage, dict) else None


def _error_detail(exc: HTTPError) -> str:
    """The server's own error message, one line, short."""
    try:
        raw = exc.read(4096).decode("utf-8", errors="replace")
    except OSError:
        return exc.reason if isinstance(exc.reason, str) else str(exc.reason)
    try:
        message = as_dict(as_dict(json.loads(raw)).get("error")).get("message")
    except ValueError:
        message = None
    return " ".join(str(message or raw or exc.reason).split())[:300]
