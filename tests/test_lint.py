"""The package has no undefined names, unused imports or other pyflakes faults."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_pyflakes_clean() -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed (it is in the test extras: pip install -e '.[test]')")
    out = subprocess.run([ruff, "check", "--select", "F", "--output-format", "concise", "animus", "tests", "bench"],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_strict() -> None:
    mypy = Path(sys.executable).with_name("mypy")
    if not mypy.exists():
        pytest.skip("mypy is not installed (it is in the test extras: pip install -e '.[test]')")
    out = subprocess.run([str(mypy)], cwd=ROOT, capture_output=True, text=True)  # [tool.mypy] in pyproject
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
