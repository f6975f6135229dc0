"""Sessions that survive, in a real browser against `bash run_app.sh` and the real embedded
database: a three-turn session with a click is restored (same top 10) by a reload and, after
the app process is killed and started again, by the same address; a forged token gets the one
clear message.
"""

from __future__ import annotations

import re
import signal
import uuid
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

playwright_api = pytest.importorskip("playwright.sync_api")
if not Path("/usr/bin/chromium").exists():
    pytest.skip("Debian chromium is not installed (run_tests.sh installs it)",
                allow_module_level=True)

from tests import browser  # noqa: E402  (needs playwright)

expect = playwright_api.expect
TOP_K = 10


@pytest.fixture(scope="module")
def env(mongo_server, mongo_client, tmp_path_factory):
    """An empty collection, a 24-item catalog folder, a tiny checkpoint, top 10 results."""
    db_name = f"test_sessions_e2e_{uuid.uuid4().hex[:10]}"
    yield browser.app_environment(mongo_server.uri, tmp_path_factory.mktemp("sessions_e2e"),
                                  db_name, APP_TOP_K=str(TOP_K))
    mongo_client.drop_database(db_name)


@pytest.fixture(scope="module")
def apps(env):
    """The running app (a list: the restart test replaces it); stopped at the end."""
    running = [browser.start_app(env["env"], env["root"] / "run1.log", env["checkpoint"])]
    yield running
    browser.stop_app(running[-1])


@pytest.fixture(scope="module")
def chromium():
    with playwright_api.sync_playwright() as p:
        b = browser.launch(p)
        yield b
        b.close()


@pytest.fixture
def garment(tmp_path) -> Path:
    return browser.shirt_photo(tmp_path)


def restored(page) -> list[str]:
    """The top 10 once the restored session's results are on display."""
    expect(page.get_by_text(re.compile(rf'{TOP_K} results for "shorter" in \d+ ms'))
           ).to_be_visible(timeout=browser.WAIT_MS)
    browser.wait_idle(page)
    expect(browser.result_cards(page)).to_have_count(TOP_K)
    return browser.result_ids(page)


def test_a_session_survives_a_reload_and_an_app_restart(apps, env, chromium, garment):
    page = browser.open_page(chromium, apps[-1].url)
    browser.upload(page, garment)
    browser.search(page, "is red", press_enter=True)
    browser.refine(page, 1)
    browser.search(page, "has long sleeves", press_enter=False)
    browser.refine(page, 0)
    browser.search(page, "shorter", press_enter=True)
    liked = browser.more_like_this(page, 3)
    token = browser.wait_for_session(page)
    top10 = browser.result_ids(page)
    assert len(top10) == TOP_K
    expect(browser.step_cards(page)).to_have_count(3)
    expect(page.get_by_text("a shared link shows your uploaded photo")).to_be_visible()
    address = page.url

    page.reload()  # a reload: a new Streamlit session, the same address
    assert restored(page) == top10
    expect(browser.step_cards(page)).to_have_count(3)
    expect(browser.chips(page).filter(has_text=f"More like: {liked}")).to_have_count(1)
    assert browser.session_token(page) == token
    page.close()

    port = apps[-1].port
    browser.stop_app(apps[-1], signal.SIGKILL)  # the app process dies; the database stays
    apps.append(browser.start_app(env["env"], env["root"] / "run2.log", env["checkpoint"],
                                  port=port))
    page = browser.open_page(chromium, address)  # the same address, a new app process
    assert restored(page) == top10
    assert '"has long sleeves"' in browser.step_cards(page).nth(1).inner_text()
    page.close()


def test_a_forged_token_says_session_not_found(apps, chromium):
    page = browser.open_page(chromium, f"{apps[-1].url}/?session=forged{'x' * 37}")
    expect(page.get_by_text("Session not found — start a new search")).to_be_visible(
        timeout=browser.WAIT_MS)
    expect(page.get_by_text("Traceback")).to_have_count(0)
    assert browser.session_token(page) is None  # the page starts afresh
    expect(page.get_by_text("Upload a photo, or pick a random catalog item")).to_be_visible()
    page.close()
