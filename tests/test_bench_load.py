"""The load benchmark's judgement: when an action counts as answered, and how what sessions saw
is classed. The full run (20 browsers, faults) is `python -m bench.load`; these pin the parts
that decide its figures, on a static page and on made-up actions."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.load import ARM, OUTCOME, Action, LoadConfig, Timeline, summarise

CHROMIUM = Path("/usr/bin/chromium")

PAGE = """<div data-testid="stApp" data-test-script-state="notRunning">
  <p id="caption">8 results for "in red 0-1" in 40 ms</p>
  <div class="st-key-step_0">step</div>
</div>"""

# One task: the run starts, replaces the caption and ends before the renderer paints, so the
# script-state attribute is back to notRunning by the time any observer runs.
ONE_FRAME_RUN = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  app.setAttribute('data-test-script-state', 'running');
  document.getElementById('caption').textContent = 'Reference: dress 12';
  app.setAttribute('data-test-script-state', 'notRunning');
}"""


ALERT = """(text) => { const e = document.createElement('div');
    e.setAttribute('data-testid', 'stAlertContentError'); e.textContent = text;
    document.body.appendChild(e); }"""


@pytest.fixture(scope="module")
def page():
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"],
                                    headless=True)
        yield browser.new_page()
        browser.close()


def outcome(page, success, need=None, absent=None):
    return page.evaluate(OUTCOME, [success, need, False, absent])


def test_an_action_is_answered_only_after_the_page_changed(page):
    page.set_content(PAGE)
    page.evaluate(ARM)
    # the success text is there already (a refine from the reference itself): not yet
    assert outcome(page, "results for", need=1) is None
    page.evaluate(ONE_FRAME_RUN)
    answered = outcome(page, "Reference: dress 12", need=1)
    assert answered is not None and answered["kind"] == "ok" and answered["steps"] == 1


def test_a_refine_waits_until_the_results_are_gone(page):
    page.set_content(PAGE + '<p>Reference: dress 12</p>')  # refined from the reference itself
    page.evaluate(ARM)
    page.evaluate("() => { document.querySelector('.st-key-step_0').textContent = 'picked'; }")
    assert outcome(page, "Reference: dress 12", need=1, absent=" results for ") is None
    page.evaluate("() => document.getElementById('caption').remove()")
    assert outcome(page, "Reference: dress 12", need=1, absent=" results for ")["kind"] == "ok"


def test_an_error_alert_is_the_outcome_when_the_success_text_never_comes(page):
    page.set_content(PAGE)
    page.evaluate(ARM)
    page.evaluate(ALERT, "The catalog database is not answering right now; reconnecting.")
    seen = outcome(page, 'results for "in navy 0-2"', need=2)
    assert seen["kind"] == "error" and "reconnecting" in seen["text"]


def test_the_previous_actions_alert_is_not_this_actions_error(page):
    page.set_content(PAGE)
    page.evaluate(ALERT, "The catalog database is not answering right now; reconnecting.")
    page.evaluate(ARM)
    page.evaluate("() => { document.getElementById('caption').textContent = 'typing'; }")
    assert outcome(page, 'results for "in navy 0-2"', need=2) is None  # no run yet
    page.evaluate("""() => { const app = document.querySelector('[data-testid="stApp"]');
        app.setAttribute('data-test-script-state', 'running');
        setTimeout(() => app.setAttribute('data-test-script-state', 'notRunning'), 0); }""")
    page.wait_for_timeout(50)  # a run showed itself and ended with the same alert: its error
    assert outcome(page, 'results for "in navy 0-2"', need=2)["kind"] == "error"


def test_what_sessions_saw_is_classed_by_fault_window():
    tl = Timeline(t0=0.0, events={"db_killed": 100.0, "db_up": 105.0, "app_killed": 150.0,
                                  "app_up": 152.0})
    actions = [
        Action(0, "search", 10.0, 11.0, "ok", items="300"),
        Action(1, "search", 101.0, 102.0, "error", "database not answering; reconnecting"),
        Action(1, "search", 108.0, 109.0, "ok"),  # answered 4 s after the database came back
        Action(0, "search", 149.0, 151.0, "connection", "Connection error"),  # app down
        Action(2, "back", 151.0, 153.0, "reset"),  # a new server session after the restart
        Action(3, "refine", 40.0, 41.0, "reset"),  # a page reset while the server was up
        Action(3, "search", 60.0, 150.5, "timeout", "no outcome within 90 s"),
        Action(2, "search", 30.0, 31.0, "ok", chain_ok=False),  # steps strip lost a turn
        Action(4, "search", 149.5, 240.0, "timeout", "no outcome within 90 s; page: {}"),
    ]
    s = summarise(LoadConfig(sessions=5), actions, tl, {})
    assert s["reconnecting_messages_during_outage"] == 1
    assert s["errors_shown"] == 2  # the dialog and the timeout; not the reconnecting message
    assert s["chains_reset_by_app_restart"] == 1
    assert s["chains_lost_while_server_up"] == 2
    assert s["recovery_after_database_s"][1] == 4.0
    assert s["actions_lost_with_app_restart"] == 1  # the click died with the server
    assert s["sessions_not_answering_after_database"] == 4
    assert s["latency_ms"]["search"]["n"] == 3
