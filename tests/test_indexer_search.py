"""CatalogSearch against the real embedded server: equals a numpy brute-force ranking, category
filters, HNSW recall, fetch order, reload only after a new build, clear errors."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from bson import ObjectId

from imaging import load_image
from indexer import (
    BuildConfig,
    CatalogSearch,
    CatalogStore,
    EmptyCatalogError,
    FingerprintMismatchError,
    SearchConfig,
    build_index,
    discover,
    from_binary,
    to_binary,
)

DIM = 22  # not a multiple of the half-precision scan's SIMD width (8): its index pads the vectors
CATS = ("dress", "shirt", "toptee")


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def insert_vectors(collection, vectors: np.ndarray, fingerprint: str, prefix: str = "v",
                   categories=CATS) -> list[dict]:
    docs = [{"_id": f"{prefix}{i:05d}", "category": categories[i % len(categories)],
             "title": f"item {i}", "attributes": {}, "thumbnail": b"jpeg", "sha256": "x",
             "embedding": to_binary(v), "model": fingerprint, "dim": DIM}
            for i, v in enumerate(vectors)]
    collection.insert_many(docs)
    return docs


def record_build(store: CatalogStore) -> None:
    now = dt.datetime.now(dt.UTC)
    store.builds.insert_one({"_id": ObjectId(), "status": "done", "fingerprint": "fp",
                             "dim": DIM, "started_at": now, "finished_at": now})


def brute_force(docs, query, k, category=None):
    pool = [d for d in docs if category is None or d["category"] == category]
    vecs = np.stack([np.frombuffer(bytes(d["embedding"])[2:], np.float32) for d in pool])
    scores = vecs @ query
    order = np.argsort(-scores, kind="stable")[:k]
    return [pool[i]["_id"] for i in order], scores[order]


@pytest.fixture
def populated(mongo_collection):
    rng = np.random.default_rng(0)
    store = CatalogStore.from_collection(mongo_collection)
    docs = insert_vectors(mongo_collection, unit(rng, 600), "fp")
    insert_vectors(mongo_collection, unit(rng, 50), "other-model", prefix="o")
    record_build(store)
    return store, docs, unit(rng, 20)


@pytest.mark.parametrize("scan", ["fp16", "fp32"])  # fp16: half-precision scan + rerank
def test_exact_search_equals_numpy_brute_force(populated, scan):
    store, docs, queries = populated
    search = CatalogSearch(store, "fp", SearchConfig(exact_scan=scan))
    assert search.size == 600 and search.dim == DIM and search.index_kind == "flat"
    # the scan's own copies are padded to 24 (FAISS's scalar fallback is 13x slower), the
    # vectors and scores the app sees are not
    assert search.faiss_index.d == (24 if scan == "fp16" else DIM)
    assert search.categories == {"dress": 200, "shirt": 200, "toptee": 200}
    for q in queries:
        got = search.search(q, k=10)
        ids, scores = brute_force(docs, q, 10)
        assert [i for i, _ in got] == ids
        np.testing.assert_allclose([s for _, s in got], scores, rtol=1e-5, atol=1e-6)
    batch = search.search_batch(queries, k=5)
    assert [[i for i, _ in row] for row in batch] == [brute_force(docs, q, 5)[0]
                                                      for q in queries]


@pytest.mark.parametrize("index", ["flat", "hnsw"])
def test_category_filter_returns_the_exact_top_k_of_that_category(populated, index):
    store, docs, queries = populated
    search = CatalogSearch(store, "fp", SearchConfig(index=index))
    for cat in CATS:
        for q in queries[:5]:
            got = search.search(q, k=7, category=cat)
            assert [i for i, _ in got] == brute_force(docs, q, 7, cat)[0]
            assert {d["category"] for d in search.fetch([i for i, _ in got])} == {cat}
    assert search.search(queries[0], k=5, category="shoes") == []
    assert len(search.search(queries[0], k=1000, category="dress")) == 200


def test_hnsw_on_request_has_high_recall(populated):
    store, docs, queries = populated
    search = CatalogSearch(store, "fp", SearchConfig(index="hnsw"))
    assert search.index_kind == "hnsw"
    hits = sum(len(set(i for i, _ in search.search(q, 10)) & set(brute_force(docs, q, 10)[0]))
               for q in queries)
    assert hits / (10 * len(queries)) >= 0.95
    # the graph is built in a shuffled order: each returned id must carry its own score
    vectors = {d["_id"]: from_binary(d["embedding"]) for d in docs}
    for q in queries:
        for item_id, score in search.search(q, 10):
            assert score == pytest.approx(float(vectors[item_id] @ q), abs=1e-5)


def test_auto_switches_to_hnsw_above_the_threshold(populated):
    store, _, _ = populated
    assert CatalogSearch(store, "fp", SearchConfig(hnsw_threshold=500)).index_kind == "hnsw"
    assert CatalogSearch(store, "fp", SearchConfig(hnsw_threshold=601)).index_kind == "flat"


def test_fetch_preserves_order_and_leaves_out_the_embedding(populated):
    store, _, _ = populated
    search = CatalogSearch(store, "fp")
    ids = ["v00042", "v00007", "missing", "v00599"]
    docs = search.fetch(ids)
    assert [d["_id"] for d in docs] == ["v00042", "v00007", "v00599"]
    assert all("embedding" not in d and d["thumbnail"] == b"jpeg" for d in docs)
    assert "thumbnail" not in search.fetch(["v00001"], include_thumbnail=False)[0]


def test_reloads_only_after_a_new_build(populated, mongo_collection):
    store, _, queries = populated
    search = CatalogSearch(store, "fp")
    assert not search.is_stale() and search.refresh() is False
    new = unit(np.random.default_rng(5), 1)
    insert_vectors(mongo_collection, new, "fp", prefix="new")
    assert not search.is_stale()  # a document without a finished build is not picked up
    record_build(store)
    assert search.is_stale() and search.refresh() is True
    assert search.size == 601 and search.search(new[0], 1)[0][0] == "new00000"


def test_empty_catalog_and_other_model_are_clear_errors(mongo_collection):
    store = CatalogStore.from_collection(mongo_collection)
    with pytest.raises(EmptyCatalogError, match="python -m indexer build"):
        CatalogSearch(store, "fp")
    insert_vectors(mongo_collection, unit(np.random.default_rng(1), 3), "old-model")
    with pytest.raises(FingerprintMismatchError, match=r"old-model \(3 items\).*fp"):
        CatalogSearch(store, "fp")


def test_query_of_another_dimension_is_refused(populated):
    store, _, _ = populated
    search = CatalogSearch(store, "fp")
    for dim in (8, 24):  # 24: the padded width of the scan's copies is not the catalog's
        with pytest.raises(FingerprintMismatchError, match=f"{DIM}-dimensional"):
            search.search(np.ones(dim, np.float32), 3)


def test_built_catalog_finds_each_item_by_its_own_image(small_catalog, tiny_retriever,
                                                        mongo_collection):
    root, ids = small_catalog
    store = CatalogStore.from_collection(mongo_collection)
    build_index(discover(root / "images"), tiny_retriever, store,
                BuildConfig(progress=False, workers=0))
    search = CatalogSearch(store, tiny_retriever.fingerprint)
    for item_id in ids[:6]:
        q = tiny_retriever.encode_targets([load_image(root / "images" / f"{item_id}.jpg")])[0]
        top_id, score = search.search(q, 1)[0]
        assert top_id == item_id and score == pytest.approx(1.0, abs=1e-4)
