"""`.animus/config.yaml`: every bad value is one line naming the key, and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from animus.daemon.config import load_daemon_config
from animus.errors import InvalidInput


def _load(tmp_path: Path, body: str):  # type: ignore[no-untyped-def]
    (tmp_path / ".animus").mkdir(exist_ok=True)
    (tmp_path / ".animus" / "config.yaml").write_text(body)
    return load_daemon_config(tmp_path)


def test_no_file_is_the_defaults(tmp_path: Path) -> None:
    cfg = load_daemon_config(tmp_path)
    assert (cfg.pool_size, cfg.interval_secs, cfg.bus_tcp) == (2, 5.0, ())


def test_good_values_are_read(tmp_path: Path) -> None:
    cfg = _load(tmp_path, "pool_size: 3\ninterval_secs: 0.5\nsupervisor: {intensity: 7, period: 2}\n"
                          "bus: {tcp: tcp://127.0.0.1:5999}\ncommands: {env: [CARGO_HOME]}\n")
    assert (cfg.pool_size, cfg.interval_secs, cfg.intensity, cfg.period) == (3, 0.5, 7, 2.0)
    assert cfg.bus_tcp == ("tcp://127.0.0.1:5999",) and cfg.command_env == ("CARGO_HOME",)


@pytest.mark.parametrize(("body", "key", "says"), [
    ("pool_size: 0", "pool_size", "expected a whole number >= 1, got 0"),
    ("pool_size: many", "pool_size", "got 'many'"),
    ("pool_size: true", "pool_size", "got True"),
    ("interval_secs: soon", "interval_secs", "expected a number >= 0.01, got 'soon'"),
    ("ready_timeout: [1]", "ready_timeout", "got [1]"),
    ("supervisor: 3", "supervisor", "expected a mapping, got 3"),
    ("supervisor: {intensity: -1}", "supervisor.intensity", "got -1"),
    ("bus: {tcp: [udp://x]}", "bus.tcp", "expected tcp://host:port"),
    ("commands: {env: [1-2]}", "commands.env", "expected a list of environment variable names"),
    ("pool: 2", "pool", "unknown key"),
    ("pool_size: [", "file", "not valid YAML"),
])
def test_a_bad_value_names_its_key_and_the_fix(tmp_path: Path, body: str, key: str, says: str) -> None:
    with pytest.raises(InvalidInput) as err:
        _load(tmp_path, body + "\n")
    message = str(err.value)
    assert f"config.yaml: {key}: " in message and says in message and "\n" not in message
    assert err.value.fix is not None and "docs/configuration.md" in err.value.fix
