"""Entry point: ``python -m animus.plugins.providers.opencode`` (started by the daemon)."""

from animus.plugins.providers.opencode.plugin import OpencodeProvider
from animus.plugin_runtime.sdk import run_plugin

if __name__ == "__main__":
    run_plugin(OpencodeProvider)
