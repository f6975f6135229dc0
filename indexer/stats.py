"""Catalog statistics and removal: what ``python -m indexer stats`` / ``drop`` report and do."""

from __future__ import annotations

from indexer.db.store import CatalogStore
from indexer.documents import effective_status, latest_build, latest_finished_build


def catalog_stats(store: CatalogStore) -> dict:
    """Counts per category and per model fingerprint, and the latest build record."""
    def group(field: str) -> dict[str, int]:
        rows = store.items.aggregate([{"$group": {"_id": f"${field}", "n": {"$sum": 1}}}])
        return {str(r["_id"]): r["n"] for r in sorted(rows, key=lambda r: str(r["_id"]))}

    last = latest_build(store)
    if last is not None:
        last["status"] = effective_status(last)
    last_done = latest_finished_build(store)
    return {
        "collection": store.items.full_name,
        "total": store.items.estimated_document_count(),
        "per_category": group("category"),
        "per_fingerprint": group("model"),
        # changed images that no longer decode: stored, but left out of search
        "quarantined": store.items.count_documents({"quarantined": {"$exists": True}}),
        "builds": store.builds.estimated_document_count(),
        "last_build": last,
        "last_finished_build": last_done,
    }


def drop_catalog(store: CatalogStore) -> tuple[int, int]:
    """Delete every item and build record; returns (items, builds) that existed."""
    counts = (store.items.estimated_document_count(), store.builds.estimated_document_count())
    store.items.drop()
    store.builds.drop()
    return counts
