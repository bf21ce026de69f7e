"""The ``opencode`` provider plugin: opencode as an Animus agent provider.

Runs ``opencode run --format json <prompt>``;
resume with ``--session <session_id>``.
The engine (argv, stream parser) is ``animus.plugins.providers.opencode.engine``; the
plugin methods are ``animus.plugins.providers.plugin.CliProviderPlugin``.
"""

from __future__ import annotations

from typing import ClassVar

from animus.plugins.providers.opencode import engine as opencode
from animus.plugins.providers.plugin import CliProviderPlugin, CliVendor, env_dicts

__all__ = ["OpencodeProvider"]


class OpencodeProvider(CliProviderPlugin):
    name = opencode.NAME
    vendor: ClassVar[CliVendor] = opencode
    description = "opencode (opencode run --format json) as an agent provider"
    env_required = env_dicts(opencode.env_required)
