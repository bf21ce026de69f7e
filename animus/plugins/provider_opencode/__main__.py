"""Entry point: ``python -m animus.plugins.provider_opencode`` (started by the daemon)."""

from animus.plugins.provider_opencode import OpencodeProvider
from animus.workers.sdk import run_plugin

if __name__ == "__main__":
    run_plugin(OpencodeProvider)
