"""The ``claude`` provider plugin: Claude Code as an Animus agent provider.

Runs ``claude -p <prompt> --output-format stream-json --verbose``;
resume with ``--resume <session_id>``.
The engine (argv, stream parser) is ``animus.plugins.providers.claude.engine``; the
plugin methods are ``animus.plugins.providers.plugin.CliProviderPlugin``.
"""

from __future__ import annotations

from typing import ClassVar

from animus.plugins.providers.claude import engine as claude
from animus.plugins.providers.plugin import CliProviderPlugin, CliVendor, env_dicts

__all__ = ["ClaudeProvider"]


class ClaudeProvider(CliProviderPlugin):
    name = claude.NAME
    vendor: ClassVar[CliVendor] = claude
    description = "Claude Code (claude -p --output-format stream-json) as an agent provider"
    env_required = env_dicts(claude.env_required)
