"""The ``oai`` provider plugin: any OpenAI-compatible chat-completions server.

Config: ``base_url`` (or ``OPENAI_BASE_URL``), ``model``, ``api_key_env``
(default ``OPENAI_API_KEY``), ``max_retries``, ``timeout``. Sessions are the
saved message histories under ``<state root>/providers/oai/sessions/``; the
engine is ``animus.plugins.providers.oai.engine``.
"""

from __future__ import annotations

from animus.plugins.providers.plugin import OaiProviderPlugin

__all__ = ["OaiProviderPlugin"]
