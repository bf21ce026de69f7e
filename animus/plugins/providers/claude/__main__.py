"""Entry point: ``python -m animus.plugins.providers.claude`` (started by the daemon)."""

from animus.plugins.providers.claude.plugin import ClaudeProvider
from animus.plugin_runtime.sdk import run_plugin

if __name__ == "__main__":
    run_plugin(ClaudeProvider)
