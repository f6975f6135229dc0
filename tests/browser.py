"""Driving the running app in headless Chromium (Playwright): for the end-to-end test and for
the README screenshot (``python -m tests.browser --url ... --image ... --out ...``).

Why shared: both must perform the same shopper actions and wait for the same signals, and the
waits encode how the page works (a search is finished when its "N results for" caption shows).
Needs the dev requirements (playwright) and Debian's chromium; never `playwright install`.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path

from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

log = logging.getLogger(__name__)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
WAIT_MS = 60_000  # first page load includes loading the model in the server


def launch(p: Playwright) -> Browser:
    return p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def wait_idle(page: Page) -> None:
    """Wait until the script run has finished (Streamlit streams elements while it runs)."""
    expect(page.get_by_test_id("stApp")).to_have_attribute(
        "data-test-script-state", "notRunning", timeout=WAIT_MS)


def open_page(browser: Browser, url: str, height: int = 1600) -> Page:
    page = browser.new_page(viewport={"width": 1400, "height": height})
    page.goto(url)
    expect(page.get_by_role("heading", name="1. Reference")).to_be_visible(timeout=WAIT_MS)
    wait_idle(page)
    return page


def upload(page: Page, image: Path | str, *, expect_label: bool = True) -> None:
    page.locator('input[type="file"]').set_input_files(str(image))
    if expect_label:
        expect(page.get_by_text(f"Reference: {Path(image).name}")).to_be_visible(timeout=WAIT_MS)
    wait_idle(page)


def feedback_box(page: Page):
    return page.get_by_label("Feedback", exact=True)


def search(page: Page, text: str, *, press_enter: bool) -> str:
    """Type feedback and search (Enter or the button); returns the results caption."""
    box = feedback_box(page)
    expect(box).to_be_enabled(timeout=WAIT_MS)
    box.fill(text)
    if press_enter:
        box.press("Enter")
    else:
        page.get_by_role("button", name="Search", exact=True).click()
    said = re.escape(f'"{text}"') if text.strip() else "the image alone"
    caption = page.get_by_text(re.compile(rf"\d+ results( in \S+)? for {said} in \d+ ms"))
    expect(caption).to_be_visible(timeout=WAIT_MS)
    wait_idle(page)
    return caption.inner_text()


def result_cards(page: Page):
    """The result cards, in rank order (containers keyed ``result_<id>`` by the page)."""
    return page.locator('[class*="st-key-result_"]')


def step_cards(page: Page):
    """The cards of the chain of turns ("Your steps")."""
    return page.locator('[class*="st-key-step_"]')


def refine(page: Page, nth: int) -> str:
    """Click "Refine from this" on result ``nth``; returns that result's title."""
    card = result_cards(page).nth(nth)
    title = card.locator("strong").first.inner_text()
    card.get_by_role("button", name="Refine from this").click()
    expect(page.get_by_text(f"Reference: {title}")).to_be_visible(timeout=WAIT_MS)
    wait_idle(page)
    return title


def screenshot(page: Page, out: Path) -> None:
    page.mouse.move(0, 0)  # no hover decorations in the picture
    page.wait_for_timeout(500)
    out.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out), full_page=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Two-turn session screenshot of a running app")
    parser.add_argument("--url", default="http://127.0.0.1:8501")
    parser.add_argument("--image", type=Path, required=True, help="reference photo to upload")
    parser.add_argument("--feedback", nargs=2, default=["is navy with long sleeves",
                                                        "has a floral pattern"])
    parser.add_argument("--pick", type=int, default=0, help="result to refine from")
    parser.add_argument("--out", type=Path, default=Path("docs/app_two_turns.png"))
    args = parser.parse_args(argv)
    with sync_playwright() as p:
        browser = launch(p)
        page = open_page(browser, args.url)
        upload(page, args.image)
        print(search(page, args.feedback[0], press_enter=True))
        print("picked", refine(page, args.pick))
        print(search(page, args.feedback[1], press_enter=False))
        screenshot(page, args.out)
        browser.close()
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
