"""End to end: `bash run_app.sh` against the real embedded database, driven in headless Chromium.

The app is started exactly as a user starts it (the script indexes the empty catalog with the
real indexer CLI, then serves), with a tiny real checkpoint and a 24-item drawn catalog so the
whole module runs in about a minute on two cores.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

playwright_api = pytest.importorskip("playwright.sync_api")
if not Path("/usr/bin/chromium").exists():
    pytest.skip("Debian chromium is not installed (run_tests.sh installs it)",
                allow_module_level=True)

from tests import browser  # noqa: E402  (needs playwright)

start_app, stop_app = browser.start_app, browser.stop_app  # (also used by test_hostile_render)


@pytest.fixture(scope="module")
def e2e_env(mongo_server, mongo_client, tmp_path_factory):
    """An empty collection, a 24-item catalog folder and a tiny checkpoint."""
    db_name = f"test_e2e_{uuid.uuid4().hex[:10]}"
    yield browser.app_environment(mongo_server.uri, tmp_path_factory.mktemp("e2e"), db_name)
    mongo_client.drop_database(db_name)


@pytest.fixture(scope="module")
def app(e2e_env):
    running = start_app(e2e_env["env"], e2e_env["root"] / "run1.log", e2e_env["checkpoint"])
    yield running
    stop_app(running)


@pytest.fixture(scope="module")
def chromium():
    with playwright_api.sync_playwright() as p:
        b = browser.launch(p)
        yield b
        b.close()


@pytest.fixture
def garment(tmp_path) -> Path:
    return browser.shirt_photo(tmp_path)


def test_first_start_indexes_the_empty_catalog_and_prints_the_url(app):
    out = app.output()
    assert "catalog is empty" in out
    assert "python -m indexer build" in out and "24 items" in out
    assert f"[app] serving at http://localhost:{app.port}" in out


def test_two_turn_session_upload_search_refine_search(app, chromium, garment, tmp_path):
    page = browser.open_page(chromium, app.url)
    sidebar = page.get_by_test_id("stSidebar")
    playwright_api.expect(sidebar.get_by_test_id("stMetricValue")).to_have_text("24")

    browser.upload(page, garment)
    caption = browser.search(page, "navy with long sleeves", press_enter=True)  # Enter key
    assert caption.startswith("12 results")
    cards = browser.result_cards(page)
    playwright_api.expect(cards).to_have_count(12)
    first = cards.nth(0).inner_text()
    assert re.search(r"(dress|shirt|toptee) · score -?\d\.\d{3}", first)
    assert "color:" in first and "sleeve:" in first

    picked = browser.refine(page, 2)
    assert browser.feedback_box(page).input_value() == ""
    playwright_api.expect(browser.step_cards(page)).to_have_count(1)  # retries until rerun settles

    browser.search(page, "in red", press_enter=False)  # the Search button
    steps = browser.step_cards(page)
    playwright_api.expect(steps).to_have_count(2)
    assert '"navy with long sleeves"' in steps.nth(0).inner_text()
    assert picked in steps.nth(0).inner_text()
    assert '"in red"' in steps.nth(1).inner_text()
    assert picked not in [c.split("\n")[0] for c in browser.result_cards(page).all_inner_texts()]

    shot = Path(os.environ.get("APP_SCREENSHOT", tmp_path / "app_two_turns.png"))
    browser.screenshot(page, shot)
    assert shot.stat().st_size > 20_000

    page.get_by_role("button", name="Back to step 1").click()  # and back again
    page.get_by_text('12 results for "navy with long sleeves"').wait_for(timeout=30_000)
    playwright_api.expect(browser.step_cards(page)).to_have_count(1)  # retries until rerun settles
    assert browser.feedback_box(page).input_value() == ""  # the box is for the next words
    page.close()


def test_corrupt_upload_shows_a_message_and_the_app_keeps_working(app, chromium, garment,
                                                                  tmp_path):
    page = browser.open_page(chromium, app.url)
    corrupt = tmp_path / "holiday.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(2000))  # JPEG magic, garbage after
    browser.upload(page, corrupt, expect_label=False)
    error = page.get_by_text(re.compile(r"holiday\.jpg\s*cannot be used"))
    error.wait_for(timeout=30_000)
    assert browser.feedback_box(page).is_disabled()  # no reference to search from
    browser.screenshot(page, tmp_path / "corrupt_upload.png")

    browser.upload(page, garment)  # a good file replaces it; the error is gone
    playwright_api.expect(page.get_by_text("cannot be used")).to_have_count(0)
    assert browser.search(page, "", press_enter=True).startswith("12 results")
    page.get_by_text("retrieved by the image alone").wait_for(timeout=10_000)
    page.close()


def test_second_start_reuses_the_database_and_index(app, e2e_env):
    second = start_app(e2e_env["env"], e2e_env["root"] / "run2.log", e2e_env["checkpoint"])
    try:
        out = second.output()
        assert "24 items already indexed; skipping the build" in out
        assert "indexer build" not in out and "indexer build" in app.output()  # first one built
        print(f"second start served after {second.seconds_to_serve:.1f} s "
              f"(first: {app.seconds_to_serve:.1f} s)")
    finally:
        stop_app(second)
