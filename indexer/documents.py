"""The documents the indexer stores, in one place: catalog items, build records, and the
"latest finished build" query that tells readers which catalog they hold.

Item document (DESIGN.md schema plus ``dim``)::

    {_id: item id, category, title, attributes, image_path, sha256, thumbnail (JPEG bytes,
     optional), embedding (BSON float32 binary vector), model (fingerprint), dim, indexed_at
     [, quarantined: {reason, since, sha256}  -- set by a build when a changed image no
     longer decodes; search leaves the item out until a build reads its image again]}

A finished build also records the catalog's words (``words``: its items' titles, categories and
attribute values, with those of the build finished before it), which the app's typo mender
must not change (``model.spelling``); kept with the build so a start reads one document
instead of every title.

Build records: a build writes "running" with its host, pid and a heartbeat, and ends as
"done", "failed" or "interrupted". A SIGKILLed or crashed process cannot write its own end, so
a record is judged by its heartbeat and process: a later build on the same host marks records
of dead processes "killed", and ``effective_status`` calls any running record without a
recent heartbeat "stale" (the build may have died on another machine, or lost the database).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from bson import ObjectId

from indexer.db.embedded import pid_alive
from indexer.db.store import CatalogStore
from indexer.vectors import to_binary

log = logging.getLogger(__name__)

HEARTBEAT_EVERY_S = 5.0  # at most one heartbeat write per this many seconds
STALE_AFTER = dt.timedelta(minutes=10)  # running without a heartbeat this long: "stale"


# ---- catalog items ----------------------------------------------------------------------------
def item_metadata(category: str, title: str, attributes: Mapping[str, str],
                  image_path: str | Path) -> dict:
    """The descriptive fields of an item document (what a metadata-only update rewrites)."""
    return {"category": category, "title": title, "attributes": dict(attributes),
            "image_path": str(image_path)}


def item_document(item_id: str, metadata: dict, *, sha256: str, vector: np.ndarray,
                  fingerprint: str, thumbnail: bytes | None = None,
                  indexed_at: dt.datetime | None = None) -> dict:
    """One catalog item as stored: ``metadata`` (from :func:`item_metadata`), the content hash
    of its image, its vector of model ``fingerprint`` and, when given, its thumbnail."""
    doc = {"_id": item_id, **metadata, "sha256": sha256}
    if thumbnail is not None:
        doc["thumbnail"] = thumbnail
    doc.update({"embedding": to_binary(vector), "model": fingerprint, "dim": int(len(vector)),
                "indexed_at": indexed_at or utc_now()})
    return doc


# ---- build records ----------------------------------------------------------------------------
class BuildRecord:
    """Writes one build's record: start, throttled heartbeats with progress, finish."""

    def __init__(self, store: CatalogStore, build_id: str):
        self.builds, self.id = store.builds, ObjectId(build_id)
        self._last_beat = 0.0

    def start(self, fields: dict) -> None:
        now = utc_now()
        self.builds.insert_one({"_id": self.id, "status": "running", "host": socket.gethostname(),
                                "pid": os.getpid(), "started_at": now, "heartbeat_at": now,
                                **fields})
        self.builds.create_index([("status", 1), ("finished_at", -1)])
        self._last_beat = time.monotonic()

    def heartbeat(self, counts: dict[str, int]) -> None:
        if time.monotonic() - self._last_beat < HEARTBEAT_EVERY_S:
            return
        self.builds.update_one({"_id": self.id}, {"$set": {"heartbeat_at": utc_now(),
                                                           "counts": counts}})
        self._last_beat = time.monotonic()

    def finish(self, status: str, summary: dict, error: str | None = None) -> None:
        """End the record: ``summary`` holds the build's counts, failures and totals."""
        fields = {"status": status, "finished_at": utc_now(), **summary}
        if error is not None:
            fields["error"] = error
        try:
            self.builds.update_one({"_id": self.id}, {"$set": fields})
        except Exception as exc:  # noqa: BLE001 -- never hide the error that ended the build
            if status == "done":
                raise
            log.warning("could not record the build as %s (%s); the next build marks it "
                        "killed", status, type(exc).__name__)


def mark_dead_builds(store: CatalogStore) -> int:
    """Mark "killed" the running records of this host whose process no longer exists."""
    host, killed = socket.gethostname(), 0
    for rec in store.builds.find({"status": "running", "host": host}, {"pid": 1}):
        if not pid_alive(rec.get("pid")):
            killed += store.builds.update_one(
                {"_id": rec["_id"], "status": "running"},
                {"$set": {"status": "killed", "finished_at": utc_now()}}).modified_count
    if killed:
        log.info("%d earlier build(s) on this host were killed before finishing", killed)
    return killed


def effective_status(record: dict, now: dt.datetime | None = None) -> str:
    """The record's status, with "stale" for a running build whose heartbeat stopped."""
    status = record.get("status", "unknown")
    beat = record.get("heartbeat_at") or record.get("started_at")
    if status == "running" and beat is not None:
        if beat.tzinfo is None:  # pymongo returns naive UTC datetimes by default
            beat = beat.replace(tzinfo=dt.UTC)
        if (now or utc_now()) - beat > STALE_AFTER:
            return "stale"
    return status


def record_finished_build(store: CatalogStore, fingerprint: str, dim: int, total: int,
                          started_at: dt.datetime | None = None, **fields) -> None:
    """A "done" record for vectors written without ``build_index`` (benchmark catalogs), so
    that searches load them like any indexed catalog."""
    now = utc_now()
    store.builds.insert_one({"_id": ObjectId(), "status": "done", "fingerprint": fingerprint,
                             "dim": dim, "started_at": started_at or now, "finished_at": now,
                             "total_for_fingerprint": total, **fields})
    store.builds.create_index([("status", 1), ("finished_at", -1)])


def latest_build(store: CatalogStore) -> dict | None:
    """The most recently started build record, whatever its status (None: never built),
    without its catalog words (``build_words`` reads them)."""
    return store.builds.find_one({}, sort=[("started_at", -1)], projection={"words": 0})


def latest_finished_build(store: CatalogStore) -> dict | None:
    """The most recently finished ("done") build record, without its failure list and
    catalog words: the build a search has loaded, and what ``is_stale`` compares against."""
    return store.builds.find_one({"status": "done"}, sort=[("finished_at", -1)],
                                 projection={"failures": 0, "words": 0})


def build_words(store: CatalogStore, build: dict | None) -> frozenset[str]:
    """The catalog words a finished build recorded (empty for a build that recorded none:
    one made before builds kept them, or a benchmark catalog's)."""
    if build is None:
        return frozenset()
    record = store.builds.find_one({"_id": build["_id"]}, {"words": 1}) or {}
    return frozenset(record.get("words", ()))


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
