"""Backup and restore: ``daemon backup`` online, ``daemon restore`` all or nothing, and the runbook's scripts.

- A backup taken while the daemon runs restores into a new ``ANIMUS_HOME``
  (and back into the same one) with what existed at backup time; a damaged
  archive or a running daemon changes nothing (exit 2, exit 4).
- The runbook's section 4 snapshot script, as pasted (only ``/backups`` and
  ``/path/to/project`` point into the test's folder), then its restore
  commands on an emptied ``~/.animus``, then its section 6 corrupt-``state/``
  procedure: each works, and ``--auto-install`` brings back a plugin whose
  folder was lost.
- A restore killed in the middle of its swap is finished by the next start.
- A record at the pre-0.5.1 place (``plugins/plugins.yaml``) is moved beside
  the folder on first use.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from animus.plugin_runtime.registry import Registry
from animus.state.backup import BackupSources, create_backup
from animus.state.restore import JOURNAL, RestoreTargets, finish_interrupted, read_verified, stage_restore
from animus.state.files import atomic_json
from animus.state.scope import scope_name
from conftest import Env, stop_daemons

ROOT = Path(__file__).resolve().parents[1]
SIGNERS = "trusted_signers:\n  - publisher: acme\n    identity: ^https://github\\.com/acme/.*\n" \
          "    issuer: https://token.actions.githubusercontent.com\n"
OAI_ONLY = """\
default_workflow_ref: ship
agents:
  coder: {tool: oai, model: scripted/coder}
phases:
  implement: {mode: agent, agent: coder, idempotency: sideeffecting, directive: Implement the task.}
workflows:
  - id: ship
    phases: [implement]
"""
OAI_CONFIG = {"plugins": {"oai": {"config": {"base_url": "http://127.0.0.1:9/v1"}}}}


def titles(env: Env) -> list[str]:
    return sorted(s["title"] for s in env.json("subject", "list", "--kind", "task")["subjects"])


def test_online_backup_restores_into_a_new_home_and_the_same_one(env: Env, tmp_path: Path) -> None:
    env.write_workflows(OAI_ONLY)
    for name in ("oai", "default"):
        env.run("plugin", "install", name, check=True)
    (env.home / "trusted-signers.yaml").write_text(SIGNERS)
    env.start("--skip-preflight")
    for title in ("alpha", "beta"):
        env.run("subject", "create", "--title", title, "--status", "ready", check=True)
    out = env.json("daemon", "backup", "--dest", str(tmp_path / "bk"))
    archive = Path(out["archive"])
    assert out["schema"] == "animus.daemon.backup.v1" and out["daemon_running"] is True
    assert archive.parent == tmp_path / "bk" and oct(archive.stat().st_mode & 0o777) == "0o600"
    manifest = read_verified(archive)
    paths = {f["path"] for f in manifest["files"]}
    assert {"scope/workflow.db", "scope/logs/events.jsonl", "scope/state/workflow-config.v1.json",
            "project/.animus/workflows.yaml", "home/plugins.yaml", "home/trusted-signers.yaml",
            "home/plugins/oai/animus-plugin.yaml"} <= paths
    env.run("subject", "create", "--title", "after the backup", check=True)

    running = env.run("daemon", "restore", str(archive))
    assert running.returncode == 4 and "fix: animus daemon stop, then animus daemon restore" in running.stderr

    # a new ANIMUS_HOME; first a damaged archive (one file's bytes changed, sizes kept): nothing restored
    other = Env(tmp_path / "home2", env.project, dict(env.env, ANIMUS_HOME=str(tmp_path / "home2")))
    damaged = tmp_path / "damaged.tar.gz"
    _rewrite(archive, damaged, "project/.animus/workflows.yaml", lambda b: b.replace(b"oai", b"xyz"))
    bad = other.run("daemon", "restore", str(damaged), "--json")
    assert bad.returncode == 2 and "does not match its checksum" in json.loads(bad.stderr)["error"]["message"]
    assert not other.home.exists() or not any(other.home.iterdir())
    assert "oai" in (env.project / ".animus" / "workflows.yaml").read_text()
    # then the real one: what existed at backup time, plugins pointing into the new home
    restored = other.json("daemon", "restore", str(archive))
    assert restored["restored"] == ["home/plugins", "home/plugins.yaml", "home/trusted-signers.yaml",
                                    "project/.animus", "scope"]
    assert (other.home / "trusted-signers.yaml").read_text() == SIGNERS
    assert Registry(other.home / "plugins").entries()["oai"]["path"] == str(other.home / "plugins" / "oai")
    env.run("daemon", "stop", check=True)
    try:
        other.start()
        assert titles(other) == ["alpha", "beta"]
        assert {p["name"] for p in other.json("plugin", "list")["plugins"]} == {"oai", "default"}
    finally:
        stop_daemons(other)

    # the same home, daemon stopped, and the restore killed after the first part's two renames:
    # the next start finishes it (everything was verified and staged before the journal existed)
    targets = RestoreTargets(env.home, env.home / scope_name(env.project), env.project, env.home / "plugins",
                             env.home / "plugins.yaml", env.home / "trusted-signers.yaml")
    staged = stage_restore(archive, read_verified(archive), targets)
    swaps = [{"target": str(targets.of(p)), "staged": str(w), "old": str(w).replace(".restore-", ".old-")}
             for p, w in staged.items()]
    atomic_json(env.home / JOURNAL, {"swaps": swaps})
    os.replace(swaps[0]["target"], swaps[0]["old"])
    os.replace(swaps[0]["staged"], swaps[0]["target"])
    env.start("--skip-preflight")
    assert not (env.home / JOURNAL).exists() and titles(env) == ["alpha", "beta"]
    assert not [p for p in env.home.rglob("*") if re.search(r"\.(restore|old)-[0-9a-f]{8}$", p.name)]
    assert finish_interrupted(env.home) is False


def _rewrite(src: Path, dest: Path, name: str, change: object) -> None:
    with tarfile.open(src, "r:gz") as tin, tarfile.open(dest, "w:gz") as tout:
        for member in tin.getmembers():
            data = tin.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            if member.name == name and data is not None:
                data = change(data)  # type: ignore[operator]
            tout.addfile(member, io.BytesIO(data) if data is not None else None)


# -- the runbook's own scripts --------------------------------------------------------------------

SNAPSHOT = """\
#!/bin/bash
SCOPE=$(animus doctor --json | jq -r '.repo_scope')
DEST=/backups/animus-$(date +%Y%m%d-%H%M%S)
mkdir -p "$DEST"
animus daemon stop # quiesce writers
tar czf "$DEST/project-animus.tar.gz" -C /path/to/project .animus
tar czf "$DEST/scoped-state.tar.gz" -C ~/.animus "$SCOPE"
tar czf "$DEST/plugins.tar.gz" -C ~/.animus plugins plugins.yaml trusted-signers.yaml 2>/dev/null
animus daemon start --autonomous
"""
RESTORE = """\
animus daemon stop
tar xzf project-animus.tar.gz -C /path/to/project
tar xzf scoped-state.tar.gz -C ~/.animus
tar xzf plugins.tar.gz -C ~/.animus
animus daemon start --autonomous --auto-install # re-installs plugins if any missing
animus daemon preflight # verify
animus daemon health # verify
"""
CORRUPT_STATE = """\
animus daemon stop
mv ~/.animus/<scope>/state ~/.animus/<scope>/state.broken-$(date +%s)
animus daemon start --autonomous # daemon rebuilds compiled config
animus daemon preflight # verify
"""


def _runbook_matches() -> None:
    """The scripts above are the runbook's, where the runbook is at hand (the shared spec)."""
    for path in (ROOT.parent / "shared" / "spec" / "operator-runbook.txt", Path("/work/shared/spec/operator-runbook.txt")):
        if path.exists():
            text = path.read_text()
            for script in (SNAPSHOT, RESTORE, CORRUPT_STATE):
                assert script.rstrip("\n") in text, f"the runbook's script changed:\n{script}"
            return


def _bash(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", script], env=env, cwd=cwd, capture_output=True, text=True, timeout=180)


def test_runbook_backup_restore_and_corrupt_state_scripts_work_as_pasted(env: Env, tmp_path: Path) -> None:
    _runbook_matches()
    home = tmp_path / "user"  # the scripts say ~/.animus: HOME decides it, ANIMUS_HOME is unset
    animus_dir = home / ".animus"
    shell = {k: v for k, v in env.env.items() if k != "ANIMUS_HOME"}
    shell.update(HOME=str(home), PATH=f"{Path(sys.executable).parent}{os.pathsep}{shell['PATH']}")
    user = Env(animus_dir, env.project, shell)
    env.write_workflows(OAI_ONLY)
    env.write_config(OAI_CONFIG)
    for name in ("oai", "codex", "default"):  # a provider in use, one to lose and reinstall, a subject
        user.run("plugin", "install", name, check=True)
    (animus_dir / "trusted-signers.yaml").write_text(SIGNERS)
    user.start("--autonomous")
    try:
        _snapshot_restore_and_repair(env, user, tmp_path)
    finally:
        stop_daemons(user)  # the env fixture knows only its own home's daemons


def _snapshot_restore_and_repair(env: Env, user: Env, tmp_path: Path) -> None:
    animus_dir, shell = user.home, user.env
    user.run("subject", "create", "--title", "kept", check=True)
    backups = tmp_path / "backups"
    place = {"/backups/": f"{backups}/", "/path/to/project": str(env.project)}

    snap = _bash(_sub(SNAPSHOT, place), shell, env.project)
    assert snap.returncode == 0, snap.stderr
    (dest,) = backups.iterdir()
    user.started.append(user.status()["pid"])
    with tarfile.open(dest / "plugins.tar.gz") as tar:
        names = set(tar.getnames())
    assert {"plugins", "plugins.yaml", "trusted-signers.yaml", "plugins/oai/animus-plugin.yaml"} <= names

    # disaster: the whole ~/.animus is gone but for the project; restore as the runbook says
    user.run("daemon", "stop", check=True)
    shutil.rmtree(animus_dir)
    animus_dir.mkdir()
    shutil.rmtree(env.project / ".animus")
    restore = RESTORE.replace("tar xzf plugins.tar.gz -C ~/.animus",
                              "tar xzf plugins.tar.gz -C ~/.animus && rm -r ~/.animus/plugins/codex")
    # the restore's tar lines name the archives relative to the backup folder, so it runs there,
    # and PROJECT_ROOT tells animus which project it is about (the runbook leaves that implicit)
    done = _bash(f"cd {dest}\n" + _sub(restore, place) + "echo health=$?\n",
                 dict(shell, PROJECT_ROOT=str(env.project)), env.project)
    assert done.stdout.strip().endswith("health=0"), done.stdout + done.stderr
    user.started.append(user.status()["pid"])
    assert "Daemon preflight OK" in done.stdout and (animus_dir / "plugins" / "codex" / "animus-plugin.yaml").exists()
    assert [s["title"] for s in user.json("subject", "list", "--kind", "task")["subjects"]] == ["kept"]

    # runbook section 6: a corrupt state/ is moved aside and rebuilt
    scope = scope_name(env.project)
    state = animus_dir / scope / "state"
    (state / "workflow-config.v1.json").write_text("{not json")
    fixed = _bash(CORRUPT_STATE.replace("<scope>", scope), shell, env.project)
    assert fixed.returncode == 0 and "Daemon preflight OK" in fixed.stdout, fixed.stderr
    user.started.append(user.status()["pid"])
    assert len(list((animus_dir / scope).glob("state.broken-*"))) == 1
    assert json.loads((state / "workflow-config.v1.json").read_text())["schema"] == "animus.workflow.compiled.v1"
    assert [s["title"] for s in user.json("subject", "list", "--kind", "task")["subjects"]] == ["kept"]


def _sub(script: str, place: dict[str, str]) -> str:
    for old, new in place.items():
        script = script.replace(old, new)
    return script


# -- the old record's place; a backup without a daemon ----------------------------------------------


def test_the_plugin_record_moves_beside_the_folder_on_first_use(tmp_path: Path) -> None:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "plugins.yaml").write_text("schema: animus.plugins.v1\nplugins:\n  x: {role: provider, path: /p/x}\n")
    registry = Registry(folder)
    assert registry.entries() == {"x": {"role": "provider", "path": "/p/x"}}
    assert (tmp_path / "plugins.yaml").exists() and not (folder / "plugins.yaml").exists()


def test_backup_needs_no_daemon_and_names_what_it_holds(tmp_path: Path) -> None:
    root = tmp_path / "home" / "scope-1"
    (root / "logs").mkdir(parents=True)
    (root / "logs" / "events.jsonl").write_bytes(b'{"a": 1}\n{"b": 2, "torn')  # a line still being written
    (root / "run").mkdir()
    (root / "run" / "control").write_text("socket")
    sources = BackupSources("scope-1", root, tmp_path / "project", tmp_path / "home", tmp_path / "home" / "plugins",
                            tmp_path / "home" / "plugins.yaml", tmp_path / "home" / "trusted-signers.yaml")
    archive, manifest = create_backup(sources, tmp_path / "out")
    assert manifest["parts"] == {"scope": True, "project": False, "plugins": False, "plugins_record": False,
                                 "trusted_signers": False}
    assert [f["path"] for f in manifest["files"]] == ["scope/logs/events.jsonl"]  # no sockets
    with tarfile.open(archive) as tar:
        assert tar.extractfile("scope/logs/events.jsonl").read() == b'{"a": 1}\n'  # type: ignore[union-attr]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [archive.name]
