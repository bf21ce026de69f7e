"""Trigger plugins: cron, file-watcher and webhook, end to end, plus their pure parts.

The pure parts (when a cron schedule is due, debouncing, ignore globs, HMAC)
are tested with a hand-moved clock. The integration tests share one daemon
(cron, file-watcher, webhook, transport-http) whose workflow config has a
``* * * * *`` schedule and one trigger of each type; the cron plugin's
last-run state is seeded before the start so the schedule is due at once
("on time" without waiting for a minute boundary).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from conftest import Env

from animus.plugins.triggers.cron_plan import CronEntry, Firing, next_due, plan
from animus.plugins.triggers.debounce import Debouncer
from animus.plugins.triggers.globs import compile_globs
from animus.plugins.triggers.signature import sign, verify
from animus.state.scope import scope_name
from animus.testing import EventRecorder, wait_until

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures" / "transports"))
from daemon_env import Transport, daemon_env, transport  # noqa: E402

SECRET = "s3cret-for-tests"
WORKFLOWS = f"""
phases:
  note: {{mode: command, idempotency: idempotent, command: {{program: "true"}}}}
workflows:
  - id: note
    phases: [note]
default_workflow_ref: note
schedules:
  - {{id: every-minute, cron: '* * * * *', input: {{from: schedule}}}}
triggers:
  - id: src-changed
    type: file_watcher
    config: {{paths: [src], debounce_secs: 0.6, ignore: ['*.tmp', 'src/gen/**']}}
    input: {{reason: files}}
  - id: gh-push
    type: webhook
    config: {{secret: {SECRET}}}
  - id: unsigned
    type: webhook
  - id: nightly
    type: cron
    enabled: false
    config: {{cron: '0 3 * * *'}}
"""


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


# ------------------------------------------------------------------ pure parts

def test_cron_plan_fires_on_the_minute_and_only_once() -> None:
    every = [CronEntry("m", "* * * * *")]
    fires, table = plan(every, {}, at("2026-01-01T12:00:10"))
    assert fires == [] and table == {"m": at("2026-01-01T12:00:10")}  # first sight: count from now
    assert plan(every, table, at("2026-01-01T12:00:59.9"))[0] == []
    fires, table = plan(every, table, at("2026-01-01T12:01:00"))
    assert fires == [Firing("m", at("2026-01-01T12:01:00"))]
    assert plan(every, table, at("2026-01-01T12:01:30"))[0] == []  # not twice
    assert next_due("* * * * *", table["m"]) == at("2026-01-01T12:02:00")


def test_cron_plan_fires_once_after_downtime_and_forgets_removed_ids() -> None:
    table = {"h": at("2026-01-01T00:00:00"), "gone": 1.0}
    fires, table = plan([CronEntry("h", "@hourly")], table, at("2026-01-01T05:30:00"))
    assert [f.id for f in fires] == ["h"] and fires[0].due == at("2026-01-01T01:00:00")
    assert table == {"h": at("2026-01-01T05:30:00")}


def test_debouncer_waits_for_quiet_and_caps_the_wait() -> None:
    d = Debouncer(quiet=1.0, max_wait=5.0)
    d.add("a.py", "added", 10.0)
    d.add("b.py", "modified", 10.5)
    d.add("a.py", "modified", 10.9)
    assert d.take(11.8) is None
    assert d.take(11.9) == [("a.py", "modified"), ("b.py", "modified")]
    assert d.take(20.0) is None
    for i in range(12):  # never quiet: the cap lets a batch out
        d.add("busy.log", "modified", 30.0 + i * 0.5)
    assert d.take(34.9) is None and d.take(35.0) == [("busy.log", "modified")]


def test_ignore_globs() -> None:
    ignored = compile_globs(["*.tmp", "build/**", "node_modules", "docs/**/*.png", ".git"])
    for path in ("a.tmp", "src/deep/x.tmp", "build/out/x.o", "web/node_modules/y.js", "docs/a/b/c.png",
                 ".git/HEAD"):
        assert ignored(path), path
    for path in ("src/a.py", "src/build/x.o", "docs/c.txt", "tmp/a.py", "builder/x"):
        assert not ignored(path), path


def test_hmac_signature() -> None:
    body = b'{"ref":"refs/heads/main"}'
    good = sign("k", body)
    assert good.startswith("sha256=") and verify("k", body, good)
    assert not verify("k", body + b" ", good)
    assert not verify("other", body, good)
    assert not verify("k", body, None) and not verify("k", body, good.replace("sha256=", "sha1="))
    assert not verify("", body, sign("", body))


# ----------------------------------------------------------------- integration

def state_root(env: Env) -> Path:
    return env.home / scope_name(env.project)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    plugins = ["cron", "file-watcher", "webhook", "transport-http"]
    with daemon_env(tmp_path_factory.mktemp("triggers"), plugins, WORKFLOWS, start=False) as e:
        (e.project / "src").mkdir()
        seeded = state_root(e) / "triggers" / "cron.json"
        seeded.parent.mkdir(parents=True)
        seeded.write_text(json.dumps({"v": 1, "last_run": {"every-minute": time.time() - 120}}))
        e.start("--skip-preflight")
        yield e


@pytest.fixture(scope="module")
def http(env: Env) -> Iterator[Transport]:
    with transport(env) as t:
        yield t


def started_by(env: Env, source: str) -> list[dict[str, Any]]:
    rows = [w for w in env.call("workflow/list", {"limit": 200}) if w["trigger_source"] == source]
    return [env.call("workflow/get", {"id": w["id"]}) for w in rows]


def counter(env: Env, key: str) -> float:
    return float(env.call("daemon/metrics")["counters"].get(key, 0))


def plugin_call(env: Env, name: str, method: str) -> Any:
    reply = env.call("plugin/call", {"name": name, "method": method, "params": {}})
    assert "result" in reply, reply
    return reply["result"]


def test_trigger_list_shows_schedules_and_triggers(env: Env) -> None:
    rows = {r["id"]: r for r in env.json("trigger", "list")["triggers"]}
    assert {k: (r["type"], r["enabled"]) for k, r in rows.items()} == {
        "every-minute": ("cron", True), "src-changed": ("file_watcher", True), "gh-push": ("webhook", True),
        "unsigned": ("webhook", True), "nightly": ("cron", False)}
    assert rows["gh-push"]["detail"] == "POST /webhooks/gh-push"
    assert "refused" in rows["unsigned"]["detail"]
    text = env.run("trigger", "list", check=True).stdout
    assert "src-changed" in text and "file_watcher" in text


def test_cron_fires_a_due_schedule_on_time(env: Env) -> None:
    fired = wait_until(lambda: started_by(env, "cron"), timeout=20, what="the cron plugin to start the schedule")
    assert fired[0]["subject"]["input"]["from"] == "schedule"
    assert fired[0]["subject"]["input"]["schedule"] == "every-minute"
    status = {row["id"]: row for row in plugin_call(env, "cron", "cron/status")}
    assert set(status) == {"every-minute"}  # the disabled cron trigger is not scheduled
    now = time.time()
    assert now - 30 < status["every-minute"]["last_run"] <= now
    assert now < status["every-minute"]["next_due"] <= now + 60  # next minute boundary, not at once
    assert status["every-minute"]["next_due"] % 60 == 0
    wait_until(lambda: counter(env, "trigger_events_total{plugin=cron,routed=true}") >= 1, timeout=10,
               what="trigger_events_total for cron")
    listed = {r["id"]: r for r in env.call("workflow/triggers")}
    assert listed["every-minute"]["last_run"] is not None
    # the host answered the plugin's trigger/event with trigger/ack
    wait_until(lambda: plugin_call(env, "cron", "health/check")["acks"].get("dispatched", 0) >= 1, timeout=10,
               what="the cron plugin to receive trigger/ack")


def test_file_watcher_debounces_and_ignores(env: Env) -> None:
    wait_until(lambda: plugin_call(env, "file-watcher", "file_watcher/status")["live"], timeout=20,
               what="the file watch to be live")
    src = env.project / "src"
    for i in range(5):
        (src / f"module{i}.py").write_text(f"x = {i}\n")
    (src / "scratch.tmp").write_text("ignored\n")
    (src / "gen").mkdir()
    (src / "gen" / "made.py").write_text("ignored too: src/gen/** is anchored at the project root\n")
    first = wait_until(lambda: started_by(env, "file-watcher"), timeout=20, what="a file-watcher workflow")
    assert len(first) == 1, "five quick writes must make one debounced event"
    payload = first[0]["subject"]["input"]
    paths = sorted(c["path"] for c in payload["changes"])
    assert [p for p in paths if p.endswith(".py")] == [f"src/module{i}.py" for i in range(5)]
    assert not [p for p in paths if p.endswith(".tmp") or p.startswith("src/gen/")]
    assert payload["reason"] == "files"  # the trigger's input comes along

    (src / "again.tmp").write_text("ignored\n")
    (src / "late.py").write_text("y = 1\n")
    second = wait_until(lambda: (rows := started_by(env, "file-watcher")) and len(rows) == 2 and rows,
                        timeout=20, what="a second file-watcher workflow")
    newest = max(second, key=lambda w: w["created_at"])
    assert [c["path"] for c in newest["subject"]["input"]["changes"]] == ["src/late.py"]
    assert plugin_call(env, "file-watcher", "file_watcher/status")["changes_ignored"] >= 2


def test_webhook_accepts_a_valid_signature(env: Env, http: Transport) -> None:
    body = json.dumps({"ref": "refs/heads/main", "after": "abc123"}).encode()
    reply = httpx.post(f"{http.url}/webhooks/gh-push", content=body, timeout=15, headers={
        "Content-Type": "application/json", "X-GitHub-Event": "push", "X-GitHub-Delivery": "d-1",
        "X-Hub-Signature-256": sign(SECRET, body)})
    assert reply.status_code == 202, reply.text
    assert reply.json()["accepted"] is True and reply.json()["trigger_id"] == "gh-push"
    started = wait_until(lambda: started_by(env, "webhook"), timeout=20, what="the webhook's workflow")
    payload = started[0]["subject"]["input"]
    assert payload["event"] == "push" and payload["delivery"] == "d-1"
    assert payload["body"] == {"ref": "refs/heads/main", "after": "abc123"}
    wait_until(lambda: counter(env, "trigger_events_total{plugin=webhook,routed=true}") == 1, timeout=10,
               what="the routed webhook event to be counted")


def test_webhook_refuses_bad_signatures(env: Env, http: Transport) -> None:
    before = len(started_by(env, "webhook"))
    body = b'{"ref": "refs/heads/evil"}'

    def post(trigger: str, signature: str | None) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers["X-Hub-Signature-256"] = signature
        return httpx.post(f"{http.url}/webhooks/{trigger}", content=body, headers=headers, timeout=15)

    assert post("gh-push", sign("wrong-secret", body)).status_code == 401
    assert post("gh-push", sign(SECRET, body + b"tampered")).status_code == 401
    assert post("gh-push", None).status_code == 401
    assert post("unsigned", sign("", body)).status_code == 401  # no secret configured: refuse all
    refused = post("gh-push", "sha256=00")
    assert refused.json()["error"]["code"] == "unauthorized"
    unknown = post("no-such-hook", sign(SECRET, body))  # answered as a bad signature: ids stay secret
    assert (unknown.status_code, unknown.json()) == (401, refused.json())
    assert len(started_by(env, "webhook")) == before
    health = plugin_call(env, "webhook", "health/check")
    assert health["rejected"] >= 6


def test_unmatched_trigger_is_reported_and_counted(env: Env) -> None:
    proc = env.run("trigger", "fire", "no-such-trigger", "--payload", "{}")
    assert proc.returncode == 3 and "no trigger or schedule" in proc.stderr
    wait_until(lambda: counter(env, "trigger_events_total{plugin=cli,routed=false}") == 1, timeout=10,
               what="trigger_events_total{routed=false}")
    fired = env.json("trigger", "fire", "src-changed", "--payload", '{"by": "hand"}')
    wf = env.call("workflow/get", {"id": fired["workflow_id"]})
    assert wf["trigger_source"] == "cli" and wf["subject"]["input"] == {"reason": "files", "by": "hand"}
    wait_until(lambda: counter(env, "trigger_events_total{plugin=cli,routed=true}") == 1, timeout=10,
               what="the routed manual fire to be counted")


def test_disable_switch_skips_the_trigger_supervisor(tmp_path: Path) -> None:
    with daemon_env(tmp_path, ["cron"], WORKFLOWS, extra_env={"ANIMUS_DAEMON_DISABLE_TRIGGERS": "1"}) as e:
        sup = next(n for n in e.call("daemon/status")["tree"] if n["name"] == "triggers")
        assert sup["state"] == "stopped" and "ANIMUS_DAEMON_DISABLE_TRIGGERS" in sup["last_error"]
        assert "cron" not in [p["name"] for p in e.call("plugin/list")]
        assert not (state_root(e) / "triggers" / "cron.json").exists()  # the plugin never ran
        assert len(e.json("trigger", "list")["triggers"]) == 5  # the config is still listed, and
        assert e.json("trigger", "fire", "every-minute")["status"] == "dispatched"  # manual fire works


def test_a_crashing_trigger_plugin_is_disabled_after_its_restart_budget(tmp_path: Path) -> None:
    config = {"plugins": {"cron": {"config": {"tick_secs": "not-a-number"}}}}
    with daemon_env(tmp_path, ["cron"], WORKFLOWS, config=config) as e:
        def disabled() -> dict[str, Any] | None:
            for sup in e.call("daemon/status")["tree"]:
                for child in sup["children"]:
                    if child["name"] == "cron" and child["state"] == "disabled":
                        return child  # type: ignore[no-any-return]
            return None

        child = wait_until(disabled, timeout=40, what="the crash-looping cron plugin to be disabled")
        assert child["restarts"] == 5
        assert "not-a-number" in (child["last_error"] or "")
        wait_until(lambda: counter(e, "plugin_disabled_total{plugin=cron}") == 1, timeout=10,
                   what="plugin_disabled_total{plugin=cron}")
        health = e.call("daemon/health")
        assert health["daemon"]["status"] == "healthy"
        assert [r["status"] for r in health["plugins"] if r["plugin"] == "cron"] == ["unhealthy"]


def test_install_defaults_includes_triggers_on_request(env_no_daemon: Env) -> None:
    plain = env_no_daemon.json("plugin", "install-defaults")["installed"]
    assert not {"cron", "file-watcher", "webhook"} & set(plain)
    more = env_no_daemon.json("plugin", "install-defaults", "--include-triggers", "--include-transports")["installed"]
    assert set(more) == {"cron", "file-watcher", "webhook", "transport-http", "transport-graphql", "web-ui"}
    roles = {p["name"]: p["role"] for p in env_no_daemon.json("plugin", "list")["plugins"]}
    assert roles["cron"] == roles["file-watcher"] == roles["webhook"] == "trigger"
    assert roles["web-ui"] == "web-ui" and roles["transport-http"] == "transport"


@pytest.fixture
def env_no_daemon(tmp_path: Path) -> Iterator[Env]:
    with daemon_env(tmp_path, [], start=False) as e:
        yield e



EAGER = Path(__file__).resolve().parent / "fixtures" / "eager_trigger" / "eager.py"


def test_an_event_before_the_workflows_supervisor_runs_waits_for_it(tmp_path: Path) -> None:
    """Triggers start with everything else. Here the workflows supervisor cannot start for two
    seconds (it starts after the subjects, and a subject plugin hangs its handshake until the
    ready timeout), while a trigger plugin that does not wait for it fires at once: the host
    holds each event until the workflows supervisor runs, and each starts exactly one workflow."""
    with daemon_env(tmp_path, [], WORKFLOWS, config={"ready_timeout": 2}, start=False) as e:
        e.install_probe("stuck", role="subject", mode="hang_handshake", kinds="stuck")
        folder = tmp_path / "eager"
        folder.mkdir()
        (folder / "animus-plugin.yaml").write_text(yaml.safe_dump({
            "name": "eager", "role": "trigger", "version": "0.0.1", "protocol": "1.0.0",
            "command": [sys.executable, str(EAGER)]}))
        e.run("plugin", "install", str(folder), check=True)
        e.start("--skip-preflight")
        fired = wait_until(lambda: len(started_by(e, "eager")) == 2 and started_by(e, "eager"), timeout=30,
                           what="one workflow per webhook trigger")
        assert sorted(w["subject"]["title"] for w in fired) == ["trigger gh-push", "trigger unsigned"]
        acks = wait_until(lambda: (a := plugin_call(e, "eager", "health/check")["acks"]).get("dispatched") == 2 and a,
                          timeout=10, what="both events acknowledged as dispatched")
        assert set(acks) == {"dispatched"}
        recorder = EventRecorder.of_state_root(state_root(e))
        started = {ev["data"]["child"]: ev["ts"] for ev in recorder.select(["child_started"])}
        assert started["eager"] < started["workflows"]  # it fired while workflows was not up
