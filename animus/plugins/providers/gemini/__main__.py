"""Entry point: ``python -m animus.plugins.providers.gemini`` (started by the daemon)."""

from animus.plugins.providers.gemini.plugin import GeminiProvider
from animus.plugin_runtime.sdk import run_plugin

if __name__ == "__main__":
    run_plugin(GeminiProvider)
