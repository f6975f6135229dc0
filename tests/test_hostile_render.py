"""Catalog and shopper text renders as text in a real browser: titles and attributes holding
Markdown, HTML, LaTeX, Streamlit directives and emoji codes, a 10,000-character title, and
feedback holding the same, must come out as the characters they are, with no element the page
did not mean (links, headings, emphasis, code, lists, tables, formulas).

The catalog arrives the way a store ships it (UTF-8 with BOM, CRLF, a duplicate id) and is
indexed by ``bash run_app.sh`` itself.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from app.markup import clip, single_line
from model import ModelConfig, build_retriever
from tests.app_catalog import draw_garment
from tests.hostile_corpus import LONG_TITLE, MARKUP_TITLES

pytestmark = [pytest.mark.browser, pytest.mark.slow]
playwright_api = pytest.importorskip("playwright.sync_api")
if not Path("/usr/bin/chromium").exists():
    pytest.skip("Debian chromium is not installed (run_tests.sh installs it)",
                allow_module_level=True)

from tests import browser  # noqa: E402
from tests.test_app_e2e import start_app, stop_app  # noqa: E402

TITLES = {**MARKUP_TITLES, "m7": LONG_TITLE, "m8": "Plain navy shirt"}
NOTE = "*soft* <i>cotton</i> :blue[blue]"
FEEDBACK = "**bold** <i>x</i> :smile: $x^2$ [y](http://e.x)"
UNMEANT = "a, h1, h2, h3, h4, h5, h6, em, del, code, pre, blockquote, ul, ol, table, .katex"


def shown(text: str) -> str:
    """What the page should display for ``text``: one clipped line, invisible breaks aside."""
    return clip(single_line(text)).replace("\u200b", "")


@pytest.fixture(scope="module")
def app(mongo_server, mongo_client, tmp_path_factory):
    root = tmp_path_factory.mktemp("render")
    build_retriever(ModelConfig.tiny(), seed=0).save(root / "ckpt")
    (root / "shop").mkdir()
    rows = ["id,category,title,note"]
    for i, (item_id, title) in enumerate(TITLES.items()):
        draw_garment("shirt", (25 * i, 60, 150), i % 2 == 0).save(root / "shop" / f"{item_id}.jpg")
        quoted = title.replace('"', '""')
        rows.append(f'{item_id},shirt,"{quoted}","{NOTE}"')
    rows.append("m1,shirt,A duplicate row that must not win,")
    (root / "shop" / "metadata.csv").write_bytes(("\ufeff" + "\r\n".join(rows) + "\r\n").encode())
    db_name = f"test_render_{uuid.uuid4().hex[:10]}"
    env = {**os.environ, "MONGO_URI": mongo_server.uri + "/?directConnection=true",
           "DB_NAME": db_name, "COLLECTION_NAME": "catalog", "DATA_DIR": str(root / "data"),
           "CATALOG_DIR": str(root / "shop"), "APP_TOP_K": str(len(TITLES))}
    env.pop("APP_PORT", None)
    running = start_app(env, root / "app.log", root / "ckpt")
    yield running
    stop_app(running)
    mongo_client.drop_database(db_name)


def test_catalog_and_feedback_text_render_as_text(app, tmp_path):
    garment = tmp_path / "mine.jpg"
    draw_garment("shirt", (20, 30, 90), False, size=200).save(garment)
    with playwright_api.sync_playwright() as p:
        chromium = browser.launch(p)
        page = browser.open_page(chromium, app.url)
        browser.upload(page, garment)
        browser.feedback_box(page).fill(FEEDBACK)
        browser.feedback_box(page).press("Enter")
        cards = browser.result_cards(page)
        playwright_api.expect(cards).to_have_count(len(TITLES), timeout=60_000)
        browser.wait_idle(page)

        titles = []
        for i in range(len(TITLES)):
            card = cards.nth(i)
            assert card.locator(UNMEANT).count() == 0, card.inner_html()[:2000]
            assert card.locator("strong").count() == 1  # only the page's own bold title
            titles.append(card.locator("strong").inner_text().replace("\u200b", ""))
            assert shown(NOTE) in card.inner_text().replace("\u200b", "")
        # a title is one line: the indexer cuts a multi-line cell at its first line break
        assert sorted(titles) == sorted(shown(t.splitlines()[0]) for t in TITLES.values())

        caption = page.get_by_text("results for", exact=False).first
        assert f'"{FEEDBACK}"' in caption.inner_text().replace("\u200b", "")
        assert caption.locator(UNMEANT).count() == 0
        assert page.locator("script:has-text('alert(1)')").count() == 0
        chromium.close()
