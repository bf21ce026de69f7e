"""The soak harness, short: 250 kills and 3 daemon kills over the whole tree, and nothing lost.

``bench/soak.py`` is the harness (run it long by hand: ``--kills 10000
--daemon-kills 100``); the test command runs it short, with a fixed seed, so
that it cannot rot. It is a subprocess with a throwaway ANIMUS_HOME under
this test's tmp_path and its own marker in the environment of every process
it starts, so it runs beside other tests (xdist) without touching them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.chaos

SOAK = Path(__file__).resolve().parents[2] / "bench" / "soak.py"
SEED = 16
LOSSES = ("lost_workflows", "duplicate_side_effects", "orphans", "budget_mismatches", "lost_events",
          "lost_records", "duplicate_records")


def test_two_hundred_fifty_kills_and_three_daemon_kills_lose_nothing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANIMUS_")}
    env["TMPDIR"] = str(tmp_path)  # the soak's home, project and ledger: gone with tmp_path
    proc = subprocess.run([sys.executable, str(SOAK), "--kills", "250", "--daemon-kills", "3", "--seed", str(SEED),
                           "--json"], capture_output=True, text=True, env=env, timeout=280, check=False)
    lines = proc.stdout.strip().splitlines()
    assert lines, f"the soak printed nothing (exit {proc.returncode}): {proc.stderr[-3000:]}"
    summary = json.loads(lines[-1])
    print(lines[-1])
    assert "error" not in summary, proc.stderr[-3000:]
    # what it did: the planned chaos, spread over the tree, some of it mid side-effect
    assert summary["kills"] >= 250 and summary["daemon_kills"] == 3
    assert summary["kills_by_kind"].get("runner", 0) > 0 and summary["kills_by_kind"].get("command", 0) > 0
    assert set(summary["worker_kills_by_role"]) == {"provider", "subject", "trigger", "transport"}
    assert summary["side_effecting_kills"] >= 1, "no kill landed while a side-effecting phase ran"
    assert summary["workflows"] > 0 and summary["forced_resumes"] >= 1
    # and each loss count had something to count: not zero for want of material
    assert summary["ledger"]["side_effecting_lines"] > 0 and summary["subject_writes"] > 0
    assert summary["stream"]["stream_received"] > 0 and summary["budget"]["restarts"] > 0
    # what it lost: nothing (the details are the lines before the summary)
    assert {k: summary[k] for k in LOSSES} == {k: 0 for k in LOSSES}, "\n".join(lines[-40:])
    assert summary["ok"] is True and proc.returncode == 0
