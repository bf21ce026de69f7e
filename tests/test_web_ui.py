"""The web UI in a real headless Chromium, against a real daemon.

Loads the page through the URL ``animus web open`` prints, watches a running
workflow's output stream in live (command output, then agent tokens
published on the bus one by one while the page is open), clicks Approve on
its manual phase and "Set ready" on a task, and saves a screenshot.

Needs Debian's ``chromium`` and ``chromium-driver``, which ``make test``
installs (the test set-up, not the test, installs system packages); without
them the test skips saying why, and fails under CI, where they must be.
"""

from __future__ import annotations

import os
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
from daemon_env import daemon_env  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WORKFLOWS = """
phases:
  talk:
    mode: command
    idempotency: idempotent
    command: {program: sh, args: [-c, "for i in 1 2 3; do echo tick-$i; sleep 0.2; done"]}
  gate: {mode: manual, manual: {instructions: "approve in the web UI"}}
  ship: {mode: command, idempotency: idempotent, command: {program: sh, args: [-c, "echo shipped"]}}
workflows:
  - id: live
    phases: [talk, gate, ship]
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


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    ensure_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1400,1300"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with daemon_env(tmp_path / "daemon", ["transport-http", "web-ui", "default"], WORKFLOWS) as e:
        yield e


def text_of(driver: Any, css: str) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.CSS_SELECTOR, css).text)


def click(driver: Any, css: str) -> None:
    """Click, retrying while the page re-renders the element (a stale reference)."""
    from selenium.webdriver.common.by import By

    def attempt() -> bool:
        element = driver.find_element(By.CSS_SELECTOR, css)
        if not element.is_enabled():
            return False
        element.click()
        return True

    wait_until(attempt, timeout=15, what=f"to click {css}")


def test_web_ui_streams_a_workflow_and_acts_on_it(env: Env, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    task = env.json("subject", "create", "--title", "ship the web UI", "--status", "backlog")["subject"]["id"]
    url = env.run("web", "open", check=True).stdout.strip()
    browser.get(url)
    assert "token=" not in browser.current_url  # traded for a cookie
    wait_until(lambda: text_of(browser, "#conn") == "live", timeout=20, what="the page's event stream")
    wait_until(lambda: "transport-http" in text_of(browser, "#tree"), timeout=10, what="the supervisor tree")
    wait_until(lambda: "web-ui" in text_of(browser, "#plugins"), timeout=10, what="the plugins table")
    wait_until(lambda: task in text_of(browser, '#board [data-status="backlog"]'), timeout=10, what="the task card")

    wf = env.json("workflow", "run", "--title", "watched in a browser")["workflow_id"]
    browser.execute_script("location.hash = arguments[0]", f"#/workflow/{wf}")
    wait_until(lambda: text_of(browser, "#live-stream") == "live", timeout=20, what="the workflow stream")
    wait_until(lambda: "tick-3" in text_of(browser, "#output"), timeout=20, what="the command's output")
    wait_until(lambda: browser.find_element(By.ID, "act-approve").is_enabled(), timeout=20,
               what="the manual phase to ask for approval")

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
    finally:
        bus.close(linger_ms=1000)
    assert "Reviewing the change: looks good." in text_of(browser, "#output")

    click(browser, "#act-approve")
    wait_until(lambda: env.call("workflow/get", {"id": wf})["status"] == "completed", timeout=30,
               what="the approved workflow to complete")
    wait_until(lambda: browser.find_element(By.ID, "live-status").get_attribute("data-status") == "completed",
               timeout=15, what="the page to show it completed")
    wait_until(lambda: "shipped" in text_of(browser, "#output"), timeout=10, what="the last phase's output")

    click(browser, f'[data-task="{task}"] .set-ready')
    wait_until(lambda: env.json("subject", "get", "--id", task)["subject"]["status"] == "ready", timeout=15,
               what="the task to be ready")
    wait_until(lambda: task in text_of(browser, '#board [data-status="ready"]'), timeout=15,
               what="the card to move to ready")

    shot = tmp_path / "web-ui.png"
    assert browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
