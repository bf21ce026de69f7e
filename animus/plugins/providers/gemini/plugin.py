"""The ``gemini`` provider plugin: the Gemini CLI as an Animus agent provider.

Runs ``gemini --output-format stream-json --prompt <prompt>``;
resume with ``--resume <session_id>``.
The engine (argv, stream parser) is ``animus.plugins.providers.gemini.engine``; the
plugin methods are ``animus.plugins.providers.plugin.CliProviderPlugin``.
"""

from __future__ import annotations

from typing import ClassVar

from animus.plugins.providers.gemini import engine as gemini
from animus.plugins.providers.plugin import CliProviderPlugin, CliVendor, env_dicts

__all__ = ["GeminiProvider"]


class GeminiProvider(CliProviderPlugin):
    name = gemini.NAME
    vendor: ClassVar[CliVendor] = gemini
    description = "Gemini CLI (gemini --output-format stream-json) as an agent provider"
    env_required = env_dicts(gemini.env_required)
