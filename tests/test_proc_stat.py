"""A process's create time from /proc agrees with psutil's: the sweeps compare the two."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from animus.process.proc_stat import create_time_of
from animus.workflow.git_settings import GitSettings


def test_create_time_is_psutils_even_for_a_name_with_parentheses(tmp_path: Path) -> None:
    odd = tmp_path / "x) (y z"  # the name in /proc/<pid>/stat, between parentheses, holds ") ("
    odd.symlink_to(sys.executable)
    proc = subprocess.Popen([str(odd), "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        for pid in (1, os.getpid(), proc.pid):
            assert abs(create_time_of(pid) - psutil.Process(pid).create_time()) < 0.01, pid
    finally:
        proc.communicate(b"")
    with pytest.raises(OSError):
        create_time_of(proc.pid)  # reaped: gone


def test_git_settings_from_the_environment_are_parsed_once_per_text() -> None:
    text = GitSettings().to_env()
    first = GitSettings.from_env(text)
    assert GitSettings.from_env(text) is first  # what the zygote's warm-up leaves for the next runner
    other = GitSettings.from_env(text.replace('"startup_cleanup": true', '"startup_cleanup": false'))
    assert other.startup_cleanup is False and first.startup_cleanup is True
    assert GitSettings.from_env(None) == GitSettings()
