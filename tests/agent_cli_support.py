"""Driving the real agent CLIs (installed by ``scripts/install-agent-clis``) against ``agent_cli_server``.

Shared by ``tests/test_agent_clis.py``, the stream recorder
(``tests/fixtures/providers/record_streams.py``) and ``bench/provider_overhead.py``:
where the CLIs are, the pinned versions, and the environment that points each
CLI at the scripted server (a private ``HOME``, so runs never touch the
operator's own CLI logins, and nothing leaves the machine).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS = Path(os.environ.get("ANIMUS_AGENT_CLIS") or ROOT / ".tools" / "agent-clis")
BIN = TOOLS / "node_modules" / ".bin"
VENDORS = ("claude", "codex", "gemini", "opencode")
# A model per CLI: Gemini must get one (its "auto" router asks the model server first).
MODELS = {"claude": "claude-sonnet-4-6", "codex": "gpt-5-codex", "gemini": "gemini-2.5-pro",
          "opencode": "scripted/coder"}
_PACKAGES = {"claude": "@anthropic-ai/claude-code", "codex": "@openai/codex", "gemini": "@google/gemini-cli",
             "opencode": "opencode-ai"}


def pinned_versions() -> dict[str, str]:
    """The versions ``scripts/install-agent-clis`` installs, read from the script itself."""
    text = (ROOT / "scripts" / "install-agent-clis").read_text()
    out = {}
    for vendor, package in _PACKAGES.items():
        found = re.search(rf'"{re.escape(package)}@([0-9][^"]*)"', text)
        assert found, f"no pin for {package} in scripts/install-agent-clis"
        out[vendor] = found.group(1)
    return out


def binary(vendor: str) -> Path:
    return BIN / vendor


def missing() -> list[str]:
    return [v for v in VENDORS if not os.access(binary(v), os.X_OK)]


def install_hint() -> str:
    return f"agent CLIs not installed under {TOOLS}: run scripts/install-agent-clis (make test does)"


def cli_environment(base: dict[str, str], server_url: str, home: Path) -> dict[str, str]:
    """``base`` plus what points every CLI at the scripted server; ``home`` becomes their HOME."""
    home.mkdir(parents=True, exist_ok=True)
    (home / ".codex").mkdir(exist_ok=True)
    # Gemini CLI 0.61.0 behind GOOGLE_GEMINI_BASE_URL needs the auth type chosen in the user's settings
    (home / ".gemini").mkdir(exist_ok=True)
    (home / ".gemini" / "settings.json").write_text(json.dumps({"security": {"auth": {"selectedType": "gemini-api-key"}}}))
    opencode = {"$schema": "https://opencode.ai/config.json", "provider": {"scripted": {
        "npm": "@ai-sdk/openai-compatible", "name": "Scripted",
        "options": {"baseURL": f"{server_url}/v1", "apiKey": "sk-scripted"},
        "models": {"coder": {"name": "coder"}}}}}
    return base | {
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": server_url, "ANTHROPIC_API_KEY": "sk-scripted",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "OPENAI_BASE_URL": f"{server_url}/v1", "OPENAI_API_KEY": "sk-scripted", "CODEX_HOME": str(home / ".codex"),
        "GOOGLE_GEMINI_BASE_URL": server_url, "GEMINI_API_KEY": "scripted-key",
        "OPENCODE_CONFIG_CONTENT": json.dumps(opencode), "OPENCODE_DISABLE_MODELS_FETCH": "1",
        "OPENCODE_DISABLE_AUTOUPDATE": "1",
    }


def plugins_config(**extra: object) -> dict[str, object]:
    """``plugins:`` for ``.animus/config.yaml``: each CLI provider on its installed binary.

    No ``env`` passthrough on purpose: every variable above reaches the plugins
    because their manifests declare it (``env_required``), as an operator's
    gateway settings must.
    """
    return {v: {"config": {"binary": str(binary(v)), "timeout": 120, **extra}} for v in VENDORS}


def version_of(vendor: str) -> str:
    out = subprocess.run([str(binary(vendor)), "--version"], capture_output=True, text=True, timeout=30).stdout
    found = re.search(r"\d+\.\d+\.\d+", out)
    assert found, f"{vendor} --version printed {out!r}"
    return found.group(0)


VERDICT = ('All done.\n```json\n{"verdict": "advance", "reason": "%s", "confidence": 0.9, '
           '"risk": "low", "evidence": [{"kind": "file", "description": "wrote it"}]}\n```')


def verdict(reason: str) -> str:
    return VERDICT % reason
