"""Shared fixtures: a real embedded SecantusDB for the whole session, fresh collections per test.

Nothing is mocked: the server is the same binary the project runs by default, on a free port
with its data in a temporary folder, started through indexer.embedded_db (so every test run
also exercises the lifecycle code).
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pymongo
import pytest

from indexer.embedded_db import EmbeddedConfig, EmbeddedServer

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
    """Environment variables naming ``mongo_collection`` (for load_settings and CLI subprocesses)."""
    return {
        "MONGO_URI": mongo_server.uri + "/?directConnection=true",
        "DB_NAME": mongo_collection.database.name,
        "COLLECTION_NAME": mongo_collection.name,
        "DATA_DIR": str(tmp_path / "data"),
    }
