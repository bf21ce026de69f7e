"""OpenAI-compatible chat-completions servers as a provider (``oai``): sessions are saved histories."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from animus.plugins.providers.base import (
    DEFAULT_TIMEOUT,
    OnEvent,
    ProviderPlugin,
    config_error,
    env_dicts,
    timeout_of,
)
from animus.plugins.providers.events import ProviderError, ProviderEvent, RunResult, SessionStarted
from animus.plugins.providers.oai import engine as oai
from animus.plugins.providers.run_contract import RunRequest

__all__ = ["OaiProviderPlugin", "OaiSettings"]


@dataclass(frozen=True)
class OaiSettings:
    base_url: str | None
    model: str | None
    api_key_env: str = "OPENAI_API_KEY"
    max_retries: int = 4
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> OaiSettings:
        base_url = config.get("base_url") or os.environ.get("OPENAI_BASE_URL") or None
        key_env = config.get("api_key_env") or "OPENAI_API_KEY"
        retries = config.get("max_retries", 4)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise config_error(
                "oai", "max_retries", f"must be a whole number >= 0, got {retries!r}"
            )
        for key, value in (
            ("base_url", base_url),
            ("api_key_env", key_env),
            ("model", config.get("model")),
        ):
            if value is not None and not isinstance(value, str):
                raise config_error("oai", key, f"must be a string, got {value!r}")
        return cls(
            base_url, config.get("model") or None, key_env, retries, timeout_of(config, "oai")
        )


class OaiProviderPlugin(ProviderPlugin):
    """An OpenAI-compatible chat-completions server as a provider; sessions are saved histories."""

    name = oai.NAME
    description = (
        "Any OpenAI-compatible chat-completions server (vLLM, llama.cpp, Ollama, OpenRouter, ...)"
        " as an agent provider"
    )
    env_required = env_dicts(oai.env_required)

    def settings(self) -> OaiSettings:
        return OaiSettings.from_config(self.config)

    def state_dir(self) -> Path:
        return Path(self.state_root or ".") / "providers" / "oai"

    health_blocks = False  # the settings only: no request to the API

    def health(self) -> dict[str, Any]:
        try:
            settings = self.settings()
        except ValueError as exc:
            return {"status": "unhealthy", "last_error": str(exc)}
        if not settings.base_url:
            return {
                "status": "unhealthy",
                "last_error": "base_url is not configured: set "
                "plugins.oai.config.base_url in .animus/config.yaml (or pass OPENAI_BASE_URL)",
            }
        return {
            "status": "healthy",
            "base_url": settings.base_url,
            "model": settings.model,
            "api_key_env": settings.api_key_env,
            "api_key_set": bool(os.environ.get(settings.api_key_env)),
            "last_error": self.last_error,
        }

    def execute(self, request: RunRequest, on_event: OnEvent, cancel: threading.Event) -> RunResult:
        try:
            client, limit = self._client(request)
        except ValueError as exc:
            return RunResult(self.name, error=ProviderError(str(exc)))
        timed_out = threading.Event()

        def forward(event: ProviderEvent) -> None:
            # A new history exists only once its first turn is saved, so its id is not
            # announced before that: a session_file must never name a session that cannot resume.
            if request.session_id or not isinstance(event, SessionStarted):
                on_event(event)

        def expire() -> None:
            timed_out.set()
            cancel.set()

        timer = threading.Timer(limit, expire)
        timer.daemon = True
        timer.start()
        session_id = request.session_id
        try:
            if request.session_id:
                return client.resume(request.session_id, request.full_prompt(), forward, cancel)
            return client.run(request.full_prompt(), request.system_prompt, forward, cancel)
        except oai.OaiRateLimited as exc:
            forward(exc.rate_limited)
            return RunResult(self.name, session_id=session_id, rate_limit=exc.rate_limited)
        except oai.OaiError as exc:
            message = f"oai timed out after {limit:g}s" if timed_out.is_set() else str(exc)
            return RunResult(self.name, session_id=session_id, error=ProviderError(message))
        finally:
            timer.cancel()

    def _client(self, request: RunRequest) -> tuple[oai.OaiClient, float]:
        """The API client for this request and its time limit; ValueError says what is missing."""
        settings = self.settings()
        if request.mcp_servers:  # silently dropping them would leave the agent without tools it was promised
            raise ValueError(
                "oai has no tool use, so it cannot give the agent the MCP servers its profile names (fix: remove "
                "mcp_servers from the agent profile, or use an agent CLI: claude, codex, gemini, opencode)")
        model = request.model or settings.model
        if not settings.base_url or not model:
            missing = "base_url" if not settings.base_url else "model"
            raise ValueError(f"oai: no {missing} configured (plugins.oai.config.{missing} in .animus/config.yaml)")
        limit = request.timeout or settings.timeout
        return oai.OaiClient(oai.OaiConfig(
            base_url=settings.base_url, model=model, state_dir=self.state_dir(),
            api_key=os.environ.get(settings.api_key_env) or None,
            timeout=min(limit, oai.OaiConfig.timeout), max_retries=settings.max_retries,
        )), limit
