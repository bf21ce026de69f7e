"""HTTP transport to Linear's GraphQL API: one request, rate-limit retries, error mapping.

Stdlib ``urllib`` rather than ``httpx``: the backend makes a few synchronous
requests per call, and a new dependency would buy nothing here.

Rate limits: Linear answers HTTP 429 and/or a GraphQL error whose
``extensions.code`` is ``RATELIMITED``. The transport waits ``Retry-After``
seconds (else until ``X-RateLimit-Requests-Reset``, which Linear sends in
epoch milliseconds; else an exponential backoff), capped at
``max_retry_wait``, and retries up to ``max_retries`` times. Then it raises
``Unavailable`` saying when the limit resets, so a workflow blocks with a
reason instead of hammering the API. ``sleep`` and ``clock`` are injected so
tests check the waits without waiting.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from animus.errors import AnimusError, InvalidInput, NotFound, Unavailable

from .model import format_timestamp

__all__ = ["LinearTransport", "DEFAULT_URL", "API_KEY_ENV", "retry_delay", "map_error"]

DEFAULT_URL = "https://api.linear.app/graphql"
API_KEY_ENV = "LINEAR_API_KEY"


@dataclass
class LinearTransport:
    api_key: str = field(repr=False)
    base_url: str = DEFAULT_URL
    timeout: float = 10
    max_retries: int = 3
    max_retry_wait: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time

    def _post(self, body: bytes) -> tuple[int, Mapping[str, str], Any]:
        request = urllib.request.Request(
            self.base_url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": self.api_key},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status, headers, raw = response.status, response.headers, response.read()
        except urllib.error.HTTPError as exc:  # 4xx/5xx still carry a GraphQL body
            status, headers, raw = exc.code, exc.headers, exc.read()
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise Unavailable(f"Linear API unreachable at {self.base_url}: {reason}") from None
        try:
            payload = json.loads(raw or b"null")
        except ValueError:
            payload = None
        return status, headers, payload

    def execute(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """One GraphQL request with rate-limit retries; returns ``data`` or raises."""
        body = json.dumps({"query": query, "variables": dict(variables or {})}).encode()
        for attempt in range(self.max_retries + 1):
            status, headers, payload = self._post(body)
            errors = payload.get("errors") if isinstance(payload, dict) else None
            if status == 429 or any(_code(e) == "RATELIMITED" for e in errors or ()):
                wait, reset_at = retry_delay(headers, self.clock(), attempt)
                if attempt == self.max_retries:
                    raise Unavailable(
                        f"Linear rate limit still exceeded after {self.max_retries} retries;"
                        f" it resets at {reset_at}",
                        fix="wait until then, or lower the request rate",
                        details={"reset_at": reset_at, "retry_after": wait},
                    )
                self.sleep(min(wait, self.max_retry_wait))
                continue
            if errors:
                raise map_error(errors[0], status)
            data = payload.get("data") if isinstance(payload, dict) else None
            if not isinstance(data, dict):
                raise Unavailable(f"Linear replied with HTTP {status} and no GraphQL data")
            return data
        raise AssertionError("unreachable")  # the loop either returns or raises


def retry_delay(headers: Mapping[str, str], now: float, attempt: int) -> tuple[float, str]:
    """Seconds to wait and the RFC 3339 reset time, from the rate-limit headers."""
    wait: float | None = None
    value = headers.get("Retry-After")
    if value:
        try:
            wait = float(value)
        except ValueError:
            try:
                wait = parsedate_to_datetime(value).timestamp() - now
            except (TypeError, ValueError):
                wait = None
    reset = headers.get("X-RateLimit-Requests-Reset")
    if wait is None and reset:
        try:
            stamp = float(reset)
            wait = (stamp / 1000 if stamp > 1e11 else stamp) - now
        except ValueError:
            wait = None
    wait = max(0.0, wait if wait is not None else float(2**attempt))
    return wait, format_timestamp(datetime.fromtimestamp(now + wait, UTC))


def _code(error: Any) -> str:
    extensions = error.get("extensions") if isinstance(error, dict) else None
    return str((extensions or {}).get("code") or "").upper()


def map_error(error: Mapping[str, Any], status: int) -> AnimusError:
    """Linear's first GraphQL error as an operator-facing error."""
    extensions = error.get("extensions") or {}
    message = str(
        extensions.get("userPresentableMessage") or error.get("message") or "unknown error"
    )
    kind = str(extensions.get("type") or "").lower()
    code = _code(error)
    if code == "AUTHENTICATION_ERROR" or kind == "authentication error" or status == 401:
        return InvalidInput(
            f"Linear rejected the API key: {message}",
            fix=f"check {API_KEY_ENV} (Linear → Settings → API)",
        )
    if code == "FORBIDDEN" or kind == "forbidden" or status == 403:
        return InvalidInput(
            f"Linear refused access: {message}", fix="give the API key access to this team"
        )
    if "not found" in str(error.get("message") or "").lower():
        return NotFound(f"Linear: {message}")
    if extensions.get("userError") or kind == "invalid input" or code == "INPUT_ERROR":
        return InvalidInput(f"Linear rejected the request: {message}")
    return Unavailable(f"Linear API error: {message}")
