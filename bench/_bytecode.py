"""Shared by the benchmarks: measure with bytecode compiled, as an installed animus runs.

Not a benchmark itself. With ``PYTHONDONTWRITEBYTECODE`` set (some shells and
CI images set it), every process of the tree would compile every module it
imports on every start, which is not what an operator's machine does.
"""

from __future__ import annotations

import compileall
import os
from pathlib import Path

__all__ = ["compile_package"]


def compile_package() -> str:
    """Compile ``animus/`` and let the measured processes write bytecode; say so for the header."""
    compileall.compile_dir(str(Path(__file__).resolve().parents[1] / "animus"), quiet=1)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    return "bytecode compiled"
