"""Shared fixtures: a real embedded SecantusDB for the whole session, fresh collections per test.

Nothing is mocked: the server is the same binary the project runs by default, on a free port
with its data in a temporary folder, started through indexer.db.embedded (so every test run
also exercises the lifecycle code).
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pymongo
import pytest

from indexer import EmbeddedConfig, EmbeddedServer

REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    """One real SecantusDB for the session; stopped (SIGTERM) at the end."""
    home = tmp_path_factory.mktemp("secantus")
    server = EmbeddedServer(EmbeddedConfig(home=home, port=free_port(), cache_size="128M"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mongo_client(mongo_server: EmbeddedServer) -> Iterator[pymongo.MongoClient]:
    client = pymongo.MongoClient(mongo_server.uri, directConnection=True,
                                 serverSelectionTimeoutMS=5000)
    yield client
    client.close()


@pytest.fixture
def mongo_collection(mongo_client: pymongo.MongoClient):
    """A fresh, empty collection in a database of its own; dropped after the test."""
    db_name = f"test_{uuid.uuid4().hex[:12]}"
    yield mongo_client[db_name]["catalog"]
    mongo_client.drop_database(db_name)


@pytest.fixture
def mongo_env(mongo_server: EmbeddedServer, mongo_collection, tmp_path: Path) -> dict[str, str]:
    """Environment naming ``mongo_collection`` (for load_settings and CLI subprocesses)."""
    return {
        "MONGO_URI": mongo_server.uri + "/?directConnection=true",
        "DB_NAME": mongo_collection.database.name,
        "COLLECTION_NAME": mongo_collection.name,
        "DATA_DIR": str(tmp_path / "data"),
    }


CATALOG_COLOURS = {"red": (200, 40, 40), "navy": (20, 30, 110), "green": (40, 150, 60),
                   "yellow": (230, 210, 40)}
CATALOG_CATEGORIES = ("dress", "shirt", "toptee")


def draw_item(path: Path, category: str, colour: str, seed: int, size: int = 256) -> None:
    """A small deterministic product-like JPEG: a coloured garment shape on a light background."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), (245, 245, 245))
    d = ImageDraw.Draw(img)
    rgb = CATALOG_COLOURS[colour]
    w = size // 4 + (seed * 7) % (size // 4)
    top = size // 8 + (seed * 3) % (size // 8)
    if category == "dress":
        d.polygon([(size / 2 - w / 2, top), (size / 2 + w / 2, top), (size / 2 + w, size - 20),
                   (size / 2 - w, size - 20)], fill=rgb)
    else:
        bottom = size - 40 if category == "shirt" else size * 2 // 3
        d.rectangle([size / 2 - w / 2, top, size / 2 + w / 2, bottom], fill=rgb)
        d.rectangle([size / 2 - w, top, size / 2 + w, top + size // 8], fill=rgb)
    for k in range(seed % 5):  # stripes make items distinct within a colour
        y = top + 10 + 12 * k
        d.line([(size / 2 - w / 2, y), (size / 2 + w / 2, y)], fill=(255, 255, 255), width=3)
    img.save(path, format="JPEG", quality=90)


def write_catalog(root: Path, n: int, size: int = 256) -> list[str]:
    """Generated catalog in the project layout: root/images/*.jpg + root/metadata.csv."""
    from dataprep import write_metadata

    (root / "images").mkdir(parents=True, exist_ok=True)
    colours = list(CATALOG_COLOURS)
    rows = []
    for i in range(n):
        cat, colour = CATALOG_CATEGORIES[i % 3], colours[(i // 3) % len(colours)]
        item_id = f"item{i:04d}"
        draw_item(root / "images" / f"{item_id}.jpg", cat, colour, i, size)
        rows.append((item_id, cat, f"{colour} {cat} #{i}", (colour, str(i % 5))))
    write_metadata(root / "metadata.csv", ("colour", "stripes"), rows)
    return [row[0] for row in rows]


@pytest.fixture(scope="session")
def tiny_retriever():
    """A small randomly initialised real retriever (model.build_retriever, tiny config)."""
    from model import ModelConfig, build_retriever

    return build_retriever(ModelConfig.tiny(), seed=0)


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_retriever, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tiny_retriever`` saved as a checkpoint directory (for --checkpoint and load_retriever)."""
    return tiny_retriever.save(tmp_path_factory.mktemp("ckpt") / "tiny")


@pytest.fixture(scope="session")
def small_catalog(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A read-only generated catalog of 24 items (8 per category, 256 px JPEGs)."""
    root = tmp_path_factory.mktemp("catalog")
    return root, write_catalog(root, 24)


@pytest.fixture(scope="module")
def indexed_catalog(mongo_client: pymongo.MongoClient, tmp_path_factory: pytest.TempPathFactory,
                    tiny_retriever):
    """The app tests' catalog (tests.app_catalog: 24 garments in four colours) indexed with
    ``tiny_retriever`` into a database of its own, dropped after the module."""
    from tests.app_catalog import index_small_catalog, make_small_catalog

    catalog = make_small_catalog(tmp_path_factory.mktemp("catalog"), colours=4)
    coll = mongo_client[f"test_app_{uuid.uuid4().hex[:10]}"]["catalog"]
    assert index_small_catalog(catalog, tiny_retriever, coll) == 24
    yield coll
    mongo_client.drop_database(coll.database.name)


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch, mongo_server: EmbeddedServer, indexed_catalog,
            tiny_checkpoint: Path, tmp_path: Path) -> dict[str, str]:
    """The page's environment for AppTest: the indexed catalog, the tiny checkpoint, a data
    folder of the test's own, and every other app and session setting at its default."""
    env = {"MONGO_URI": mongo_server.uri + "/?directConnection=true",
           "DB_NAME": indexed_catalog.database.name, "COLLECTION_NAME": indexed_catalog.name,
           "CHECKPOINT": str(tiny_checkpoint), "DATA_DIR": str(tmp_path / "data")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("APP_MAX_UPLOAD_MB", "APP_TOP_K", "APP_DB_WAIT_S", "CATALOG_DIR",
                "SESSION_TTL_DAYS", "SESSION_MAX_TURNS", "SESSION_MAX_BYTES"):
        monkeypatch.delenv(key, raising=False)
    return env
