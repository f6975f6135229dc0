"""Index snapshots (indexer.snapshot) through CatalogSearch against the real embedded server:
a second start maps the snapshot and answers exactly like a database load; a new build, a
truncated or corrupt file and a missing folder each fall back to the database with one log line
naming the reason, and the snapshot is rewritten."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from test_indexer_search import CATS, DIM, brute_force, insert_vectors, record_build, unit

from indexer import CatalogSearch, CatalogStore, SearchConfig, SnapshotKey, SnapshotStore
from project_settings import load_settings


@pytest.fixture
def catalog(mongo_collection):
    rng = np.random.default_rng(3)
    store = CatalogStore.from_collection(mongo_collection)
    docs = insert_vectors(mongo_collection, unit(rng, 300), "fp")
    record_build(store)
    return store, docs, unit(rng, 8)


def snapshot_reasons(caplog) -> list[str]:
    return [r.getMessage().split(" (")[0] for r in caplog.records
            if r.getMessage().startswith("index snapshot ")]


def one_folder(root) -> list:
    return [p for p in root.rglob("manifest.json")]


@pytest.mark.parametrize(("index", "scan"), [("flat", "fp16"), ("flat", "fp32"),
                                           ("hnsw", "fp16"), ("auto", "fp16")])
def test_second_start_maps_the_snapshot_and_answers_the_same(catalog, tmp_path, index, scan,
                                                             caplog):
    store, docs, queries = catalog  # auto: HNSW above 100 vectors
    config = SearchConfig(index=index, hnsw_threshold=100, exact_scan=scan,
                          snapshot_dir=str(tmp_path / "snaps"))
    caplog.set_level(logging.INFO, logger="indexer.search")
    first = CatalogSearch(store, "fp", config)
    assert first.faiss_index is not None and snapshot_reasons(caplog) == ["index snapshot missing"]
    assert len(one_folder(tmp_path / "snaps")) == 1
    second = CatalogSearch(store, "fp", config)
    assert second.load_source == "snapshot" and first.load_source == "database"
    assert second.index_kind == first.index_kind == ("hnsw" if index == "auto" else index)
    assert second.size == 300 and second.dim == DIM
    assert second.categories == first.categories == {c: 100 for c in CATS}
    for q in queries:
        assert second.search(q, 10) == first.search(q, 10)
        for cat in CATS:
            got = second.search(q, 5, category=cat)
            assert got == first.search(q, 5, category=cat)
            assert [i for i, _ in got] == brute_force(docs, q, 5, cat)[0]
    assert second.random_id("shirt") in {d["_id"] for d in docs if d["category"] == "shirt"}
    manifest_file = one_folder(tmp_path / "snaps")[0]
    manifest = json.loads(manifest_file.read_text())
    assert manifest["kind"] == first.index_kind  # what was built, not the setting
    # float32 vectors are stored beside the index unless the index's own storage is them
    assert ("vectors.npy" in manifest["files"]) == (index != "flat" or scan != "fp32")
    if index == "auto":  # a manifest from before that fix says "auto": still read as HNSW
        manifest_file.write_text(json.dumps(manifest | {"kind": "auto"}))
        third = CatalogSearch(store, "fp", config)
        assert third.load_source == "snapshot" and third.index_kind == "hnsw"
        assert third.search(queries[0], 10) == first.search(queries[0], 10)


def test_a_new_build_makes_the_snapshot_stale_and_replaces_it(catalog, mongo_collection,
                                                             tmp_path, caplog):
    store, _, _ = catalog
    config = SearchConfig(snapshot_dir=str(tmp_path / "snaps"))
    search = CatalogSearch(store, "fp", config)
    old = one_folder(tmp_path / "snaps")
    new = unit(np.random.default_rng(9), 1)
    insert_vectors(mongo_collection, new, "fp", prefix="new")
    record_build(store)
    caplog.set_level(logging.INFO, logger="indexer.search")
    caplog.clear()  # only what this refresh logs (another test may have left INFO on)
    assert search.refresh() is True and search.size == 301
    assert snapshot_reasons(caplog) == ["index snapshot stale"]
    now = one_folder(tmp_path / "snaps")
    assert len(now) == 1 and now != old  # the old build's snapshot was removed
    again = CatalogSearch(store, "fp", config)
    assert again.load_source == "snapshot" and again.search(new[0], 1)[0][0] == "new00000"


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_damaged_snapshot_falls_back_to_the_database_and_is_rewritten(catalog, tmp_path, damage,
                                                                      caplog):
    store, docs, queries = catalog
    config = SearchConfig(snapshot_dir=str(tmp_path / "snaps"))
    reference = CatalogSearch(store, "fp", config)
    index_file = one_folder(tmp_path / "snaps")[0].parent / "index.faiss"
    data = bytearray(index_file.read_bytes())
    if damage == "truncated":
        data = data[:len(data) // 2]
    else:
        data[len(data) // 2] ^= 0xFF
    index_file.write_bytes(bytes(data))
    caplog.set_level(logging.INFO, logger="indexer.search")
    caplog.clear()  # only what this load logs (another test may have left INFO on)
    search = CatalogSearch(store, "fp", config)
    assert snapshot_reasons(caplog) == [f"index snapshot {damage}"]
    assert any(r.levelno == logging.WARNING for r in caplog.records)
    assert search.load_source == "database"
    assert search.search(queries[0], 10) == reference.search(queries[0], 10)
    assert CatalogSearch(store, "fp", config).load_source == "snapshot"  # rewritten


def test_snapshot_of_another_key_is_never_used(tmp_path):
    import faiss

    store = SnapshotStore(tmp_path)
    key = SnapshotKey("db.items", "fp", "b1", "flat", "p")
    vectors = unit(np.random.default_rng(0), 10)
    index = faiss.IndexFlatIP(DIM)
    index.add(vectors)
    store.save(key, np.array([f"i{k}" for k in range(10)]), vectors, {"c": (0, 10)}, index, None)
    snap = store.load(key)
    np.testing.assert_array_equal(snap.vectors, vectors)
    assert list(snap.ids[:2]) == ["i0", "i1"] and snap.ranges == {"c": (0, 10)}
    for other in (SnapshotKey("db.items", "fp", "b2", "flat", "p"),
                  SnapshotKey("db.items", "fp", "b1", "hnsw", "p"),
                  SnapshotKey("db.items", "fp", "b1", "flat", "q")):
        with pytest.raises(Exception, match="stale"):
            store.load(other)
    with pytest.raises(Exception, match="missing"):
        store.load(SnapshotKey("db.other", "fp", "b1", "flat", "p"))


@pytest.mark.parametrize("width", [DIM, 24, 32])
def test_a_half_precision_index_is_read_at_the_padded_width_only(tmp_path, width):
    """The exact scan's copies are DIM = 22 columns padded to 24 (fp16_scan_dim); a stored
    scan of another width is refused as corrupt, naming both shapes."""
    import faiss

    store = SnapshotStore(tmp_path)
    key = SnapshotKey("db.items", "fp", "b1", "flat", "p")
    vectors = unit(np.random.default_rng(0), 10)
    index = faiss.IndexScalarQuantizer(width, faiss.ScalarQuantizer.QT_fp16,
                                       faiss.METRIC_INNER_PRODUCT)
    index.add(np.hstack([vectors, np.zeros((10, width - DIM), np.float32)]))
    store.save(key, np.array([f"i{k}" for k in range(10)]), vectors, {"c": (0, 10)}, index, None)
    if width == 24:
        assert store.load(key).index.d == 24
    else:
        with pytest.raises(Exception, match=f"corrupt.*10 x {width}.*manifest 10 x {DIM}"):
            store.load(key)


def test_snapshot_folder_setting(tmp_path):
    assert load_settings({"DATA_DIR": str(tmp_path)}, env_file=tmp_path / "none"
                         ).index_snapshot_dir == tmp_path / "index_snapshots"
    assert load_settings({"INDEX_SNAPSHOT_DIR": "off"}, env_file=tmp_path / "none"
                         ).index_snapshot_dir is None
    assert load_settings({"INDEX_SNAPSHOT_DIR": str(tmp_path / "s")}, env_file=tmp_path / "none"
                         ).index_snapshot_dir == tmp_path / "s"
