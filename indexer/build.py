"""Index a catalog: embed every image that is new or changed and upsert it into MongoDB.

Idempotent and resumable by construction: ``_id`` is the item id, each batch is written with
upserts as soon as it is embedded, and an item whose stored ``sha256`` (of the file bytes) and
``model`` (retriever fingerprint) match is skipped before any decoding. A run killed at any
point therefore leaves only complete documents, and the next run embeds just the remainder.
Writes ride out a short database outage (``indexer.retry``: bounded retries with backoff);
a longer one ends the build with one :class:`BuildDatabaseError` saying how far it got.
An item whose image changed since it was indexed but can no longer be decoded is marked
``quarantined`` (search leaves it out) instead of keeping its stale vector.
Shards (``--shard i/n``) partition ids by a stable hash, so n workers never touch the same
document.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np
import pymongo.errors
import torch
from bson import ObjectId
from pymongo import ReplaceOne, UpdateOne
from pymongo.write_concern import WriteConcern
from tqdm import tqdm

from imaging import decode_batches, file_sha256
from indexer.catalog import Catalog, CatalogItem
from indexer.db.store import CatalogStore
from indexer.documents import (
    BuildRecord,
    build_words,
    item_document,
    item_metadata,
    latest_finished_build,
    mark_dead_builds,
    utc_now,
)
from indexer.errors import DatabaseUnavailableError, DimensionMismatchError, IndexerError
from indexer.retry import DatabaseOutage, RetryPolicy, call_with_retry
from model.spelling import catalog_words

log = logging.getLogger(__name__)

# The most catalog words a build records, the commonest first: about 3 MB of a build document
# (MongoDB refuses one over 16 MB, which a million distinct product codes in titles would be).
MAX_RECORDED_WORDS = 200_000

MAX_RECORDED_FAILURES = 1000  # failures listed in the build record (all are counted)
LOOKUP_CHUNK = 2000  # ids per $in query when looking up what is already stored
MAX_PENDING_WRITES = 2  # embedded batches waiting for the writer thread (bounds memory)


class TargetEncoder(Protocol):
    """What the indexer needs from a retriever (model.Retriever satisfies it)."""

    fingerprint: str
    dim: int

    def preprocess(self, image): ...

    def encode_target_tensors(self, x: torch.Tensor) -> np.ndarray: ...


@dataclass(frozen=True)
class BuildConfig:
    batch_size: int = 32  # images per model forward and per bulk write
    workers: int = 2  # DataLoader decode processes (0 = decode in the main process)
    replace: bool = False  # delete vectors of another dimension instead of refusing
    prune: bool = False  # delete stored items (of this category/shard) whose image is gone
    hash_threads: int = 4  # threads hashing files (I/O bound)
    progress: bool = True  # tqdm bar
    description: dict = field(default_factory=dict)  # extra fields for the build record
    db_wait_s: float = 60.0  # how long a write may wait for a database that stopped answering

    @property
    def retry(self) -> RetryPolicy:
        """Every database call of a build rides out an outage of up to ``db_wait_s``."""
        return RetryPolicy(wait_s=self.db_wait_s)


class BuildDatabaseError(DatabaseUnavailableError):
    """The database went away during a build and did not come back in time."""


@dataclass
class BuildReport:
    build_id: str
    fingerprint: str
    dim: int
    seen: int = 0
    embedded: int = 0
    skipped: int = 0  # already stored with the same content hash and fingerprint
    metadata_updated: int = 0  # same image, changed title/category/attributes
    failed: int = 0
    quarantined: int = 0  # stored items whose changed image no longer decodes: out of search
    failures: list[dict] = field(default_factory=list)
    replaced_other_dim: int = 0
    pruned: int = 0
    seconds: float = 0.0
    total_for_fingerprint: int = 0

    @property
    def images_per_s(self) -> float:
        return self.embedded / self.seconds if self.seconds else 0.0

    def counts(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in
                ("seen", "embedded", "skipped", "metadata_updated", "failed",
                 "quarantined")}

    def summary(self) -> dict:
        """What the build record keeps of this report when the build ends."""
        return {"seconds": round(self.seconds, 3), "counts": self.counts(),
                "failures": self.failures, "replaced_other_dim": self.replaced_other_dim,
                "pruned": self.pruned, "total_for_fingerprint": self.total_for_fingerprint}


def check_dimension(store: CatalogStore, dim: int, replace: bool) -> int:
    """Refuse (or with replace, delete) stored vectors whose dimension differs from ``dim``."""
    other = {"dim": {"$exists": True, "$ne": dim}}
    n = store.items.count_documents(other)
    if not n:
        return 0
    sample = store.items.find_one(other, {"dim": 1, "model": 1})
    if not replace:
        raise DimensionMismatchError(
            f"{store.items.full_name} already holds {n} vectors of dimension {sample['dim']} "
            f"(model {sample['model']}), but this checkpoint makes {dim}-dimensional vectors. "
            "Re-run with --replace to delete those documents and re-index them, or set "
            "COLLECTION_NAME to index into another collection."
        )
    log.warning("--replace: deleting %d documents with vectors of dimension != %d", n, dim)
    return store.items.delete_many(other).deleted_count


def build_index(catalog: Catalog, encoder: TargetEncoder, store: CatalogStore,
                config: BuildConfig = BuildConfig()) -> BuildReport:
    """Embed and upsert every new or changed item of ``catalog``; record the build.

    The build record says "running" with a heartbeat while it works, then "done", "failed"
    (an exception, recorded with its message) or "interrupted" (Ctrl-C or SIGTERM), so that
    ``indexer stats`` can tell a finished build from one that was killed."""
    t0 = time.monotonic()
    fp, dim = encoder.fingerprint, int(encoder.dim)
    report = BuildReport(build_id=str(ObjectId()), fingerprint=fp, dim=dim,
                         seen=len(catalog.items))
    report.replaced_other_dim = check_dimension(store, dim, config.replace)
    for item_id, path, reason in catalog.problems:
        _fail(report, item_id, path, reason)
    mark_dead_builds(store)
    record = BuildRecord(store, report.build_id)
    record.start({"fingerprint": fp, "dim": dim, "collection": store.items.full_name,
                  **config.description})
    try:
        todo, updates = _plan(catalog.items, store, fp, config, report)
        if updates:
            _write(store, updates, config, "metadata updates")
        log.info("%d items: %d to embed, %d unchanged, %d metadata-only updates, %d failed",
                 report.seen, len(todo), report.skipped, report.metadata_updated, report.failed)
        if todo:
            _embed_and_write(todo, encoder, store, config, report, record)
        if config.prune:
            report.pruned = prune_missing(catalog, store)
    except BaseException as exc:
        status = "failed" if isinstance(exc, Exception) else "interrupted"
        report.seconds = time.monotonic() - t0
        record.finish(status, report.summary(), error=f"{type(exc).__name__}: {exc}")
        if isinstance(exc, DatabaseOutage | pymongo.errors.ConnectionFailure):
            raise _outage_error(exc, report, config) from exc
        raise
    report.seconds = time.monotonic() - t0
    try:
        report.total_for_fingerprint = call_with_retry(
            lambda: store.items.count_documents({"model": fp}), "counting the catalog",
            config.retry)
        words = call_with_retry(lambda: words_to_record(catalog, store), "reading the catalog's "
                                "earlier words", config.retry)
        call_with_retry(lambda: record.finish("done", {**report.summary(), "words": words}),
                        "recording the build", config.retry)
    except DatabaseOutage as exc:
        raise _outage_error(exc, report, config) from exc
    return report


def words_to_record(catalog: Catalog, store: CatalogStore) -> list[str]:
    """The words a finished build records: those of ``catalog``'s titles (a plain folder's
    file names), categories and attribute values, with those the build finished before
    recorded (another folder, shard or category indexed into the same collection); at most
    MAX_RECORDED_WORDS, this catalog's commonest first. Two builds finishing at the same moment
    may each miss the other's new words until the next build."""
    texts = (t for item in catalog.items
             for t in (item.category, item.title or item.id, *item.attributes.values()))
    words = catalog_words(texts)
    earlier = build_words(store, latest_finished_build(store)) - words.keys()
    ranked = [*words, *sorted(earlier)]
    if len(ranked) > MAX_RECORDED_WORDS:
        log.warning("%d catalog words; the build records the commonest %d for the typo mender",
                    len(ranked), MAX_RECORDED_WORDS)
    return sorted(ranked[:MAX_RECORDED_WORDS])


def prune_missing(catalog: Catalog, store: CatalogStore) -> int:
    """Delete stored items of this run's scope (category, shard) whose image file is gone.

    Refuses an empty catalog: pointing --images at the wrong folder must not wipe the index."""
    if not catalog.items:
        raise IndexerError("--prune refused: the catalog has no items (wrong --images?)")
    keep = catalog.present_ids()
    gone = [doc["_id"] for doc in store.items.find({}, {"_id": 1, "category": 1})
            if doc["_id"] not in keep and catalog.in_scope(doc["_id"], doc.get("category"))]
    deleted = 0
    for i in range(0, len(gone), LOOKUP_CHUNK):
        deleted += store.items.delete_many({"_id": {"$in": gone[i:i + LOOKUP_CHUNK]}}).deleted_count
    if deleted:
        log.info("--prune: deleted %d items whose image is no longer in the catalog", deleted)
    return deleted


def _plan(items: Sequence[CatalogItem], store: CatalogStore, fp: str, config: BuildConfig,
          report: BuildReport) -> tuple[list[tuple[CatalogItem, str]], list[UpdateOne]]:
    """Hash files and compare with what is stored: (to embed with hash, metadata updates)."""
    with ThreadPoolExecutor(config.hash_threads) as pool:
        hashes = list(tqdm(pool.map(_safe_hash, [it.image_path for it in items]),
                           total=len(items), desc="hashing", unit="img",
                           disable=not config.progress or len(items) < 5000))
    fields = {"sha256": 1, "model": 1, "category": 1, "title": 1, "attributes": 1,
              "image_path": 1, "quarantined": 1}
    ids = [it.id for it in items]
    stored = call_with_retry(lambda: _stored_docs(store, ids, fields), "reading stored items",
                             config.retry)
    todo, updates = [], []
    for item, digest in zip(items, hashes, strict=True):
        doc = stored.get(item.id)
        if isinstance(digest, Exception):
            reason = f"{type(digest).__name__}: {digest}"
            _fail(report, item.id, str(item.image_path), reason)
            if doc is not None and not doc.get("quarantined"):
                updates.append(_quarantine(item.id, reason, None))
                report.quarantined += 1
            continue
        if doc is None or doc.get("sha256") != digest or doc.get("model") != fp:
            todo.append((item, digest))
            continue
        meta = _metadata(item)
        if doc.get("quarantined"):  # the image is back as it was indexed: searchable again
            updates.append(UpdateOne({"_id": item.id}, {"$set": meta,
                                                        "$unset": {"quarantined": ""}}))
            report.metadata_updated += 1
        elif any(doc.get(k) != v for k, v in meta.items()):
            updates.append(UpdateOne({"_id": item.id}, {"$set": meta}))
            report.metadata_updated += 1
        else:
            report.skipped += 1
    return todo, updates


def _embed_and_write(todo: list[tuple[CatalogItem, str]], encoder: TargetEncoder,
                     store: CatalogStore, config: BuildConfig, report: BuildReport,
                     record: BuildRecord) -> None:
    """Decode (workers) -> embed (this thread) -> documents and upserts (a writer thread).

    Why three stages: the model is the bottleneck, so nothing else may make it wait.
    Decoding, preprocessing and thumbnails run ahead in DataLoader workers; building the
    documents and the bulk write of batch i run in the writer thread while batch i+1 is
    embedded. At most ``MAX_PENDING_WRITES`` batches wait for the database, and an item counts
    as embedded only once its write returned, so an interrupted build still leaves complete
    documents only (the writer finishes what it was given before the error propagates)."""
    loader = decode_batches([it.image_path for it, _ in todo], encoder.preprocess,
                            config.batch_size, config.workers)
    bar = tqdm(total=len(todo), desc="indexing", unit="img", disable=not config.progress)
    pending: deque[Future] = deque()
    with ThreadPoolExecutor(1, thread_name_prefix="indexer-upsert") as writer:
        try:
            for batch in loader:
                stale = []
                for pos, reason in batch.failed:
                    item = todo[pos][0]
                    _fail(report, item.id, str(item.image_path), reason)
                    stale.append(_quarantine(item.id, reason, todo[pos][1]))
                if stale:  # matches only items stored from an older image: a stale vector
                    result = _write(store, stale, config, "quarantining undecodable items")
                    report.quarantined += result.modified_count
                if batch.ok:
                    vectors = encoder.encode_target_tensors(batch.tensors)
                    pending.append(writer.submit(_write_batch, store, todo, batch.ok,
                                                 batch.thumbnails, vectors, encoder.fingerprint,
                                                 config))
                    while len(pending) > MAX_PENDING_WRITES or (pending and pending[0].done()):
                        report.embedded += pending.popleft().result()
                call_with_retry(lambda: record.heartbeat(report.counts()), "the build heartbeat",
                                config.retry)
                bar.update(len(batch.ok) + len(batch.failed))
            while pending:
                report.embedded += pending.popleft().result()
        finally:  # interrupted or failed: count what the writer still stored
            for future in pending:
                if future.exception() is None:
                    report.embedded += future.result()
    bar.close()


def _write_batch(store: CatalogStore, todo: list[tuple[CatalogItem, str]], positions: list[int],
                 thumbnails: list[bytes], vectors: np.ndarray, fingerprint: str,
                 config: BuildConfig) -> int:
    """Upsert one embedded batch (runs in the writer thread); returns the documents written."""
    now = utc_now()
    ops = [ReplaceOne({"_id": todo[pos][0].id},
                      item_document(todo[pos][0].id, _metadata(todo[pos][0]),
                                    sha256=todo[pos][1], vector=vec, fingerprint=fingerprint,
                                    thumbnail=thumb, indexed_at=now),
                      upsert=True)
           for pos, thumb, vec in zip(positions, thumbnails, vectors, strict=True)]
    _write(store, ops, config, "writing embedded items")
    return len(ops)


def _stored_docs(store: CatalogStore, ids: list[str], fields: dict) -> dict[str, dict]:
    stored: dict[str, dict] = {}
    for i in range(0, len(ids), LOOKUP_CHUNK):
        for doc in store.items.find({"_id": {"$in": ids[i:i + LOOKUP_CHUNK]}}, fields):
            stored[doc["_id"]] = doc
    return stored


def _write(store: CatalogStore, ops: list, config: BuildConfig, what: str):
    """An unordered bulk write of idempotent operations, journaled, retried through a short
    outage.

    Why journaled (``j=True``): with the default ``w:1`` the server acknowledges before its
    journal reaches the disk, and a SIGKILLed SecantusDB lost 18 of 50 acknowledged inserts
    here; a build that believed those items stored would never write them again."""
    wc = store.items.write_concern.document
    items = store.items.with_options(write_concern=WriteConcern(**{**wc, "j": True}))
    return call_with_retry(lambda: items.bulk_write(ops, ordered=False), what,
                           config.retry)


def _quarantine(item_id: str, reason: str, digest: str | None) -> UpdateOne:
    """Take a stored item out of search: its image changed and the new one does not decode.

    Why not delete it: its metadata and thumbnail are still right, and the next build that can
    read the image replaces the whole document (a ReplaceOne drops this flag)."""
    flag = {"reason": reason[:500], "since": utc_now(), "sha256": digest}
    query = {"_id": item_id} if digest is None else {"_id": item_id, "sha256": {"$ne": digest}}
    return UpdateOne(query, {"$set": {"quarantined": flag}})


def _outage_error(exc: BaseException, report: BuildReport, config: BuildConfig) -> IndexerError:
    cause = exc.cause if isinstance(exc, DatabaseOutage) else exc
    return BuildDatabaseError(
        f"the database stopped answering during the build and did not come back within "
        f"{config.db_wait_s:.0f} s ({type(cause).__name__}). This run stored {report.embedded} "
        f"newly embedded items before that ({report.skipped} more were already stored "
        "unchanged); nothing stored is lost. Once the database answers again (embedded "
        "default: `python -m indexer.db start`), run the same command: it resumes with the "
        "items that are still missing.")


def _metadata(item: CatalogItem) -> dict:
    return item_metadata(item.category, item.title, item.attributes, item.image_path.resolve())


def _safe_hash(path) -> str | Exception:
    try:
        return file_sha256(path)
    except OSError as exc:
        return exc


def _fail(report: BuildReport, item_id: str, path: str, reason: str) -> None:
    report.failed += 1
    if len(report.failures) < MAX_RECORDED_FAILURES:
        report.failures.append({"id": item_id, "path": path, "error": reason})
    log.debug("skipped %s (%s): %s", item_id, path, reason)


def report_dict(report: BuildReport) -> dict:
    return {**asdict(report), "images_per_s": round(report.images_per_s, 1)}
