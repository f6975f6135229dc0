"""Catalog search for the app: every vector of one model fingerprint, loaded once into FAISS.

Why load everything and rebuild only on a new build: the catalog changes when the indexer runs,
not per query; a query then costs one FAISS search plus one ``$in`` query for the documents.
Vectors are kept sorted by category so a category filter is a contiguous id range: exact
search with an ``IDSelectorRange`` (flat index) or an exact scan of that slice (HNSW index,
where filtered graph search would lose recall on small categories).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import faiss
import numpy as np
import pymongo.errors

from indexer.connect import CatalogStore
from indexer.errors import (
    DatabaseUnavailableError,
    EmptyCatalogError,
    FingerprintMismatchError,
)
from indexer.settings import Settings
from indexer.vectors import stack_binaries

log = logging.getLogger(__name__)

HNSW_ADD_CHUNK = 100_000  # vectors per HNSW add call


@dataclass(frozen=True)
class SearchConfig:
    index: str = "auto"  # auto | flat | hnsw
    hnsw_threshold: int = 500_000  # auto: HNSW from this many vectors (flat ~5 ms/query here)
    hnsw_m: int = 32  # HNSW graph degree
    hnsw_ef_construction: int = 80
    hnsw_ef_search: int = 512  # higher = better recall, slower (~0.5 ms per query at 1M here)
    load_batch: int = 5000  # documents per cursor batch when loading vectors
    threads: int = 1  # FAISS OpenMP threads: on the shared 2-core CPU one thread answered a
    # single 20k flat query in 2.3 ms, two threads in 49 ms (spinning against other processes)
    # FAISS switches from its SIMD scan to BLAS from this many queries. FAISS's own default
    # keeps single queries (the app's case) on the scan: 4.5 ms p50 at 100k vectors here, vs
    # 18.5 ms with a threshold of 20 (bench/latency.py "flat-seq" vs "flat" rows); large
    # offline batches may set 20 (DESIGN.md measured batch-100 search 2-4x faster with it).
    blas_threshold: int = 128_000


class CatalogSearch:
    """Top-K search over the vectors of one fingerprint, with optional category filter."""

    def __init__(self, store: CatalogStore, fingerprint: str,
                 config: SearchConfig = SearchConfig()):
        self.store = store
        self.fingerprint = fingerprint
        self.config = config
        faiss.cvar.distance_compute_blas_threshold = config.blas_threshold
        faiss.omp_set_num_threads(config.threads)
        self.ids: np.ndarray = np.empty(0, dtype=object)
        self.vectors = np.zeros((0, 0), np.float32)
        self.ranges: dict[str, tuple[int, int]] = {}
        self.last_build: dict | None = None
        self.load_seconds = 0.0
        self._index: faiss.Index | None = None
        self._labels: np.ndarray | None = None  # HNSW label -> position (None: identity)
        self.refresh(force=True)

    @classmethod
    def from_settings(cls, settings: Settings, fingerprint: str,
                      config: SearchConfig = SearchConfig()) -> CatalogSearch:
        return cls(CatalogStore.open(settings), fingerprint, config)

    # ---- properties -----------------------------------------------------------------------
    @property
    def size(self) -> int:
        return len(self.ids)

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    @property
    def categories(self) -> dict[str, int]:
        """Category -> number of indexed items (sorted by name)."""
        return {c: hi - lo for c, (lo, hi) in self.ranges.items()}

    @property
    def index_kind(self) -> str:
        return "hnsw" if isinstance(self._index, faiss.IndexHNSWFlat) else "flat"

    # ---- loading --------------------------------------------------------------------------
    def _latest_build(self) -> dict | None:
        try:
            return self.store.builds.find_one({"status": "done"}, sort=[("finished_at", -1)],
                                              projection={"failures": 0})
        except pymongo.errors.PyMongoError as exc:
            raise DatabaseUnavailableError(f"cannot read the builds collection: {exc}") from exc

    def is_stale(self) -> bool:
        """True when a build finished (or the catalog was dropped) since the last load."""
        latest = self._latest_build()
        return (latest or {}).get("_id") != (self.last_build or {}).get("_id")

    def refresh(self, force: bool = False) -> bool:
        """Reload vectors when stale (or forced); True when it reloaded."""
        if not force and not self.is_stale():
            return False
        build = self._latest_build()
        t0 = time.monotonic()
        ids, cats, vectors = self._load_vectors()
        order = np.argsort(cats, kind="stable")
        self.ids, cats, self.vectors = ids[order], cats[order], vectors[order]
        names, starts, counts = np.unique(cats, return_index=True, return_counts=True)
        self.ranges = {str(n): (int(s), int(s + c)) for n, s, c in zip(names, starts, counts,
                                                                       strict=True)}
        self._index = self._make_index(self.vectors)
        self.last_build = build
        self.load_seconds = time.monotonic() - t0
        log.info("loaded %d vectors (dim %d, %s) of model %s in %.2f s", self.size, self.dim,
                 self.index_kind, self.fingerprint, self.load_seconds)
        return True

    def _load_vectors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        items = self.store.items
        try:
            first = items.find_one({"model": self.fingerprint}, {"dim": 1})
            if first is None:
                self._raise_empty()
            dim = int(first["dim"])
            cursor = items.find({"model": self.fingerprint},
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

    def _make_index(self, vectors: np.ndarray) -> faiss.Index:
        kind = self.config.index
        if kind == "auto":
            kind = "hnsw" if len(vectors) >= self.config.hnsw_threshold else "flat"
        if kind == "flat":
            index = faiss.IndexFlatIP(vectors.shape[1])
        elif kind == "hnsw":
            return self._make_hnsw(vectors)
        else:
            raise ValueError(f"SearchConfig.index must be auto, flat or hnsw, got {kind!r}")
        self._labels = None
        index.add(vectors)
        return index

    def _make_hnsw(self, vectors: np.ndarray) -> faiss.Index:
        """HNSW graph built from the vectors in a shuffled order.

        ``self.vectors`` is sorted by category, and HNSW's graph quality assumes points arrive
        in no particular order; inserting one category after another gave a slightly worse
        graph in a one-off FAISS experiment during development (not kept as a benchmark).
        ``_labels`` maps each graph label back to its position in ``self.vectors``."""
        index = faiss.IndexHNSWFlat(vectors.shape[1], self.config.hnsw_m,
                                    faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self.config.hnsw_ef_construction
        index.hnsw.efSearch = self.config.hnsw_ef_search
        self._labels = np.random.default_rng(0).permutation(len(vectors))
        for i in range(0, len(vectors), HNSW_ADD_CHUNK):  # chunks: no second full copy
            index.add(vectors[self._labels[i:i + HNSW_ADD_CHUNK]])
        return index

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
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise FingerprintMismatchError(
                f"query vectors have shape {q.shape}, the catalog holds {self.dim}-dimensional "
                "vectors: the query model is not the one the catalog was indexed with")
        lo, hi = 0, self.size
        if category is not None:
            if category not in self.ranges:
                return [[] for _ in range(len(q))]
            lo, hi = self.ranges[category]
        k = min(k, hi - lo)
        if k <= 0:
            return [[] for _ in range(len(q))]
        if (lo, hi) == (0, self.size):
            scores, idx = self._index.search(q, k)
            if self._labels is not None:  # HNSW labels are insertion positions
                idx = np.where(idx >= 0, self._labels[np.maximum(idx, 0)], -1)
        elif self.index_kind == "flat":
            params = faiss.SearchParameters(sel=faiss.IDSelectorRange(lo, hi))
            scores, idx = self._index.search(q, k, params=params)
        else:
            scores, idx = faiss.knn(q, self.vectors[lo:hi], k, metric=faiss.METRIC_INNER_PRODUCT)
            idx = idx + lo
        return [[(str(self.ids[j]), float(s)) for j, s in zip(row_i, row_s, strict=True)
                 if j >= 0] for row_i, row_s in zip(idx, scores, strict=True)]

    def fetch(self, ids: list[str], include_thumbnail: bool = True) -> list[dict]:
        """Documents for ``ids`` in one query, in the same order, without the embedding."""
        projection = {"embedding": 0} if include_thumbnail else {"embedding": 0, "thumbnail": 0}
        try:
            docs = {d["_id"]: d for d in self.store.items.find({"_id": {"$in": list(ids)}},
                                                               projection)}
        except pymongo.errors.PyMongoError as exc:
            raise DatabaseUnavailableError(f"cannot fetch catalog documents: {exc}") from exc
        return [docs[i] for i in ids if i in docs]
