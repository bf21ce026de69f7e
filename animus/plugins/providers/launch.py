"""What a vendor engine adds to one CLI run for the agent's permissions: flags and environment.

Each vendor module has ``launch(permissions, env, scratch) -> Launch``: it maps
the profile's ``permissions`` (``animus.workflow.permissions``) onto the CLI's
own flags or config, and reads its gateway variables (``ANTHROPIC_BASE_URL``
and the like) from ``env``. ``scratch`` is a folder private to the run for any
file the CLI needs (a Gemini policy file); the plugin removes it afterwards.
A combination the CLI cannot express raises ``ValueError`` with the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Launch"]


@dataclass(frozen=True)
class Launch:
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
