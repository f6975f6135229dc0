"""Starting the app as a user does and driving it in headless Chromium (Playwright): for the
end-to-end tests and for the README screenshots
(``python -m tests.browser --url ... --image ... --out ...``).

Why shared: they must start the app the same way (``bash run_app.sh``), perform the same
shopper actions and wait for the same signals, and the waits encode how the page works (a
search is finished when its "N results for" caption shows). Needs the dev requirements
(playwright) and Debian's chromium; never `playwright install`.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

log = logging.getLogger(__name__)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
WAIT_MS = 60_000  # first page load includes loading the model in the server
REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 300  # a first start indexes the catalog (PyTorch import included)


# ---- the app process ------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningApp:
    url: str
    port: int
    log: Path
    proc: subprocess.Popen
    seconds_to_serve: float

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_app(env: dict[str, str], log: Path, checkpoint: Path,
              port: int | None = None) -> RunningApp:
    """`bash run_app.sh` in its own process group; returns once it printed its URL."""
    port = port or free_port()
    t0 = time.monotonic()
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            ["bash", "run_app.sh", "--port", str(port), "--checkpoint", str(checkpoint)],
            cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    app = RunningApp(f"http://127.0.0.1:{port}", port, log, proc, 0.0)
    while time.monotonic() - t0 < START_TIMEOUT_S:
        if "[app] serving at" in app.output():
            app.seconds_to_serve = time.monotonic() - t0
            return app
        if proc.poll() is not None:
            break
        time.sleep(0.25)
    stop_app(app)
    raise AssertionError(f"run_app.sh did not serve:\n{app.output()[-3000:]}")


def stop_app(app: RunningApp, sig: int = signal.SIGTERM) -> None:
    """Stop the app's process group (``SIGKILL``: as a crash would) and wait for it."""
    try:
        os.killpg(app.proc.pid, sig)
        app.proc.wait(timeout=30)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(app.proc.pid, signal.SIGKILL)
        app.proc.wait(timeout=10)


def app_environment(mongo_uri: str, root: Path, db_name: str, **settings: str) -> dict:
    """What a browser test starts ``run_app.sh`` with: under ``root`` a tiny real checkpoint
    and a 24-item drawn catalog folder (indexed by the app's first start into ``db_name``,
    empty until then), and the process environment naming them (``settings`` added, no
    APP_PORT: each start picks a free port). Returns {"env", "root", "checkpoint"}."""
    from model import ModelConfig, build_retriever
    from tests.app_catalog import make_small_catalog

    build_retriever(ModelConfig.tiny(), seed=0).save(root / "ckpt")
    make_small_catalog(root / "catalog", colours=4)
    env = {**os.environ, "MONGO_URI": mongo_uri + "/?directConnection=true", "DB_NAME": db_name,
           "COLLECTION_NAME": "catalog", "DATA_DIR": str(root / "data"),
           "CATALOG_DIR": str(root / "catalog"), **settings}
    env.pop("APP_PORT", None)
    return {"env": env, "root": root, "checkpoint": root / "ckpt"}


def shirt_photo(folder: Path) -> Path:
    """A shopper's upload: a navy shirt drawn as the catalog's are, as a JPEG."""
    from tests.app_catalog import draw_garment

    path = folder / "my_shirt.jpg"
    draw_garment("shirt", (20, 30, 90), False, size=220).save(path, quality=90)
    return path


# ---- the page -------------------------------------------------------------------------------


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


def session_token(page: Page) -> str | None:
    """The ``?session=`` token in the page's address (set once the chain is saved)."""
    return parse_qs(urlparse(page.url).query).get("session", [None])[0]


def wait_for_session(page: Page) -> str:
    """The session token, once the page has put it in its address."""
    page.wait_for_url(re.compile(r"[?&]session=[A-Za-z0-9_-]{43}"), timeout=WAIT_MS)
    return session_token(page)


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
    said = re.escape(f'"{text}"') if text.strip() else "(?:the image alone|no new words)"
    caption = page.get_by_text(re.compile(rf"\d+ results( in \S+)? for {said} in \d+ ms"))
    expect(caption).to_be_visible(timeout=WAIT_MS)
    wait_idle(page)
    return caption.inner_text()


def result_cards(page: Page):
    """The result cards, in rank order (containers keyed ``result_<id>`` by the page)."""
    return page.locator('[class*="st-key-result_"]')


def result_ids(page: Page) -> list[str]:
    """The item ids of the result cards, in rank order (from their ``st-key-result_<id>``)."""
    classes = result_cards(page).evaluate_all("cards => cards.map(c => c.className)")
    return [re.search(r"st-key-result_(\S+)", c).group(1) for c in classes]


def chips(page: Page):
    """The remembered-item chips (buttons keyed ``chip_...``)."""
    return page.locator('[class*="st-key-chip_"] button:visible')  # (a hidden twin measures)


def more_like_this(page: Page, nth: int) -> str:
    """Click "More like this" on result ``nth``; returns that result's title once the page
    shows it as remembered (the results were ranked again)."""
    card = result_cards(page).nth(nth)
    title = card.locator("strong").first.inner_text()
    card.get_by_role("button", name="More like this").click()
    expect(chips(page).filter(has_text=f"More like: {title}")).to_have_count(1, timeout=WAIT_MS)
    wait_idle(page)
    return title


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
    page.mouse.move(5, 5, steps=10)  # no hover decorations or tooltips in the picture
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.wait_for_timeout(500)
    out.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out), full_page=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Screenshot of a conversation in a running app: "
                                     "upload, then one search per --feedback sentence, "
                                     "refining from result --pick between them")
    parser.add_argument("--url", default="http://127.0.0.1:8501")
    parser.add_argument("--image", type=Path, required=True, help="reference photo to upload")
    parser.add_argument("--feedback", nargs="+", default=["is navy with long sleeves",
                                                          "has a floral pattern"])
    parser.add_argument("--pick", type=int, default=0, help="result to refine from")
    parser.add_argument("--more-like", type=int, default=None,
                        help="finally click 'More like this' on this result")
    parser.add_argument("--out", type=Path, default=Path("docs/app_two_turns.png"))
    args = parser.parse_args(argv)
    with sync_playwright() as p:
        browser = launch(p)
        page = open_page(browser, args.url)
        upload(page, args.image)
        for i, sentence in enumerate(args.feedback):
            if i:
                print("picked", refine(page, args.pick))
            print(search(page, sentence, press_enter=i == 0))
        if args.more_like is not None:
            print("more like", more_like_this(page, args.more_like))
        screenshot(page, args.out)
        browser.close()
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
