"""The web UI in a real headless Chromium, against a real daemon with real runs.

One daemon (transport-http, web-ui, the default subject backend, and the
claude provider driving its stand-in CLI) and one browser serve the module,
in a project with a first commit, so that the ``edit`` workflow's run gets a
worktree. The operator's flows, each checked where a person would check it
(the CLI, the page):

- a task made with the New task form (opened with ``n``, submitted with
  Enter) is the record ``animus subject get`` shows; its status and priority
  change from the card's menus (and its status by dropping it on a column);
  a change made elsewhere reaches the board;
- a workflow opened from its link streams its output as it happens (command
  lines, agent tokens) and is approved from its gate;
- a run blocked by the idempotency rule is resumed with ``--force`` after a
  confirmation that names the risk; a run parked on a usage limit says so and
  is cancelled from its button;
- a finished run opened late replays its output from the log and shows its
  diff (the work it left in its worktree); an agent's permission denial (the
  claude stand-in replaying the real CLI's recorded denial) is shown plainly,
  with the failed phase's verdict, reason, tokens and cost.

- the overview's charts show a provider's crashes, restarts and being
  disabled, the runs by outcome and what they cost, as the CLI counts them;
- the workflow list filters by status, workflow and task; the keyboard
  drives it (``/``, ``j``, Enter, ``g``, ``?``); the theme follows the
  browser's dark / light preference; a narrow window needs no sideways
  scrolling;
- after a daemon restart (the page kept offline meanwhile, so it cannot
  have watched) the page reconnects and shows what it missed, once.

Screenshots of the board, the overview with its charts and workflow views
(one of them in a narrow window) are saved in the pytest temp folder (``web-ui-screenshots0``). Needs Debian's ``chromium`` and ``chromium-driver``, which
``make test`` installs; without them the tests skip saying why (and fail
under CI, where they must be).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Env

from animus.bus.publisher import Publisher
from animus.state.scope import Scope, scope_name
from animus.testing import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures" / "transports"))
sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures" / "providers"))
from daemon_env import daemon_env, first_commit  # noqa: E402
from daemon_setup import plugins_config, standin_environment  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
IDEMPOTENCY_BLOCK = "Idempotency: phase requires explicit retry decision"
WORKFLOWS = """
agents:
  coder: {tool: claude, model: claude-sonnet-4-6}
phases:
  talk:
    mode: command
    idempotency: idempotent
    command: {program: sh, args: [-c, "for i in 1 2 3; do echo tick-$i; sleep 0.2; done"]}
  gate: {mode: manual, manual: {instructions: "approve in the web UI"}}
  ship: {mode: command, idempotency: idempotent, command: {program: sh, args: [-c, "echo shipped"]}}
  risky:
    mode: command
    idempotency: sideeffecting
    command: {program: sh, args: [-c, "if [ -f MARKER ]; then echo second-try; else touch MARKER; echo first-try; sleep 120; fi"]}
  write:
    mode: command
    idempotency: idempotent
    command:
      program: sh
      cwd_mode: task_root
      args: [-c, "printf 'changed by the run\\\\n' > README.md; mkdir -p src; printf 'print(1)\\\\n' > src/hello.py; echo wrote two files"]
  implement: {mode: agent, agent: coder, idempotency: idempotent, directive: "Implement the task."}
workflows:
  - {id: live, worktree: skip, phases: [talk, gate, ship]}
  - {id: risky, worktree: skip, phases: [risky]}
  - {id: edit, phases: [write]}
  - {id: agent, worktree: skip, phases: [implement]}
default_workflow_ref: live
"""


def ensure_chromium() -> None:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(path)]
    if not missing:
        return
    why = (f"{', '.join(missing)} missing: make test installs them "
           "(or: apt-get install -y chromium chromium-driver)")
    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why)


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("web-ui-screenshots")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    ensure_chromium()
    base = tmp_path_factory.mktemp("web-ui")
    workflows = WORKFLOWS.replace("MARKER", str(base / "risky.marker"))
    plugins = plugins_config(None)
    plugins["transport-http"] = {"config": {"port": free_port()}}  # the same URL after a daemon restart
    with daemon_env(base, ["transport-http", "web-ui", "default", "claude"], workflows,
                    config={"plugins": plugins}, start=False) as e:
        e.env = standin_environment(e.env, base)
        first_commit(e, base, "the operator's project\n")
        e.start("--skip-preflight")
        yield e


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def browser(env: Env, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tmp_path_factory.mktemp("chromium-profile")
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                f"--user-data-dir={profile}", "--window-size=1280,800"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        driver.get(env.run("web", "open", check=True).stdout.strip())
        assert "token=" not in driver.current_url  # traded for a cookie
        wait_until(lambda: text_of(driver, "#conn") == "live", timeout=20, what="the page's event stream")
        yield driver
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        driver.quit()


# ------------------------------------------------------------------ helpers

def text_of(driver: Any, css: str) -> str:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        return str(driver.find_element(By.CSS_SELECTOR, css).text)
    except (NoSuchElementException, StaleElementReferenceException):
        return ""  # not (or no longer) on the page: the caller waits


def click(driver: Any, css: str) -> None:
    """Click, retrying while the page re-renders the element (a stale reference)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    def attempt() -> bool:
        try:
            element = driver.find_element(By.CSS_SELECTOR, css)
            if not (element.is_displayed() and element.is_enabled()):
                return False
            element.click()
        except StaleElementReferenceException:
            return False
        return True

    wait_until(attempt, timeout=15, what=f"to click {css}")


def choose(driver: Any, css: str, value: str) -> None:
    """Pick an option of a <select> the way a person does (the page hears a change event)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.select import Select

    def attempt() -> bool:
        try:
            Select(driver.find_element(By.CSS_SELECTOR, css)).select_by_value(value)
        except StaleElementReferenceException:
            return False
        return True

    wait_until(attempt, timeout=15, what=f"to choose {value} in {css}")


def screenshot(driver: Any, path: Path) -> None:
    """The whole page, not only what fits the window (a person scrolls; a PNG cannot)."""
    width, height = driver.get_window_size()["width"], driver.get_window_size()["height"]
    driver.set_window_size(width, min(4000, driver.execute_script("return document.body.scrollHeight") + 150))
    try:
        assert driver.save_screenshot(str(path)) and path.stat().st_size > 10_000
    finally:
        driver.set_window_size(width, height)


def open_workflow(driver: Any, wf: str) -> None:
    driver.execute_script("location.hash = '#/'")
    click(driver, f'#workflows [data-workflow="{wf}"] a.wf-link')  # every id links to its own view
    wait_until(lambda: driver.current_url.endswith(f"#/workflow/{wf}"), timeout=10, what="the workflow's URL")
    wait_until(lambda: text_of(driver, "#live-stream") == "live", timeout=20, what="the workflow's stream")


def status_of(env: Env, wf: str) -> dict[str, Any]:
    return env.call("workflow/get", {"id": wf})  # type: ignore[no-any-return]


def new_task(env: Env, title: str, description: str = "") -> str:
    return str(env.call("subject/call", {"kind": "task", "verb": "create", "params": {
        "title": title, "status": "backlog", "description": description}})["id"])


def run(env: Env, workflow: str, **params: str) -> str:
    return str(env.call("workflow/run", {"workflow_ref": workflow, **params})["workflow_id"])


# -------------------------------------------------------------------- tests

def test_the_page_never_parses_data_as_markup() -> None:
    """What the strict CSP and the no-innerHTML rule rest on, checked in the files themselves."""
    assets = Path(__file__).resolve().parents[1] / "animus" / "plugins" / "transports" / "web_ui" / "assets"
    for script in assets.glob("*.js"):
        code = "\n".join(line for line in script.read_text().splitlines() if not line.lstrip().startswith("//"))
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                     "setAttribute(\"style", "javascript:"):
            assert sink not in code, f"{script.name} uses {sink}"
    page = (assets / "index.html").read_text()
    assert "<script>" not in page and " style=" not in page and "<style" not in page  # nothing inline
    assert re.findall(r"\son[a-z]+=", page) == []  # no inline handlers


def test_a_task_from_the_form_then_moved_and_reprioritised_on_the_board(env: Env, browser: Any, shots: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    wait_until(lambda: "transport-http" in text_of(browser, "#tree"), timeout=10, what="the supervisor tree")
    wait_until(lambda: "web-ui" in text_of(browser, "#plugins"), timeout=10, what="the plugins table")
    browser.find_element(By.TAG_NAME, "body").send_keys("n")  # the New task shortcut
    wait_until(lambda: browser.find_element(By.ID, "task-dialog").get_attribute("open") is not None, timeout=5,
               what="the New task form")
    assert browser.switch_to.active_element.get_attribute("id") == "task-title"  # title focused
    browser.find_element(By.ID, "task-description").send_keys("Typed in the web UI.")
    browser.find_element(By.ID, "task-labels").send_keys("ui, board")
    choose(browser, "#task-priority", "p1")
    title = browser.find_element(By.ID, "task-title")
    title.send_keys("Ship the board")
    title.send_keys(Keys.ENTER)  # Enter submits

    def created() -> dict[str, Any] | None:
        tasks = env.json("subject", "list")["subjects"]
        return next((t for t in tasks if t["title"] == "Ship the board"), None)

    task = wait_until(created, timeout=15, what="the task in animus subject list")
    assert (task["status"], task["priority"], task["labels"]) == ("backlog", "p1", ["ui", "board"])
    assert task["description"] == "Typed in the web UI."
    assert browser.find_element(By.ID, "task-dialog").get_attribute("open") is None
    card = f'#board [data-task="{task["id"]}"]'
    wait_until(lambda: "Ship the board" in text_of(browser, f'#board [data-status="backlog"] [data-task="{task["id"]}"]'),
               timeout=10, what="the card in the backlog column")

    choose(browser, f"{card} .status-menu", "ready")
    wait_until(lambda: env.json("subject", "get", "--id", task["id"])["subject"]["status"] == "ready", timeout=15,
               what="the task to be ready")
    wait_until(lambda: task["id"] in text_of(browser, '#board [data-status="ready"]'), timeout=15,
               what="the card to move to ready")
    choose(browser, f"{card} .priority-menu", "p0")
    wait_until(lambda: env.json("subject", "get", "--id", task["id"])["subject"]["priority"] == "p0", timeout=15,
               what="the task's priority to be p0")

    # dragging the card to a column: WebDriver cannot drive HTML5 drag and drop, so the page's own
    # handlers get the browser's events (dragstart, drop with one DataTransfer) from a script
    browser.execute_script("""
        const data = new DataTransfer();
        document.querySelector(arguments[0]).dispatchEvent(new DragEvent("dragstart", {dataTransfer: data, bubbles: true}));
        document.querySelector('#board [data-status="in-progress"]').dispatchEvent(
            new DragEvent("drop", {dataTransfer: data, bubbles: true, cancelable: true}));""", card)
    wait_until(lambda: env.json("subject", "get", "--id", task["id"])["subject"]["status"] == "in-progress",
               timeout=15, what="the dragged task to be in progress")
    env.run("subject", "status", "--id", task["id"], "--status", "blocked", check=True)  # someone else
    wait_until(lambda: task["id"] in text_of(browser, '#board [data-status="blocked"]'), timeout=15,
               what="the board to follow a change made elsewhere")
    screenshot(browser, shots / "board.png")


def test_a_workflow_streams_live_and_its_gate_is_approved(env: Env, browser: Any) -> None:
    wf = run(env, "live", title="watched in a browser")
    open_workflow(browser, wf)
    wait_until(lambda: "tick-3" in text_of(browser, "#output"), timeout=20, what="the command's output")
    wait_until(lambda: "Waiting for your approval" in text_of(browser, "#wf-notices"), timeout=20,
               what="the gate to ask for approval")
    wait_until(lambda: "waiting" in text_of(browser, '#wf-phases [data-phase="gate"]'), timeout=10,
               what="the gate's row to say it waits")
    talk = text_of(browser, '#wf-phases [data-phase="talk"]')
    assert "completed" in talk and "advance" in talk and re.search(r"\d+(\.\d)? m?s\b", talk)  # and duration

    # agent output, token by token, while the page watches
    name = scope_name(env.project)
    bus = Publisher(Scope(env.project.resolve(), name, env.home, env.home / name).endpoint("bus.in"), "test/agent:1")
    try:
        shown = ""
        for token in ("Reviewing ", "the ", "change", ": ", "looks ", "good."):
            bus.publish("agent", "agent_text", "info", {"text": token}, workflow_id=wf, phase="gate")
            shown += token
            wait_until(lambda want=shown: text_of(browser, "#output").endswith(want), timeout=10,
                       what=f"the page to show {shown!r}")
        bus.publish("agent", "agent_tool_call", "info", {"name": "Bash", "input": {"command": "git status --short"}},
                    workflow_id=wf, phase="gate")
        bus.publish("agent", "agent_tool_result", "info", {"output": " M README.md\n?? <b>new</b>.py"},
                    workflow_id=wf, phase="gate")
        wait_until(lambda: "⚙ Bash: git status --short\n  ↳  M README.md\n?? <b>new</b>.py" in text_of(browser, "#output"),
                   timeout=10, what="the tool call and its result (markup in data stays text)")
    finally:
        bus.close(linger_ms=1000)

    click(browser, "#act-approve")
    wait_until(lambda: status_of(env, wf)["status"] == "completed", timeout=30, what="the approved workflow")
    wait_until(lambda: text_of(browser, "#wf-status") == "completed", timeout=15, what="the page to show it")
    wait_until(lambda: "shipped" in text_of(browser, "#output"), timeout=10, what="the last phase's output")


def test_resume_force_names_the_risk_and_cancel_stops_a_parked_run(env: Env, browser: Any) -> None:
    risky = run(env, "risky", title="sideeffecting work")
    parked_task = new_task(env, "Hit the usage limit", "[standin:scenario=rate_limit]")
    parked = run(env, "agent", task_id=parked_task)
    wait_until(lambda: "first-try" in str(env.call("daemon/logs", {"workflow_id": risky, "limit": 50})), timeout=30,
               what="the risky phase to be under way")
    runner = next(c["pid"] for s in env.call("daemon/status")["tree"] if s["name"] == "workflows"
                  for c in s["children"] if c["name"] == risky)
    os.kill(runner, signal.SIGKILL)  # a crash mid-phase: Animus cannot know how far it got
    wait_until(lambda: status_of(env, risky).get("blocked_reason") == IDEMPOTENCY_BLOCK, timeout=30,
               what="the idempotency block")

    open_workflow(browser, risky)
    wait_until(lambda: IDEMPOTENCY_BLOCK in text_of(browser, "#wf-notices"), timeout=15, what="the block, in words")
    wait_until(lambda: text_of(browser, "#act-resume") == "Resume --force…", timeout=10, what="the force button")
    click(browser, "#act-resume")
    wait_until(lambda: "a second time" in text_of(browser, "#confirm-text"), timeout=5, what="the confirmation")
    assert "idempotency: sideeffecting" in text_of(browser, "#confirm-text")
    click(browser, "#confirm-ok")
    wait_until(lambda: status_of(env, risky)["status"] == "completed", timeout=30, what="the forced resume")
    wait_until(lambda: "second-try" in text_of(browser, "#output"), timeout=15, what="the rerun's output")

    open_workflow(browser, parked)
    wait_until(lambda: "claude usage limit until" in text_of(browser, "#wf-notices"), timeout=30,
               what="the usage-limit wait, in words")
    assert status_of(env, parked)["waiting"].startswith("claude usage limit until")
    click(browser, "#act-cancel")
    wait_until(lambda: "cannot be resumed" in text_of(browser, "#confirm-text"), timeout=5, what="the confirmation")
    click(browser, "#confirm-ok")
    wait_until(lambda: env.json("workflow", "get", parked)["workflow"]["status"] == "cancelled",
               timeout=20, what="the cancel to reach the daemon")
    wait_until(lambda: text_of(browser, "#wf-status") == "cancelled", timeout=15, what="the page to show it")


def test_a_run_opened_late_replays_its_output_and_shows_its_diff_and_denials(
        env: Env, browser: Any, shots: Path) -> None:
    edit = run(env, "edit", title="change two files")
    denied = run(env, "agent", task_id=new_task(env, "Write a file", "[standin:scenario=denied]"))
    wait_until(lambda: status_of(env, edit)["status"] == "completed", timeout=40, what="the edit run")
    wait_until(lambda: status_of(env, denied)["status"] == "failed", timeout=40, what="the denied agent run")

    open_workflow(browser, edit)  # after the fact: all of it comes from the log
    wait_until(lambda: "wrote two files" in text_of(browser, "#output"), timeout=15, what="the replayed output")
    assert "worktree" in text_of(browser, "#output")
    wait_until(lambda: "2 file(s) changed" in text_of(browser, "#diff-summary"), timeout=15, what="the diff")
    # read while the view may redraw the diff (a late event marks it stale): wait, do not race
    wait_until(lambda: "-the operator's project" in (readme := text_of(browser, '#diff details[data-path="README.md"]'))
               and "+changed by the run" in readme, timeout=10, what="README.md's patch")
    wait_until(lambda: "+print(1)" in text_of(browser, '#diff details[data-path="src/hello.py"]'), timeout=10,
               what="src/hello.py's patch")
    branch = status_of(env, edit)["worktree"]["branch"]
    wait_until(lambda: "not delivered: the work is in the run's worktree" in text_of(browser, "#diff")
               and text_of(browser, "#diff-branch") == branch, timeout=10, what="the branch and the delivery state")
    screenshot(browser, shots / "workflow-view.png")

    open_workflow(browser, denied)
    wait_until(lambda: "Permission denied:" in text_of(browser, "#wf-notices")  # from the events
               and "Failed: phase implement failed: permission denied" in text_of(browser, "#wf-notices"),  # the run
               timeout=15, what="the denial and the failure, in words")
    assert "Bash" in text_of(browser, "#wf-notices") and "needs approval" in text_of(browser, "#wf-notices")
    assert "✖ permission denied: Bash" in text_of(browser, "#output")
    usage = status_of(env, denied)["phases"][0]["usage"]
    implement = wait_until(lambda: (row := text_of(browser, '#wf-phases [data-phase="implement"]'))
                           and f"${usage['cost_usd']:.4f}" in row and row, timeout=10, what="the phase's row")
    assert f"{usage['input_tokens']} / {usage['output_tokens']}" in implement
    assert "fail" in implement and "widen the agent profile's permissions" in implement  # verdict and reason
    screenshot(browser, shots / "workflow-denied.png")


def test_charts_show_crashes_a_disabled_plugin_the_runs_and_what_they_cost(env: Env, browser: Any, shots: Path) -> None:
    costly = run(env, "agent", task_id=new_task(env, "Costs something", "[standin:scenario=denied]"))
    wait_until(lambda: status_of(env, costly)["status"] == "failed", timeout=40, what="the agent run")
    killed: list[int] = []

    def crash_until_disabled() -> bool:  # a provider that keeps crashing: restarted, then disabled
        node = env.node("claude") or {}
        if node.get("state") == "disabled":
            return True
        if node.get("state") == "running" and node.get("pid") and node["pid"] not in killed:
            killed.append(node["pid"])
            os.kill(node["pid"], signal.SIGKILL)
        return False

    wait_until(crash_until_disabled, timeout=60, what="claude to be disabled after crash upon crash")
    browser.execute_script("location.hash = '#/'")
    wait_until(lambda: f"claude {len(killed)}✖ {len(killed) - 1}↻ disabled" in text_of(browser, "#chart-restarts"),
               timeout=20, what="the crashes, restarts and the disabled span on the timeline")
    wait_until(lambda: "disabled" in text_of(browser, '#tree [data-name="claude"]'), timeout=10,
               what="the supervisor tree to agree")

    runs = env.json("workflow", "list")["workflows"]  # what the CLI counts, whatever ran before in this module
    for outcome in ("completed", "failed"):
        count = sum(1 for wf in runs if wf["status"] == outcome)
        wait_until(lambda want=f"{outcome} {count}": want in text_of(browser, "#chart-runs"), timeout=15,
                   what=f"{count} {outcome} run(s) in the runs-per-hour legend")
    total = sum((wf.get("usage") or {}).get("cost_usd") or 0 for wf in runs)
    assert total > 0  # the stand-in reports what the real CLI reports, cost included
    assert f"claude ${total:.4f}" in text_of(browser, "#chart-cost-provider")
    mine = status_of(env, costly)
    by_task = text_of(browser, "#chart-cost-task")
    assert mine["subject_id"] in by_task and f"${mine['usage']['cost_usd']:.4f} · 1 run(s)" in by_task
    assert "null" not in text_of(browser, "#charts-panel") and "undefined" not in text_of(browser, "#charts-panel")
    screenshot(browser, shots / "overview.png")


def test_filter_keyboard_themes_and_a_narrow_window(env: Env, browser: Any, shots: Path) -> None:
    from selenium.webdriver.common.by import By

    gated = run(env, "live", title="rejected from the keyboard")
    open_workflow(browser, gated)
    wait_until(lambda: not browser.find_element(By.ID, "act-reject").get_attribute("disabled"), timeout=30,
               what="the gate's Reject button")
    browser.find_element(By.ID, "note").send_keys("not this way")
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys("x")  # reject, as the button does
    wait_until(lambda: status_of(env, gated)["status"] == "failed", timeout=20, what="the rejected run")
    assert "rejected" in status_of(env, gated)["failure_reason"]
    wait_until(lambda: "failed" in (row := text_of(browser, '#wf-phases [data-phase="gate"]'))
               and "rejected by operator: not this way" in row, timeout=10, what="the gate's row to say why")

    runs = env.json("workflow", "list")["workflows"]
    browser.execute_script("location.hash = '#/'")
    wait_until(lambda: f"{len(runs)} run(s)" == text_of(browser, "#filter-count"), timeout=15, what="the list")
    body.send_keys("/")  # the filter shortcut
    assert browser.switch_to.active_element.get_attribute("id") == "filter-task"
    browser.switch_to.active_element.send_keys(gated)  # a run id (or a task id)
    wait_until(lambda: text_of(browser, "#filter-count") == f"1 of {len(runs)} run(s)", timeout=5, what="one row")
    choose(browser, "#filter-status", "completed")  # and a status it does not have: none
    wait_until(lambda: text_of(browser, "#filter-count") == f"0 of {len(runs)} run(s)", timeout=5, what="no row")
    choose(browser, "#filter-workflow", "live")
    choose(browser, "#filter-status", "failed")
    browser.find_element(By.ID, "filter-task").send_keys("\ue00c")  # Escape leaves the field
    body.send_keys("j")  # select the one row, Enter opens it
    body.send_keys("\ue007")
    wait_until(lambda: browser.current_url.endswith(f"#/workflow/{gated}"), timeout=10, what="j, Enter")
    wait_until(lambda: text_of(browser, "#wf-status") == "failed", timeout=10, what="the opened workflow")
    body.send_keys("g")
    wait_until(lambda: browser.current_url.endswith("#/"), timeout=5, what="g to go back")
    body.send_keys("?")
    wait_until(lambda: "approve / reject" in text_of(browser, "#keys-dialog"), timeout=5, what="the shortcut list")
    browser.find_element(By.CSS_SELECTOR, "#keys-dialog button").click()
    choose(browser, "#filter-status", "")
    choose(browser, "#filter-workflow", "")
    browser.find_element(By.ID, "filter-task").clear()
    browser.execute_script("document.querySelector('#filter-task').dispatchEvent(new Event('input'))")

    def background() -> str:
        return str(browser.execute_script("return getComputedStyle(document.body).backgroundColor"))

    for scheme, colour in (("dark", "rgb(20, 23, 28)"), ("light", "rgb(246, 247, 249)")):
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia",
                                {"features": [{"name": "prefers-color-scheme", "value": scheme}]})
        wait_until(lambda want=colour: background() == want, timeout=5, what=f"the {scheme} theme")
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})

    size = browser.get_window_size()
    browser.set_window_size(420, 800)
    try:
        for view in ("#/", f"#/workflow/{gated}"):
            browser.execute_script(f"location.hash = '{view}'")
            wait_until(lambda: browser.execute_script(
                "return document.documentElement.scrollWidth <= window.innerWidth"), timeout=5,
                what=f"{view} to fit a narrow window without sideways scrolling")
        screenshot(browser, shots / "workflow-narrow.png")
    finally:
        browser.set_window_size(size["width"], size["height"])


def test_after_a_daemon_restart_the_page_reconnects_and_catches_up(env: Env, browser: Any) -> None:
    """Last in the module: it restarts the module's daemon."""
    wf = run(env, "live", title="approved while the page was away")
    wait_until(lambda: str(status_of(env, wf).get("waiting") or "").startswith("approval of phase"), timeout=30,
               what="the gate")
    open_workflow(browser, wf)
    wait_until(lambda: "Waiting for your approval" in text_of(browser, "#wf-notices"), timeout=15, what="the gate")
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.emulateNetworkConditions", {  # the page cannot come back on its own
        "offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    try:
        env.run("daemon", "stop", check=True)
        wait_until(lambda: text_of(browser, "#live-stream") != "live" and text_of(browser, "#conn") != "live",
                   timeout=20, what="the page to see the daemon go")
        env.start("--skip-preflight")
        env.run("workflow", "approve", wf, check=True)  # what happens while the page is away
        wait_until(lambda: status_of(env, wf)["status"] == "completed", timeout=30, what="the run to finish")
    finally:
        browser.execute_cdp_cmd("Network.emulateNetworkConditions", {
            "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    wait_until(lambda: text_of(browser, "#live-stream") == "live", timeout=30, what="the page to reconnect")
    wait_until(lambda: "shipped" in text_of(browser, "#output"), timeout=15, what="the output it missed")
    wait_until(lambda: text_of(browser, "#wf-status") == "completed", timeout=15, what="the new status")
    assert text_of(browser, "#output").count("phase gate approved") == 1  # caught up, nothing shown twice
    assert text_of(browser, "#output").count("tick-3") == 1
    browser.execute_script("location.hash = '#/'")
    wait_until(lambda: text_of(browser, "#conn") == "live", timeout=30, what="the overview's stream")
    wait_until(lambda: "completed" in text_of(browser, f'#workflows [data-workflow="{wf}"]'), timeout=15,
               what="the overview to show the run completed")
    # what the browser logged while the daemon was away is the network being gone, nothing else
    unexpected = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"
                  and not re.search(r"ERR_INTERNET_DISCONNECTED|ERR_CONNECTION_REFUSED|ERR_INCOMPLETE_CHUNKED_ENCODING|"
                                    r"Failed to fetch|status of 50[23]|ERR_NETWORK_CHANGED", e["message"])]
    assert not unexpected, unexpected
