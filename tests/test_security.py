"""Security findings (issue 15), each reproduced as an attack against the real CLI or daemon."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import Env


def _plugin_folder(root: Path, name: str) -> Path:
    folder = root / "plug"
    folder.mkdir(parents=True)
    run = folder / "run.sh"
    run.write_text("#!/bin/sh\nexit 0\n")
    run.chmod(0o755)
    (folder / "animus-plugin.yaml").write_text(yaml.safe_dump(
        {"name": name, "role": "provider", "version": "0.0.1", "command": [str(run)]}))
    return folder


@pytest.mark.parametrize("name", ["../../victim", "../victim", "/tmp/victim", "a/b", "..", "Victim", ".hidden", ""])
def test_a_manifest_name_cannot_point_outside_the_plugins_folder(env: Env, tmp_path: Path, name: str) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    (env.home / "plugins").mkdir(parents=True)
    folder = _plugin_folder(tmp_path / "src", name)
    out = env.run("plugin", "install", str(folder))
    assert out.returncode == 2, out.stderr
    assert "plugin name" in out.stderr and "fix:" in out.stderr and len(out.stderr.strip().splitlines()) <= 2
    assert (victim / "precious.txt").read_text() == "keep me"
    assert sorted(p.name for p in (env.home / "plugins").iterdir()) in ([], [".plugins.lock"])
    assert not (env.home / "plugins.yaml").exists() or "victim" not in (env.home / "plugins.yaml").read_text()
