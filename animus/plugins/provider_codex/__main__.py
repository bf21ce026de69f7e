"""Entry point: ``python -m animus.plugins.provider_codex`` (started by the daemon)."""

from animus.plugins.provider_codex import CodexProvider
from animus.workers.sdk import run_plugin

if __name__ == "__main__":
    run_plugin(CodexProvider)
