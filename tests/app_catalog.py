"""Small real catalogs for the app's tests (no mocks, seconds to build).

The AppTest logic tests, the browser end-to-end test and the bootstrap tests all need the same
tiny catalog: images on disk, metadata.csv, documents indexed with a real tiny checkpoint.
"""

from __future__ import annotations

import io
import socket
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw
from streamlit.testing.v1 import AppTest

from dataprep import write_metadata

COLOURS = {
    "red": (200, 30, 40), "navy": (20, 30, 90), "green": (40, 150, 60), "yellow": (230, 200, 40),
    "black": (20, 20, 20), "pink": (240, 150, 180), "grey": (128, 128, 128),
    "orange": (240, 130, 30),
}
CATEGORIES = ("dress", "shirt", "toptee")


@dataclass(frozen=True)
class SmallCatalog:
    root: Path

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def metadata(self) -> Path:
        return self.root / "metadata.csv"


def draw_garment(category: str, colour: tuple[int, int, int], long_sleeves: bool,
                 size: int = 160) -> Image.Image:
    """A flat product-photo-like drawing: a coloured garment on a white background."""
    img = Image.new("RGB", (size, size), "white")
    d = ImageDraw.Draw(img)
    s = size / 160
    body = {"dress": (55, 30, 105, 150), "shirt": (50, 35, 110, 120),
            "toptee": (52, 40, 108, 110)}[category]
    d.rectangle([v * s for v in body], fill=colour)
    arm = 60 if long_sleeves else 25
    top = body[1] + 2
    d.rectangle([(body[0] - 20) * s, top * s, body[0] * s, (top + arm) * s], fill=colour)
    d.rectangle([body[2] * s, top * s, (body[2] + 20) * s, (top + arm) * s], fill=colour)
    if category == "dress":
        d.polygon([(55 * s, 90 * s), (105 * s, 90 * s), (120 * s, 150 * s), (40 * s, 150 * s)],
                  fill=colour)
    return img


def make_small_catalog(root: Path, colours: int = 8) -> SmallCatalog:
    """Write ``3 * colours * 2`` items (category x colour x sleeve) in the demo catalog layout."""
    cat = SmallCatalog(Path(root))
    cat.images.mkdir(parents=True, exist_ok=True)
    rows = []
    for category in CATEGORIES:
        for name, rgb in list(COLOURS.items())[:colours]:
            for long_sleeves in (False, True):
                sleeve = "long" if long_sleeves else "short"
                item_id = f"{category}-{name}-{sleeve}"
                draw_garment(category, rgb, long_sleeves).save(cat.images / f"{item_id}.jpg",
                                                               quality=90)
                rows.append((item_id, category, f"{name.title()} {sleeve}-sleeved {category}",
                             (name, sleeve)))
    write_metadata(cat.metadata, ("color", "sleeve"), rows)
    return cat


def jpeg_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def index_small_catalog(catalog: SmallCatalog, retriever, collection) -> int:
    """Index ``catalog`` into the pymongo ``collection`` with the real indexer; returns count."""
    from indexer import BuildConfig, CatalogStore, build_index, discover

    items = discover(catalog.images, [catalog.metadata])
    store = CatalogStore.from_collection(collection)
    report = build_index(items, retriever, store, BuildConfig(workers=0, progress=False))
    return report.total_for_fingerprint


def uploaded(at: AppTest, data: bytes, name: str = "shirt.jpg", mime="image/jpeg") -> AppTest:
    """The page after a shopper uploads ``data`` as ``name``."""
    at.file_uploader(key="upload").set_value((name, data, mime))
    return at.run()


def search(at: AppTest, feedback: str) -> AppTest:
    """The page after typing ``feedback`` and pressing Search."""
    at.text_input(key="feedback").input(feedback)
    at.button(key="search").click()
    return at.run()


def result_buttons(at: AppTest) -> list:
    """The "refine" buttons of the results shown."""
    return [b for b in at.button if b.key and b.key.startswith("refine_")]


@contextmanager
def database_session(monkeypatch, tmp_path, checkpoint, retriever, **app_env):
    """A real embedded server holding a small indexed catalog, and the page's environment."""
    from indexer import EmbeddedConfig, EmbeddedServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = EmbeddedServer(EmbeddedConfig(home=tmp_path / "db", port=port, cache_size="64M"))
    server.start()
    try:
        import pymongo

        client = pymongo.MongoClient(server.uri, directConnection=True)
        catalog = make_small_catalog(tmp_path / "catalog", colours=2)
        index_small_catalog(catalog, retriever, client["shop"]["catalog"])
        client.close()
        for key, value in {"MONGO_URI": server.uri, "DB_NAME": "shop",
                           "COLLECTION_NAME": "catalog", "CHECKPOINT": str(checkpoint),
                           "DATA_DIR": str(tmp_path / "data"), **app_env}.items():
            monkeypatch.setenv(key, value)
        yield server
    finally:
        server.stop()


@contextmanager
def down_for(server, seconds: float):
    """The database stopped now and started again ``seconds`` later, in the background."""
    server.stop()
    restart = threading.Timer(seconds, server.start)
    restart.start()
    try:
        yield
    finally:
        restart.join()
