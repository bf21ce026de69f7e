"""Entry point: ``python -m animus.plugins.providers.oai`` (started by the daemon)."""

from animus.plugins.providers.oai.plugin import OaiProviderPlugin
from animus.plugin_runtime.sdk import run_plugin

if __name__ == "__main__":
    run_plugin(OaiProviderPlugin)
