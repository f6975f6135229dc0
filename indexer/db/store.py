"""The catalog database layer: connecting (MONGO_URI or the embedded server) and the store.

Why here and not in each caller: the app, the indexer CLI and the benchmarks must agree on
when the embedded server is started, on failing fast (seconds, not pymongo's 30 s default)
and on never printing a password.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import pymongo
import pymongo.errors
from pymongo.collection import Collection

from indexer.db.embedded import EmbeddedServer, ping, port_open
from indexer.errors import DatabaseUnavailableError, PortInUseError
from project_settings import Settings

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_MS = 5000  # fail fast: a missing server should be reported in seconds
# How long a heartbeat may wait for an answer. pymongo's monitor uses connectTimeoutMS as its
# socket timeout and, when a heartbeat times out, cancels every operation in flight on that
# server ("operation cancelled"). SecantusDB answers nothing while it materialises a large
# result, about a minute for the app's load of a million vectors, so a 5 s heartbeat made
# such a catalog impossible to load. Failing fast is kept by serverSelectionTimeoutMS (a
# server that is down refuses connections at once).
HEARTBEAT_TIMEOUT_MS = 300_000

_USERINFO = re.compile(r"^(mongodb(?:\+srv)?://)([^@/]*)@")


def mask_uri(uri: str) -> str:
    """Hide the password of ``user:password@`` (and any password= option) in a URI."""
    def _mask(m: re.Match) -> str:
        user = m.group(2).split(":", 1)[0]
        return f"{m.group(1)}{user}:***@" if ":" in m.group(2) else m.group(0)

    masked = _USERINFO.sub(_mask, uri)
    return re.sub(r"(?i)(password=)[^&]*", r"\1***", masked)


def connect(uri: str, timeout_ms: int = CONNECT_TIMEOUT_MS, **client_kwargs) -> pymongo.MongoClient:
    """A client that has answered a ping; DatabaseUnavailableError (URI masked) otherwise."""
    client = pymongo.MongoClient(
        uri, serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=max(timeout_ms, HEARTBEAT_TIMEOUT_MS), **client_kwargs
    )
    try:
        client.admin.command("ping")
    except pymongo.errors.PyMongoError as exc:
        client.close()
        reason = str(exc).split(", Timeout:")[0][:300]
        raise DatabaseUnavailableError(
            f"Cannot reach MongoDB at {mask_uri(uri)} ({type(exc).__name__}: {reason}). "
            "Hint: check MONGO_URI in the environment or .env and that the server runs; "
            "unset MONGO_URI to use the embedded database (python -m indexer.db start)."
        ) from exc
    return client


def ensure_database(
    settings: Settings, *, start_embedded: bool = True, timeout_ms: int = CONNECT_TIMEOUT_MS
) -> pymongo.MongoClient:
    """Return a connected client, starting the embedded SecantusDB when it is the default.

    - MONGO_URI names another server: connect to it, never start anything.
    - MONGO_URI unset (or the default local address): reuse whatever MongoDB answers there,
      else start SecantusDB under ``settings.data_dir`` (``start_embedded=False`` only checks).
    """
    if not settings.uses_default_local_address:
        return connect(settings.effective_uri, timeout_ms)
    uri = settings.effective_uri
    if port_open(settings.embedded_host, settings.embedded_port) and ping(
        uri, timeout_ms=1500, directConnection=True
    ):
        return connect(uri, timeout_ms, directConnection=True)
    if not start_embedded:
        raise DatabaseUnavailableError(
            f"Nothing answers at {uri} and starting the embedded database was not requested. "
            "Hint: python -m indexer.db start, or set MONGO_URI."
        )
    server = EmbeddedServer.from_settings(settings)
    try:
        server.start()
    except PortInUseError as exc:
        raise DatabaseUnavailableError(str(exc)) from exc
    return connect(server.uri, timeout_ms, directConnection=True)


@dataclass(frozen=True)
class CatalogStore:
    """The two collections of one catalog: items and the record of index builds."""

    client: pymongo.MongoClient
    items: Collection
    builds: Collection

    @classmethod
    def open(cls, settings: Settings, client: pymongo.MongoClient | None = None) -> CatalogStore:
        client = client or ensure_database(settings)
        db = client[settings.db_name]
        return cls(client, db[settings.collection_name], db[settings.builds_collection_name])

    @classmethod
    def from_collection(cls, items: Collection) -> CatalogStore:
        """Store around an existing collection (tests, the app's cached client)."""
        return cls(items.database.client, items, items.database[f"{items.name}_builds"])
