"""Entry point: ``python -m animus.plugins.provider_oai`` (started by the daemon)."""

from animus.plugins.provider_oai import OaiProviderPlugin
from animus.workers.sdk import run_plugin

if __name__ == "__main__":
    run_plugin(OaiProviderPlugin)
