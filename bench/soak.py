"""Soak: thousands of real kills over the whole daemon tree, then count what was lost.

    python bench/soak.py [--kills N] [--daemon-kills M] [--minutes T] [--seed S] [--json] [--keep]

A real daemon in a throwaway ANIMUS_HOME runs a mixed workload (command and
agent workflows with idempotent, side-effecting and unannotated phases, each
phase appending ``<workflow> <phase> <attempt>`` to a ledger outside Animus;
agent phases through the provider stand-ins; subject writes through four
backends; a ``daemon stream`` subscriber) while the chaos SIGKILLs plugin
workers of every role, zygotes, child supervisors, workflow runners, provider
CLIs, command phases and their children, freezes some with SIGSTOP/SIGCONT,
crash-loops sacrificial probes into their restart budget, and SIGKILLs the
daemon itself mid-phase (then ``daemon start``). The chaos stops after N kills
and M daemon kills, or after T minutes, whichever comes first (daemon kills
are spread over the run). Then every blocked run is resolved with ``workflow
resume --force`` until all complete, the daemon is stopped, and the losses
are counted (``_soak/checks.py``): each must be 0.

``--seed`` replays the schedule's choices (the machine's timing still varies).
The last line is the verdict; with ``--json`` it is one JSON object (schema
``animus.soak.v1``) whose ``ok`` says whether every loss count is zero.
Exit status 0 when it is, 1 when not, 2 when the soak could not run.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _soak import checks, setup
from _soak.chaos import Chaos, Plan
from _soak.events import LiveState, LogFollower
from _soak.summary import LOSSES, Load, Outcome, summarize
from _soak.watch import Watches
from _soak.workload import Feeder, Resolver, Resume, Stream, SubjectWriter, db_rows


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=None, help="SIGKILLs over the tree (default 300 without --minutes)")
    ap.add_argument("--daemon-kills", type=int, default=3, help="SIGKILLs of the daemon itself, each restarted")
    ap.add_argument("--minutes", type=float, default=None, help="stop the chaos after this long")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--json", action="store_true", help="the last line is a JSON summary")
    ap.add_argument("--keep", action="store_true", help="keep the soak's directory (kept anyway on a loss)")
    args = ap.parse_args(argv)
    if args.kills is None and args.minutes is None:
        args.kills = 300
    return args


def resolve_all(soak: setup.SoakEnv, resumes: list[Resume], deadline: float, watches: Watches) -> None:
    """Let every run settle, then resume the blocked ones (``workflow resume --force``, the
    operator's command) until none is left blocked or the deadline passes. The orphan checks
    of the last kills fall due meanwhile, with the daemon still up (its stop would hide a leftover)."""
    while time.monotonic() < deadline:
        watches.due()
        active = db_rows(soak, "SELECT COUNT(*) FROM workflows WHERE status IN ('pending','running')")
        if active and active[0][0]:
            time.sleep(0.5)
            continue
        blocked = [r["id"] for r in db_rows(soak, "SELECT id FROM workflows WHERE status='blocked'")]
        if not blocked:
            # and every outcome projected onto its task (the projector retries on its tick)
            if not db_rows(soak, "SELECT id FROM workflows WHERE status IN ('completed','failed','cancelled') "
                                 "AND subject_id IS NOT NULL AND (projected IS NULL OR projected != status)"):
                return
            time.sleep(0.5)
            continue
        for wf in blocked:
            sent = time.time()
            out = soak.cli("workflow", "resume", wf, "--force")
            resumes.append(Resume(wf, sent, "ok" if out.returncode == 0 else
                                  "doubt" if out.returncode == 5 else "refused"))


def stored_subjects(soak: setup.SoakEnv) -> dict[str, list[dict[str, Any]]]:
    from animus.bus.rpc import ControlClient

    client = ControlClient(soak.endpoint("control"), timeout=60)
    try:
        return {kind: client.call("subject/call", {"kind": kind, "verb": "list", "params": {}})
                for kind in ("task", "requirement", "sqlite.task", "md.task")}
    finally:
        client.close()


def chaos_phase(soak: setup.SoakEnv, args: argparse.Namespace, rng: random.Random) -> Outcome:
    """The daemon, the workload and the chaos, until the plan is done."""
    began = time.monotonic()
    setup.start_daemon(soak)
    stages = {"start": time.monotonic() - began}
    state = LiveState(setup.RESTART["healthy_window"])
    follower = LogFollower(soak.state_root / "logs" / "events.jsonl")
    stream = Stream(soak, soak.tmp / "stream.jsonl")
    stream.start()
    load = Load(Feeder(soak, rng.randrange(1 << 30)), SubjectWriter(soak, rng.randrange(1 << 30)),
                Resolver(soak, rng.randrange(1 << 30)))
    for worker in load.workers:
        worker.start()
    chaos = Chaos(soak, state, follower, rng, Plan(args.kills, args.daemon_kills, args.minutes), stream.ensure)
    chaos.up_since = stream.live_since[0]
    try:
        chaos.run()
    finally:
        chaos.release()
        for worker in load.workers:
            worker.stop()
    stages["chaos"] = chaos.elapsed()
    return Outcome(soak, chaos, load, stream, follower, began, stages)


def end_phase(run: Outcome) -> None:
    """Every blocked run resumed until all complete; the subjects read; the daemon stopped; then
    anything of the run's marker still alive anywhere is an orphan."""
    soak, mark = run.soak, time.monotonic()
    run.resumes = list(run.load.resolver.resumes)
    resolve_all(soak, run.resumes, time.monotonic() + 300, run.chaos.watches)
    run.chaos.watches.finish()
    run.stages["resolve"] = time.monotonic() - mark
    mark = time.monotonic()
    run.stored = stored_subjects(soak)
    stopped = time.time()
    run.stop_exit = soak.cli("daemon", "stop", "--shutdown-timeout-secs", "60", timeout=180).returncode
    run.chaos.close_lifetime(stopped)
    run.stream.finish()
    run.follower.close()
    run.orphans = list(run.chaos.watches.orphans)
    deadline = time.monotonic() + 10
    while (left := checks.scan_orphans(soak)) and time.monotonic() < deadline:
        time.sleep(0.2)
    run.orphans += [f"{o} alive after the final daemon stop" for o in left]
    checks.kill_marked(soak)
    run.stages["stop"] = time.monotonic() - mark


def soak_run(soak: setup.SoakEnv, args: argparse.Namespace, seed: int) -> tuple[dict[str, Any], dict[str, list[str]]]:
    run = chaos_phase(soak, args, random.Random(seed))
    end_phase(run)
    return summarize(run, seed)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    print(f"soak: seed {seed}", file=sys.stderr, flush=True)
    soak = setup.prepare()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stopped: its processes go too
    try:
        summary, details = soak_run(soak, args, seed)
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 (whatever stopped it, the JSON line says so)
        import traceback

        traceback.print_exc()
        checks.kill_marked(soak)
        print(f"soak: could not run (seed {seed}): {type(exc).__name__}: {exc}; kept {soak.tmp}", file=sys.stderr)
        if args.json:
            print(json.dumps({"schema": "animus.soak.v1", "seed": seed, "ok": False, "error": str(exc)}))
        return 2
    ok = all(summary[k] == 0 for k in LOSSES)
    summary["ok"] = ok
    for key in (*LOSSES, "unanswered_while_up"):
        for line in details[key]:
            print(f"{key}: {line}")
    if ok and not args.keep:
        setup.cleanup(soak)
    else:
        print(f"soak: kept {soak.tmp}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary))
    else:
        print(json.dumps(summary, indent=2))
        losses = ", ".join(f"{k}={summary[k]}" for k in LOSSES)
        print(f"soak seed {seed}: {summary['kills']} kills, {summary['daemon_kills']} daemon kills, "
              f"{summary['workflows']} workflows: " + ("every loss is zero" if ok else f"LOSSES: {losses}"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
