"""The offline indexer and the catalog search: catalog files -> MongoDB documents -> FAISS.

The one door for the app, the benchmarks and the tests: ``from indexer import CatalogSearch``.
Exports are resolved lazily, so ``python -m indexer stats`` and the app's start-up checks do not
import PyTorch (only building an index needs the model).

Rooms: ``catalog`` (what to index), ``build`` (embed and upsert), ``documents`` (the item
document, build records, the latest-build query), ``search`` (FAISS over one model's vectors),
``snapshot`` (the loaded index on disk, memory-mapped at start),
``stats`` (counts and drop), ``vectors`` (BSON binary vectors), ``errors``, ``db`` (the
database: ``store`` connects, ``embedded`` runs SecantusDB, ``python -m indexer.db
start|stop|status``), ``cli`` (``python -m indexer build|stats|drop``).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_HOME = {
    "BuildConfig": "indexer.build",
    "BuildReport": "indexer.build",
    "build_index": "indexer.build",
    "report_dict": "indexer.build",
    "DEFAULT_CATEGORY": "indexer.catalog",
    "Catalog": "indexer.catalog",
    "CatalogItem": "indexer.catalog",
    "discover": "indexer.catalog",
    "parse_shard": "indexer.catalog",
    "shard_of": "indexer.catalog",
    "EmbeddedConfig": "indexer.db.embedded",
    "EmbeddedServer": "indexer.db.embedded",
    "ping": "indexer.db.embedded",
    "port_open": "indexer.db.embedded",
    "CatalogStore": "indexer.db.store",
    "connect": "indexer.db.store",
    "ensure_database": "indexer.db.store",
    "mask_uri": "indexer.db.store",
    "effective_status": "indexer.documents",
    "item_document": "indexer.documents",
    "item_metadata": "indexer.documents",
    "latest_finished_build": "indexer.documents",
    "record_finished_build": "indexer.documents",
    "DatabaseUnavailableError": "indexer.errors",
    "DimensionMismatchError": "indexer.errors",
    "EmbeddedDBError": "indexer.errors",
    "EmptyCatalogError": "indexer.errors",
    "FingerprintMismatchError": "indexer.errors",
    "IndexerError": "indexer.errors",
    "PortInUseError": "indexer.errors",
    "DatabaseOutage": "indexer.retry",
    "RetryPolicy": "indexer.retry",
    "call_with_retry": "indexer.retry",
    "CatalogSearch": "indexer.search",
    "SearchConfig": "indexer.search",
    "settings_config": "indexer.search",
    "Snapshot": "indexer.snapshot",
    "SnapshotError": "indexer.snapshot",
    "SnapshotKey": "indexer.snapshot",
    "SnapshotStore": "indexer.snapshot",
    "catalog_stats": "indexer.stats",
    "drop_catalog": "indexer.stats",
    "from_binary": "indexer.vectors",
    "stack_binaries": "indexer.vectors",
    "to_binary": "indexer.vectors",
}
__all__ = [
    "BuildConfig", "BuildReport", "Catalog", "CatalogItem", "CatalogSearch", "CatalogStore",
    "DEFAULT_CATEGORY", "DatabaseOutage", "DatabaseUnavailableError", "DimensionMismatchError",
    "EmbeddedConfig", "EmbeddedDBError", "EmbeddedServer", "EmptyCatalogError",
    "FingerprintMismatchError", "IndexerError", "PortInUseError", "RetryPolicy", "SearchConfig",
    "Snapshot", "SnapshotError", "SnapshotKey", "SnapshotStore", "build_index",
    "call_with_retry", "catalog_stats", "connect",
    "discover", "drop_catalog", "effective_status", "ensure_database", "from_binary",
    "item_document", "item_metadata", "latest_finished_build", "mask_uri", "parse_shard", "ping",
    "port_open", "record_finished_build", "report_dict", "settings_config", "shard_of",
    "stack_binaries", "to_binary",
]

if TYPE_CHECKING:
    from indexer.build import BuildConfig, BuildReport, build_index, report_dict
    from indexer.catalog import (
        DEFAULT_CATEGORY,
        Catalog,
        CatalogItem,
        discover,
        parse_shard,
        shard_of,
    )
    from indexer.db.embedded import EmbeddedConfig, EmbeddedServer, ping, port_open
    from indexer.db.store import CatalogStore, connect, ensure_database, mask_uri
    from indexer.documents import (
        effective_status,
        item_document,
        item_metadata,
        latest_finished_build,
        record_finished_build,
    )
    from indexer.errors import (
        DatabaseUnavailableError,
        DimensionMismatchError,
        EmbeddedDBError,
        EmptyCatalogError,
        FingerprintMismatchError,
        IndexerError,
        PortInUseError,
    )
    from indexer.retry import DatabaseOutage, RetryPolicy, call_with_retry
    from indexer.search import CatalogSearch, SearchConfig, settings_config
    from indexer.snapshot import Snapshot, SnapshotError, SnapshotKey, SnapshotStore
    from indexer.stats import catalog_stats, drop_catalog
    from indexer.vectors import from_binary, stack_binaries, to_binary


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(import_module(_HOME[name]), name)
    raise AttributeError(f"module 'indexer' has no attribute {name!r}")
