"""Entry point: ``python -m animus.plugins.provider_claude`` (started by the daemon)."""

from animus.plugins.provider_claude import ClaudeProvider
from animus.workers.sdk import run_plugin

if __name__ == "__main__":
    run_plugin(ClaudeProvider)
