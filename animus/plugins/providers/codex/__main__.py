"""Entry point: ``python -m animus.plugins.providers.codex`` (started by the daemon)."""

from animus.plugins.providers.codex.plugin import CodexProvider
from animus.plugin_runtime.sdk import run_plugin

if __name__ == "__main__":
    run_plugin(CodexProvider)
