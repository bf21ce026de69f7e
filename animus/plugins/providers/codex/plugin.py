"""The ``codex`` provider plugin: the OpenAI Codex CLI as an Animus agent provider.

Runs ``codex exec --json <prompt>``;
resume with ``codex exec --json resume <session_id> <prompt>``.
The engine (argv, stream parser) is ``animus.plugins.providers.codex.engine``; the
plugin methods are ``animus.plugins.providers.plugin.CliProviderPlugin``.
"""

from __future__ import annotations

from typing import ClassVar

from animus.plugins.providers.codex import engine as codex
from animus.plugins.providers.plugin import CliProviderPlugin, CliVendor, env_dicts

__all__ = ["CodexProvider"]


class CodexProvider(CliProviderPlugin):
    name = codex.NAME
    vendor: ClassVar[CliVendor] = codex
    description = "OpenAI Codex CLI (codex exec --json) as an agent provider"
    env_required = env_dicts(codex.env_required)
