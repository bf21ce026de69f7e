"""Compile the project's workflow YAML into ``state/`` at daemon start.

The compiled form is disposable: deleting ``state/`` and starting again
rebuilds it. A validation error stops the start (nothing half-applied).
"""

from __future__ import annotations

import os

from animus.state.scope import Scope

__all__ = ["compile_project"]


def compile_project(scope: Scope) -> object:
    from animus.redact import mask_env
    from animus.workflow.config import load_workflow_config, write_compiled

    # a secret variable compiles to a reference, resolved only where it is used (animus.redact)
    cfg = load_workflow_config(scope.project_root, mask_env(os.environ))
    write_compiled(cfg, scope.state_dir)
    return cfg
