"""Provider engines: run an agent CLI (or an OpenAI-compatible API) and normalize what it says.

One module per vendor (``claude``, ``codex``, ``gemini``, ``opencode``), each
with the same surface: ``build_argv(...)``, ``StreamParser`` (``feed(line)`` ->
events, ``finish(exit_code)`` -> ``RunResult``), ``install_hint``,
``env_required`` and ``version(binary)``. ``cli_process.run_cli`` runs any of
them under the process rules (own group, die with parent, TERM -> 2 s -> KILL).
``oai`` talks HTTP instead. ``verdict`` reads the phase decision out of the
final text. The engines know nothing about plugins or JSON-RPC: ``plugin``
(the provider plugin classes) and ``run_contract`` (the ``agent/run`` params,
result and bus events) wire them to the host, and are not imported here.
"""

from __future__ import annotations

from types import ModuleType

from animus.plugins.providers.claude import engine as claude
from animus.plugins.providers.codex import engine as codex
from animus.plugins.providers.gemini import engine as gemini
from animus.plugins.providers.oai import engine as oai
from animus.plugins.providers.opencode import engine as opencode
from animus.plugins.providers.cli_process import probe_version, run_cli, terminate_group
from animus.plugins.providers.events import (
    EnvVar,
    Final,
    ProviderError,
    ProviderEvent,
    RateLimited,
    RunResult,
    SessionStarted,
    StreamParser,
    TextDelta,
    ToolCall,
    ToolResult,
    Usage,
)
from animus.plugins.providers.verdict import (
    VerdictError,
    decide,
    extract_verdict,
    verdict_instructions,
)

__all__ = [
    "CLI_VENDORS",
    "EnvVar",
    "Final",
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
    "VerdictError",
    "claude",
    "codex",
    "decide",
    "extract_verdict",
    "gemini",
    "oai",
    "opencode",
    "probe_version",
    "run_cli",
    "terminate_group",
    "verdict_instructions",
]

# Vendor name -> module; each module has the same surface (see the docstring).
CLI_VENDORS: dict[str, ModuleType] = {
    "claude": claude,
    "codex": codex,
    "gemini": gemini,
    "opencode": opencode,
}
