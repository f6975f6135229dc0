"""Catalog search for the app: every vector of one model fingerprint, loaded once into FAISS.

Why load everything and rebuild only on a new build: the catalog changes when the indexer runs,
not per query; a query then costs one FAISS search plus one ``$in`` query for the documents.
Vectors are kept sorted by category so a category filter is a contiguous id range: exact
search with an ``IDSelectorRange`` (flat index) or an exact scan of that slice (HNSW index,
where filtered graph search would lose recall on small categories).

Exact search scans half-precision copies of the vectors and ranks the best few times k again by
their float32 vectors (``SearchConfig.exact_scan``): a single query's scan is bound by memory
bandwidth, so reading 2 bytes per component instead of 4 halves it (100k vectors: 1.5 against
3.4 ms on this CPU, bench/latency.py), and the rerank gives back float32 scores and order. The
cost is memory: the float32 vectors are kept beside the copies (1.5x the float32 size).

Snapshots (``SearchConfig.snapshot_dir``, ``indexer.snapshot``): after loading from the
database the index is written to disk keyed by the build and the fingerprint, and the next
start (or another replica) maps it instead of reloading, unless it is missing, stale, truncated
or corrupt, which is logged once and repaired by a reload.

Thread safety: the app shares one instance between every browser session (threads), and a
rebuild replaces everything at once. All loaded state lives in one immutable :class:`_Loaded`
snapshot; every read takes the current snapshot under ``_lock`` and uses only that snapshot,
and ``refresh`` builds the new snapshot aside and swaps it in under the lock. So a search or a
random pick never pairs the ids of one load with the ranges or the FAISS index of another.
Items the indexer quarantined (their image changed and no longer decodes) are not loaded.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import logging
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import faiss
import numpy as np
import pymongo.errors

from indexer.db.store import CatalogStore
from indexer.documents import build_words, latest_finished_build
from indexer.errors import (
    DatabaseUnavailableError,
    EmptyCatalogError,
    FingerprintMismatchError,
)
from indexer.snapshot import (
    FP16_SIMD_WIDTH,
    SnapshotError,
    SnapshotKey,
    SnapshotStore,
    fp16_scan_dim,
)
from indexer.vectors import stack_binaries
from project_settings import Settings

log = logging.getLogger(__name__)

ADD_CHUNK = 100_000  # vectors per FAISS add call (HNSW, the half-precision scan's padded copies)


@dataclass(frozen=True)
class SearchConfig:
    index: str = "auto"  # auto | flat | hnsw
    hnsw_threshold: int = 500_000  # auto: HNSW from this many vectors (flat ~5 ms/query here)
    hnsw_m: int = 64  # HNSW graph degree: 32 left a tenth of the 1M bench catalog's 654-d
    # vectors unreachable (recall@10 0.89-0.91 at efSearch 512, 0.95 with efConstruction 200),
    # 64 gives 0.99 for 1.5x the build time (docs/benchmarks.md, Query latency)
    hnsw_ef_construction: int = 80
    hnsw_ef_search: int = 512  # higher = better recall, slower (~1.1 ms per query at 1M here)
    exact_scan: str = "fp16"  # flat index: fp16 (scan half-precision copies, rerank the best
    # exact_rerank x k by float32) | fp32 (scan the float32 vectors)
    exact_rerank: int = 4
    load_batch: int = 5000  # documents per cursor batch when loading vectors
    threads: int = 1  # FAISS OpenMP threads: on the shared 2-core CPU one thread answered a
    # single 20k flat query in 2.3 ms, two threads in 49 ms (spinning against other processes)
    # FAISS switches from its SIMD scan to BLAS from this many queries. FAISS's own default
    # keeps single queries (the app's case) on the scan: 4.5 ms p50 at 100k vectors here, vs
    # 18.5 ms with a threshold of 20 (bench/latency.py "flat-seq" vs "flat" rows); large
    # offline batches may set 20 (DESIGN.md measured batch-100 search 2-4x faster with it).
    blas_threshold: int = 128_000
    # Index snapshot folder (indexer.snapshot): a start maps the index written after the
    # latest build instead of reloading every vector from MongoDB. None: no snapshots.
    snapshot_dir: str | None = None
    snapshot_verify: str = "full"  # full: sizes + CRC32 of every file (~0.4 s per 1M
    # vectors here); size: sizes only

    def snapshot_params(self) -> str:
        """The settings that shape a stored index (part of its snapshot key)."""
        return (f"threshold={self.hnsw_threshold},M={self.hnsw_m},"
                f"efConstruction={self.hnsw_ef_construction},exact={self.exact_scan},"
                f"pad={FP16_SIMD_WIDTH}")


def settings_config(settings: Settings, **overrides) -> SearchConfig:
    """The search configuration of ``settings``: its snapshot folder (INDEX_SNAPSHOT_DIR)."""
    snapshots = settings.index_snapshot_dir
    return SearchConfig(**{"snapshot_dir": str(snapshots) if snapshots else None, **overrides})


@dataclass(frozen=True)
class _Loaded:
    """One load of the catalog: never changed after it is made, replaced whole by refresh."""

    ids: np.ndarray  # (N,) item ids, sorted by category
    vectors: np.ndarray  # (N, D) float32, same order
    ranges: dict[str, tuple[int, int]]  # category -> [lo, hi) slice of ids
    index: faiss.Index | None
    labels: np.ndarray | None  # HNSW label -> position (None: identity)
    build: dict | None  # the build record this load corresponds to
    seconds: float = 0.0
    source: str = "database"  # database | snapshot
    words: frozenset[str] = frozenset()  # the build's catalog words (build_words)

    @property
    def index_kind(self) -> str:
        return "hnsw" if isinstance(self.index, faiss.IndexHNSWFlat) else "flat"

    @property
    def reranks(self) -> bool:
        """True when the index scans half-precision copies (rank them again by ``vectors``)."""
        return isinstance(self.index, faiss.IndexScalarQuantizer)

    @functools.cached_property
    def id_order(self) -> np.ndarray:
        """Positions that sort ``ids``, made on first use (only clicks look items up by id)."""
        return np.argsort(self.ids, kind="stable")

    def positions(self, ids: Sequence[str]) -> np.ndarray:
        """Positions of ``ids`` in this load (ids not loaded are left out), by binary search."""
        order, found = self.id_order, []
        for item in ids:
            at = bisect.bisect_left(order, item, key=lambda j: str(self.ids[j]))
            if at < len(order) and str(self.ids[order[at]]) == item:
                found.append(order[at])
        return np.asarray(found, dtype=np.int64)


_NOTHING_LOADED = _Loaded(np.empty(0, dtype=object), np.zeros((0, 0), np.float32), {}, None,
                          None, None)


class CatalogSearch:
    """Top-K search over the vectors of one fingerprint, with optional category filter."""

    def __init__(self, store: CatalogStore, fingerprint: str,
                 config: SearchConfig = SearchConfig()):
        self.store = store
        self.fingerprint = fingerprint
        self.config = config
        faiss.cvar.distance_compute_blas_threshold = config.blas_threshold
        faiss.omp_set_num_threads(config.threads)
        self._lock = threading.Lock()  # guards reading and swapping self._state
        self._reloading = threading.Lock()  # one reload from the database at a time
        self._state = _NOTHING_LOADED
        self.refresh(force=True)

    @classmethod
    def from_settings(cls, settings: Settings, fingerprint: str,
                      config: SearchConfig | None = None) -> CatalogSearch:
        return cls(CatalogStore.open(settings), fingerprint, config or settings_config(settings))

    def _snapshot(self) -> _Loaded:
        with self._lock:
            return self._state

    # ---- properties (each reads one consistent snapshot) ----------------------------------
    @property
    def ids(self) -> np.ndarray:
        return self._snapshot().ids

    @property
    def vectors(self) -> np.ndarray:
        return self._snapshot().vectors

    @property
    def ranges(self) -> dict[str, tuple[int, int]]:
        return self._snapshot().ranges

    @property
    def last_build(self) -> dict | None:
        """The builds document the index was loaded at."""
        return self._snapshot().build

    @property
    def load_seconds(self) -> float:
        return self._snapshot().seconds

    @property
    def load_source(self) -> str:
        """Where the current index came from: "snapshot" or "database"."""
        return self._snapshot().source

    @property
    def faiss_index(self) -> faiss.Index | None:
        return self._snapshot().index

    @property
    def size(self) -> int:
        return len(self._snapshot().ids)

    @property
    def dim(self) -> int:
        return self._snapshot().vectors.shape[1]

    @property
    def categories(self) -> dict[str, int]:
        """Category -> number of indexed items (sorted by name)."""
        return {c: hi - lo for c, (lo, hi) in self._snapshot().ranges.items()}

    @property
    def index_kind(self) -> str:
        return self._snapshot().index_kind

    @property
    def words(self) -> frozenset[str]:
        """The loaded build's catalog words, for the query's typo mender
        (``Retriever.use_catalog_words``); empty when the build recorded none."""
        return self._snapshot().words

    # ---- loading --------------------------------------------------------------------------
    def _latest_build(self) -> dict | None:
        try:
            return latest_finished_build(self.store)
        except pymongo.errors.PyMongoError as exc:
            raise DatabaseUnavailableError(f"cannot read the builds collection: {exc}") from exc

    def is_stale(self) -> bool:
        """True when a build finished (or the catalog was dropped) since the last load."""
        latest = self._latest_build()
        return (latest or {}).get("_id") != (self._snapshot().build or {}).get("_id")

    def refresh(self, force: bool = False) -> bool:
        """Reload vectors when stale (or forced); True when it reloaded.

        The new state is loaded while searches go on against the old one, then swapped in at
        once."""
        with self._reloading:
            if not force and not self.is_stale():
                return False
            build = self._latest_build()
            key = self._snapshot_key(build)
            state = self._from_snapshot(key, build) if key else None
            if state is None:
                state = self._from_database(build)
                if key:
                    self._write_snapshot(key, state)
            state = dataclasses.replace(state, words=self._words(build))
            with self._lock:
                self._state = state
        log.info("loaded %d vectors (dim %d, %s) of model %s from the %s in %.2f s",
                 len(state.ids), state.vectors.shape[1], state.index_kind, self.fingerprint,
                 state.source, state.seconds)
        return True

    def _from_database(self, build: dict | None) -> _Loaded:
        t0 = time.monotonic()
        ids, cats, vectors = self._load_vectors()
        order = np.argsort(cats, kind="stable")
        ids, cats, vectors = ids[order], cats[order], vectors[order]
        names, starts, counts = np.unique(cats, return_index=True, return_counts=True)
        ranges = {str(n): (int(s), int(s + c)) for n, s, c in zip(names, starts, counts,
                                                                  strict=True)}
        index, labels = self._make_index(vectors)
        return _Loaded(ids, vectors, ranges, index, labels, build, time.monotonic() - t0)

    def _words(self, build: dict | None) -> frozenset[str]:
        """Best effort: without them the mender only knows its own lists, which is no reason
        to refuse the loaded vectors."""
        try:
            return build_words(self.store, build)
        except pymongo.errors.PyMongoError as exc:
            log.warning("catalog words not read (%s); typos are mended without them",
                        type(exc).__name__)
            return frozenset()

    # ---- snapshots (indexer.snapshot) -----------------------------------------------------
    def _snapshots(self) -> SnapshotStore | None:
        if not self.config.snapshot_dir:
            return None
        return SnapshotStore(self.config.snapshot_dir, self.config.snapshot_verify)

    def _snapshot_key(self, build: dict | None) -> SnapshotKey | None:
        """None without a snapshot folder or a finished build to key it by."""
        if not self.config.snapshot_dir or not build:
            return None
        return SnapshotKey(self.store.items.full_name, self.fingerprint, str(build["_id"]),
                           self.config.index, self.config.snapshot_params())

    def _from_snapshot(self, key: SnapshotKey, build: dict) -> _Loaded | None:
        """The snapshot of ``key`` as a loaded state, or None (logged once, with the reason)."""
        try:
            snap = self._snapshots().load(key)
        except SnapshotError as exc:
            level = logging.WARNING if exc.reason in ("truncated", "corrupt") else logging.INFO
            log.log(level, "index snapshot %s (%s); loading from MongoDB and rewriting it",
                    exc.reason, exc.detail)
            return None
        if isinstance(snap.index, faiss.IndexHNSW):
            snap.index.hnsw.efSearch = self.config.hnsw_ef_search
        return _Loaded(snap.ids, snap.vectors, snap.ranges, snap.index, snap.labels, build,
                       snap.seconds, source="snapshot")

    def _write_snapshot(self, key: SnapshotKey, state: _Loaded) -> None:
        """Best effort: a read-only or full volume costs the next start a reload, nothing more."""
        t0 = time.monotonic()
        try:
            path = self._snapshots().save(key, state.ids, state.vectors, state.ranges,
                                          state.index, state.labels)
        except (OSError, RuntimeError) as exc:
            log.warning("could not write the index snapshot under %s: %s",
                        self.config.snapshot_dir, exc)
            return
        log.info("wrote index snapshot %s in %.2f s", path, time.monotonic() - t0)

    def _load_vectors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        items = self.store.items
        try:
            live = {"model": self.fingerprint, "quarantined": {"$exists": False}}
            first = items.find_one(live, {"dim": 1})
            if first is None:
                self._raise_empty()
            dim = int(first["dim"])
            cursor = items.find(live,
                                {"_id": 1, "category": 1, "embedding": 1},
                                batch_size=self.config.load_batch)
            ids, cats, blobs = [], [], []
            for doc in cursor:
                ids.append(doc["_id"])
                cats.append(doc.get("category") or "")
                blobs.append(doc["embedding"])
        except pymongo.errors.PyMongoError as exc:
            raise DatabaseUnavailableError(
                f"cannot load vectors from {items.full_name}: {exc}") from exc
        vectors = np.ascontiguousarray(stack_binaries(blobs, dim))
        return np.array(ids, dtype=object), np.array(cats, dtype=str), vectors

    def _raise_empty(self) -> None:
        others = list(self.store.items.aggregate([
            {"$group": {"_id": "$model", "n": {"$sum": 1}}}, {"$sort": {"n": -1}}]))
        where = self.store.items.full_name
        if others:
            listed = ", ".join(f"{o['_id']} ({o['n']} items)" for o in others[:5])
            raise FingerprintMismatchError(
                f"The catalog {where} was indexed with another model: {listed}; the loaded "
                f"checkpoint has fingerprint {self.fingerprint}. Re-index with "
                "`python -m indexer build --images DIR --checkpoint <this checkpoint>` or load "
                "the checkpoint the catalog was built with.")
        raise EmptyCatalogError(
            f"The catalog {where} is empty: nothing is indexed yet. Run "
            "`python -m indexer build --images DIR` (see README, Indexing).")

    def _make_index(self, vectors: np.ndarray) -> tuple[faiss.Index, np.ndarray | None]:
        """The FAISS index of ``vectors`` and its label -> position map (None: identity)."""
        kind = self.config.index
        if kind == "auto":
            kind = "hnsw" if len(vectors) >= self.config.hnsw_threshold else "flat"
        if kind == "hnsw":
            return self._make_hnsw(vectors)
        if kind != "flat":
            raise ValueError(f"SearchConfig.index must be auto, flat or hnsw, got {kind!r}")
        if self.config.exact_scan == "fp16":
            index = faiss.IndexScalarQuantizer(fp16_scan_dim(vectors.shape[1]),
                                               faiss.ScalarQuantizer.QT_fp16,
                                               faiss.METRIC_INNER_PRODUCT)
        elif self.config.exact_scan == "fp32":
            index = faiss.IndexFlatIP(vectors.shape[1])
        else:
            raise ValueError("SearchConfig.exact_scan must be fp16 or fp32, got "
                             f"{self.config.exact_scan!r}")
        for i in range(0, len(vectors), ADD_CHUNK):  # chunks: no second full copy
            index.add(_padded(vectors[i:i + ADD_CHUNK], index.d))
        return index, None

    def _make_hnsw(self, vectors: np.ndarray) -> tuple[faiss.Index, np.ndarray]:
        """HNSW graph built from the vectors in a shuffled order.

        ``vectors`` are sorted by category, and HNSW's graph quality assumes points arrive
        in no particular order; inserting one category after another gave a slightly worse
        graph in a one-off FAISS experiment during development (not kept as a benchmark).
        The returned labels map each graph label back to its position in ``vectors``."""
        index = faiss.IndexHNSWFlat(vectors.shape[1], self.config.hnsw_m,
                                    faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self.config.hnsw_ef_construction
        index.hnsw.efSearch = self.config.hnsw_ef_search
        labels = np.random.default_rng(0).permutation(len(vectors))
        for i in range(0, len(vectors), ADD_CHUNK):  # chunks: no second full copy
            index.add(vectors[labels[i:i + ADD_CHUNK]])
        return index, labels

    # ---- querying -------------------------------------------------------------------------
    def search(self, query_vec: np.ndarray, k: int = 10,
               category: str | None = None) -> list[tuple[str, float]]:
        """Top-k (id, inner-product score) for one (D,) query, best first."""
        q = np.asarray(query_vec, dtype=np.float32)
        if q.ndim != 1:
            raise ValueError(f"search takes one (D,) vector; use search_batch for {q.shape}")
        return self.search_batch(q[None, :], k, category)[0]

    def search_batch(self, queries: np.ndarray, k: int = 10,
                     category: str | None = None) -> list[list[tuple[str, float]]]:
        """Top-k for each row of an (N, D) query matrix."""
        state = self._snapshot()
        q = np.ascontiguousarray(queries, dtype=np.float32)
        dim, size = state.vectors.shape[1], len(state.ids)
        if q.ndim != 2 or q.shape[1] != dim:
            raise FingerprintMismatchError(
                f"query vectors have shape {q.shape}, the catalog holds {dim}-dimensional "
                "vectors: the query model is not the one the catalog was indexed with")
        lo, hi = 0, size
        if category is not None:
            if category not in state.ranges:
                return [[] for _ in range(len(q))]
            lo, hi = state.ranges[category]
        k = min(k, hi - lo)
        if k <= 0:
            return [[] for _ in range(len(q))]
        whole = (lo, hi) == (0, size)
        if state.index_kind == "flat":
            params = None if whole else faiss.SearchParameters(sel=faiss.IDSelectorRange(lo, hi))
            if state.reranks:
                _, candidates = state.index.search(_padded(q, state.index.d),
                                                   min(k * self.config.exact_rerank, hi - lo),
                                                   params=params)
                scores, idx = _rerank(q, state.vectors, candidates, k)
            else:
                scores, idx = state.index.search(q, k, params=params)
        elif whole:
            scores, idx = state.index.search(q, k)
            idx = np.where(idx >= 0, state.labels[np.maximum(idx, 0)], -1)  # insertion order
        else:
            scores, idx = faiss.knn(q, state.vectors[lo:hi], k,
                                    metric=faiss.METRIC_INNER_PRODUCT)
            idx = idx + lo
        return [[(str(state.ids[j]), float(s)) for j, s in zip(row_i, row_s, strict=True)
                 if j >= 0] for row_i, row_s in zip(idx, scores, strict=True)]

    def random_id(self, category: str | None = None,
                  rng: random.Random | None = None) -> str | None:
        """A random loaded item (of ``category`` when given) without a database query; None
        when there is none. Ids are sorted by category, so a category pick is a slice."""
        state, rng = self._snapshot(), rng or random.Random()
        lo, hi = (0, len(state.ids)) if category is None else state.ranges.get(category, (0, 0))
        return str(state.ids[rng.randrange(lo, hi)]) if hi > lo else None

    def vectors_of(self, ids: Sequence[str]) -> np.ndarray:
        """(N, D) stored vectors of ``ids`` in that order, from the loaded index (not the
        database); ids not loaded are left out. For the app's "More like this" clicks."""
        state = self._snapshot()
        return state.vectors[state.positions(ids)]

    def fetch(self, ids: list[str], include_thumbnail: bool = True) -> list[dict]:
        """Documents for ``ids`` in one query, in the same order, without the embedding."""
        projection = {"embedding": 0} if include_thumbnail else {"embedding": 0, "thumbnail": 0}
        try:
            docs = {d["_id"]: d for d in self.store.items.find({"_id": {"$in": list(ids)}},
                                                               projection)}
        except pymongo.errors.PyMongoError as exc:
            raise DatabaseUnavailableError(f"cannot fetch catalog documents: {exc}") from exc
        return [docs[i] for i in ids if i in docs]


def _padded(vectors: np.ndarray, dim: int) -> np.ndarray:
    """(N, D) float32 rows with zero columns up to ``dim``: the inner products are unchanged."""
    if vectors.shape[1] == dim:
        return vectors
    out = np.zeros((len(vectors), dim), np.float32)
    out[:, :vectors.shape[1]] = vectors
    return out


def _rerank(queries: np.ndarray, vectors: np.ndarray, candidates: np.ndarray, k: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """The best k of each row's candidate positions by float32 inner product with its query
    (-1 positions, where FAISS found fewer, stay last with score -inf)."""
    scores = np.einsum("nd,ncd->nc", queries, vectors[np.maximum(candidates, 0)])
    scores[candidates < 0] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, 1), np.take_along_axis(candidates, order, 1)
