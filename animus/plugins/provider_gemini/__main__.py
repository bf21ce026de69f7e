"""Entry point: ``python -m animus.plugins.provider_gemini`` (started by the daemon)."""

from animus.plugins.provider_gemini import GeminiProvider
from animus.workers.sdk import run_plugin

if __name__ == "__main__":
    run_plugin(GeminiProvider)
