"""The web UI's chart numbers (``transports.charts``), from events shaped as the log holds them.

The charts themselves are checked in a browser (``test_web_ui``); here the
counting rules an operator relies on: a workflow run ending is not a
restart, a disabled plugin stays disabled until it starts again, events
outside the window do not count, and a task's cost adds up its runs.
"""

from __future__ import annotations

from typing import Any

from animus.plugins.transports.charts import HOUR, Window, cost_per_provider, cost_per_task, runs_per_hour, timeline

NOW = 1_800_000_000.0 + 1800  # half past an hour
WINDOW = Window(NOW, 3)


def ev(kind: str, ts: float, **data: Any) -> dict[str, Any]:
    return {"kind": kind, "ts": ts, "src": "supervisor/plugins:1", "seq": 1, "data": data}


def test_the_window_is_whole_hours_ending_with_this_one() -> None:
    assert WINDOW.labels() == [NOW - 1800 - 2 * HOUR, NOW - 1800 - HOUR, NOW - 1800]
    assert (WINDOW.slot(NOW), WINDOW.slot(NOW - 1800 - 2 * HOUR), WINDOW.slot(NOW - 1800 - 2 * HOUR - 1)) == (2, 0, None)


def test_timeline_has_crashes_restarts_and_disabled_spans_but_not_runs_ending() -> None:
    events = [
        ev("child_exited", NOW - 600, child="claude", supervisor="providers", requested=False, reason="killed by SIGKILL"),
        ev("child_restarting", NOW - 595, child="claude", supervisor="providers", restart=1, delay=0.0),
        ev("child_started", NOW - 590, child="claude", supervisor="providers", restarts=1),
        ev("child_exited", NOW - 500, child="wf-1", supervisor="workflows", requested=False, reason="exit 1"),
        ev("child_started", NOW - 9 * HOUR, child="gemini", supervisor="providers", restarts=0),
        ev("plugin_disabled", NOW - 400, plugin="gemini", child="gemini", supervisor="providers"),
        ev("child_exited", NOW - 300, child="web-ui", supervisor="transports", requested=True, reason="stopped"),
    ]
    rows = {row["child"]: row for row in timeline(events, WINDOW)}
    assert set(rows) == {"claude", "gemini"}  # a run's exit and a requested stop are no trouble
    assert [m["kind"] for m in rows["claude"]["marks"]] == ["crashed", "restarted"]
    assert rows["claude"]["marks"][0]["reason"] == "killed by SIGKILL"
    assert rows["gemini"]["disabled"] == [[NOW - 400, None]]  # still disabled
    later = timeline([*events, ev("child_started", NOW - 100, child="gemini", supervisor="providers", restarts=4)],
                     WINDOW)
    assert next(r for r in later if r["child"] == "gemini")["disabled"] == [[NOW - 400, NOW - 100]]


def test_runs_and_cost_are_counted_per_hour_inside_the_window() -> None:
    ended = [ev("workflow_completed", NOW - 60), ev("workflow_completed", NOW - HOUR),
             ev("workflow_failed", NOW - 60), ev("workflow_completed", NOW - 5 * HOUR),
             {**ev("workflow_failed", NOW - 60), "src": "remote/node-1"}]  # a remote client ends nothing
    series = runs_per_hour(ended, WINDOW)
    assert series["completed"] == [0, 1, 1] and series["failed"] == [0, 0, 1] and series["blocked"] == [0, 0, 0]
    phases = [ev("phase_completed", NOW - 60, provider="claude", usage={"cost_usd": 0.25}),
              ev("phase_completed", NOW - 70, provider="claude", usage={"cost_usd": 0.5}),
              ev("phase_completed", NOW - HOUR, provider="codex", usage={"cost_usd": 1.0}),
              ev("phase_completed", NOW - 60, provider=None, usage={})]  # a command phase costs nothing
    assert cost_per_provider(phases, WINDOW) == {"claude": [0.0, 0.0, 0.75], "codex": [0.0, 1.0, 0.0]}


def test_a_tasks_cost_adds_up_its_runs() -> None:
    runs = [{"id": "wf-1", "subject_id": "task:T-1", "usage": {"cost_usd": 0.5}},
            {"id": "wf-2", "subject_id": "task:T-1", "usage": {"cost_usd": 0.25}},
            {"id": "wf-3", "subject_id": None, "usage": {"cost_usd": 1.0}},
            {"id": "wf-4", "subject_id": "task:T-2", "usage": {}}]
    assert cost_per_task(runs) == [{"task": "wf-3", "cost_usd": 1.0, "runs": 1},
                                   {"task": "task:T-1", "cost_usd": 0.75, "runs": 2}]
