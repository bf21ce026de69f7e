"""animus doctor: environment checks, each failure with its fix.

JSON (schema ``animus.doctor.v1``) carries ``repo_scope``, ``state_root`` and
``animus_home`` at the top level so that the runbook's backup script works:
``animus doctor --json | jq -r '.repo_scope'``.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from typing import Any

import typer

from animus import __version__
from animus.cli import context
from animus.cli.output import echo, emit_json, guard


def _check(name: str, ok: bool, detail: str, fix: str | None = None, level: str = "fail") -> dict[str, Any]:
    return {"check": name, "status": "pass" if ok else level, "detail": detail, "fix": None if ok else fix}


def run_checks() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    scope = context.scope()
    checks = [_check("python", sys.version_info >= (3, 11), sys.version.split()[0],
                     "install Python 3.11 or newer")]
    checks.append(_check("project root", scope.warning is None, str(scope.project_root),
                         "run animus inside the git repository it should manage (or pass --project-root)", "warn"))
    home = scope.home
    try:
        home.mkdir(parents=True, exist_ok=True)
        writable = os.access(home, os.W_OK)
    except OSError:
        writable = False
    checks.append(_check("animus home", writable, str(home), f"make {home} writable, or set ANIMUS_HOME"))
    run_dir = scope.root / "run"
    if run_dir.exists():
        mode = stat.S_IMODE(run_dir.stat().st_mode)
        checks.append(_check("socket dir private", mode == 0o700, f"{run_dir} mode {mode:o}", f"chmod 700 {run_dir}"))
    free = shutil.disk_usage(home if home.exists() else "/").free
    checks.append(_check("disk space", free > 200 * 1024 * 1024, f"{free // (1024 * 1024)} MiB free",
                         "free disk space under ANIMUS_HOME", "warn"))
    checks.append(_check("git", shutil.which("git") is not None, shutil.which("git") or "not found",
                         "install git (apt install git)"))
    from animus.plugin_runtime.preflight import preflight

    try:
        report = preflight(scope)
        counts = ", ".join(f"{k}: {len(v)}" for k, v in report["satisfied"].items())
        checks.append(_check("plugins", report["ok"], counts, report["fix_message"]))
    except Exception as exc:
        checks.append(_check("plugins", False, str(exc), "animus plugin install-defaults --include-subjects"))
    from animus.cli.daemon_start import running_pid

    pid = running_pid(scope) if scope.root.exists() else None
    checks.append(_check("daemon", bool(pid), f"running (pid {pid})" if pid else "not running",
                         "animus daemon start", "warn"))
    for tool, hint in (("claude", "npm install -g @anthropic-ai/claude-code"), ("codex", "npm install -g @openai/codex"),
                       ("gemini", "npm install -g @google/gemini-cli"), ("opencode", "npm install -g opencode-ai")):
        found = shutil.which(tool)
        checks.append(_check(f"{tool} CLI", found is not None, found or "not found", hint, "info"))
    summary = {
        "version": __version__,
        "repo_scope": scope.name,
        "state_root": str(scope.root),
        "animus_home": str(scope.home),
        "project_root": str(scope.project_root),
        "ok": all(c["status"] != "fail" for c in checks),
    }
    return summary, checks


def doctor(as_json: bool = typer.Option(False, "--json", help="One compact JSON line (schema animus.doctor.v1).")) -> None:
    """Check the environment and print a fix for every problem."""

    def body() -> int:
        summary, checks = run_checks()
        if as_json:
            emit_json("animus.doctor.v1", {**summary, "checks": checks})
        else:
            echo(f"animus {summary['version']}  scope {summary['repo_scope']}")
            echo(f"state root: {summary['state_root']}")
            for c in checks:
                mark = {"pass": "ok  ", "fail": "FAIL", "warn": "warn", "info": "info"}[c["status"]]
                echo(f"[{mark}] {c['check']:<20} {c['detail']}" + (f"\n       fix: {c['fix']}" if c["fix"] else ""))
        return 0 if summary["ok"] else 1

    guard(as_json, body)
