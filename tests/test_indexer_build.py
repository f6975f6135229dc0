"""Indexer builds against the real embedded server: schema, idempotence, changed images, bad
files, dimension conflicts, a SIGKILLed run resumed, and shards equal to one full build."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from bson import ObjectId
from bson.binary import Binary
from conftest import CATALOG_CATEGORIES, REPO_ROOT, draw_item, free_port, write_catalog
from PIL import Image

from imaging import load_image
from indexer import (
    DEFAULT_CATEGORY,
    BuildConfig,
    CatalogSearch,
    CatalogStore,
    DimensionMismatchError,
    IndexerError,
    build_index,
    catalog_stats,
    discover,
    effective_status,
    from_binary,
    shard_of,
)
from model import load_retriever


@pytest.fixture(scope="module")
def encoder(tiny_checkpoint):
    return load_retriever(tiny_checkpoint)


class CountingEncoder:
    """The real encoder, counting how many images it was asked to preprocess (decode proof)."""

    def __init__(self, inner):
        self.inner, self.preprocessed = inner, 0
        self.fingerprint, self.dim = inner.fingerprint, inner.dim

    def preprocess(self, image):
        self.preprocessed += 1
        return self.inner.preprocess(image)

    def encode_target_tensors(self, x):
        return self.inner.encode_target_tensors(x)


class TruncatedEncoder(CountingEncoder):
    """A real encoder of another dimension (first dims of the tiny model, renormalised)."""

    def __init__(self, inner, dim: int):
        super().__init__(inner)
        self.dim, self.fingerprint = dim, f"{inner.fingerprint}-d{dim}"

    def encode_target_tensors(self, x):
        v = self.inner.encode_target_tensors(x)[:, : self.dim]
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def quiet(**kw) -> BuildConfig:
    return BuildConfig(progress=False, workers=0, batch_size=8, **kw)


def run_cli(args: list[str], env: dict[str, str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "indexer", *args], cwd=REPO_ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=300, **kw)


def test_build_stores_documents_of_the_design_schema(small_catalog, encoder, mongo_collection):
    root, ids = small_catalog
    store = CatalogStore.from_collection(mongo_collection)
    report = build_index(discover(root / "images"), encoder, store, quiet())
    assert (report.seen, report.embedded, report.failed) == (24, 24, 0)
    assert sorted(d["_id"] for d in mongo_collection.find({}, {"_id": 1})) == ids

    doc = mongo_collection.find_one({"_id": "item0004"})
    assert doc["category"] == "shirt" and doc["title"] == "navy shirt #4"
    assert doc["attributes"] == {"colour": "navy", "stripes": "4"}
    assert doc["model"] == encoder.fingerprint and doc["dim"] == encoder.dim
    assert isinstance(doc["embedding"], Binary) and doc["embedding"].subtype == 9
    expected = encoder.encode_targets([load_image(root / "images" / "item0004.jpg")])[0]
    np.testing.assert_allclose(from_binary(doc["embedding"]), expected, atol=1e-5)
    thumb = Image.open(io.BytesIO(doc["thumbnail"]))
    assert thumb.format == "JPEG" and max(thumb.size) == 128
    assert len(doc["sha256"]) == 64 and Path(doc["image_path"]).name == "item0004.jpg"

    record = store.builds.find_one({"_id": ObjectId(report.build_id)})
    assert record["status"] == "done" and record["counts"]["embedded"] == 24
    assert record["total_for_fingerprint"] == 24


def test_a_build_records_the_catalogs_words_with_those_before(small_catalog, tmp_path, encoder,
                                                              mongo_collection):
    root, _ = small_catalog
    store = CatalogStore.from_collection(mongo_collection)
    build_index(discover(root / "images"), encoder, store, quiet())
    first = store.builds.find_one({"status": "done"})["words"]
    assert {"navy", "shirt"} <= set(first) and min(map(len, first)) >= 4
    (tmp_path / "more").mkdir()
    draw_item(tmp_path / "more" / "Hanes-boho-kurta.jpg", "dress", "red", 1)
    report = build_index(discover(tmp_path / "more"), encoder, store, quiet())
    words = store.builds.find_one({"_id": ObjectId(report.build_id)})["words"]
    # a plain folder: its file names, and the category it is given
    assert set(words) == set(first) | {"hanes", "boho", "kurta", DEFAULT_CATEGORY}
    search = CatalogSearch(store, encoder.fingerprint)
    assert search.words == frozenset(words) and "words" not in search.last_build


def test_a_build_records_at_most_the_commonest_words(small_catalog, encoder, mongo_collection,
                                                    monkeypatch, caplog):
    import indexer.build

    monkeypatch.setattr(indexer.build, "MAX_RECORDED_WORDS", 3)
    root, _ = small_catalog
    store = CatalogStore.from_collection(mongo_collection)
    build_index(discover(root / "images"), encoder, store, quiet())
    # each category is named by 8 items twice (category and title): more than any colour
    assert store.builds.find_one({"status": "done"})["words"] == ["dress", "shirt", "toptee"]
    assert "records the commonest 3" in caplog.text


def test_rerun_embeds_nothing_and_a_changed_image_is_reembedded(tmp_path, encoder,
                                                                mongo_collection):
    write_catalog(tmp_path, 12)
    store = CatalogStore.from_collection(mongo_collection)
    build_index(discover(tmp_path / "images"), encoder, store, quiet())
    before = from_binary(mongo_collection.find_one({"_id": "item0003"})["embedding"]).copy()

    counting = CountingEncoder(encoder)
    again = build_index(discover(tmp_path / "images"), counting, store, quiet())
    assert (again.embedded, again.skipped, counting.preprocessed) == (0, 12, 0)

    draw_item(tmp_path / "images" / "item0003.jpg", "dress", "green", seed=99)
    counting = CountingEncoder(encoder)
    changed = build_index(discover(tmp_path / "images"), counting, store, quiet())
    assert (changed.embedded, changed.skipped, counting.preprocessed) == (1, 11, 1)
    after = from_binary(mongo_collection.find_one({"_id": "item0003"})["embedding"])
    assert not np.allclose(before, after)
    assert mongo_collection.count_documents({}) == 12


def test_metadata_change_updates_without_reembedding(tmp_path, encoder, mongo_collection):
    write_catalog(tmp_path, 6)
    store = CatalogStore.from_collection(mongo_collection)
    build_index(discover(tmp_path / "images"), encoder, store, quiet())
    csv = tmp_path / "metadata.csv"
    csv.write_text(csv.read_text().replace("red dress #0", "crimson dress #0"))
    counting = CountingEncoder(encoder)
    report = build_index(discover(tmp_path / "images"), counting, store, quiet())
    assert (report.metadata_updated, report.embedded, counting.preprocessed) == (1, 0, 0)
    assert mongo_collection.find_one({"_id": "item0000"})["title"] == "crimson dress #0"


def test_corrupt_and_non_image_files_are_skipped_counted_and_listed(tmp_path, encoder,
                                                                    mongo_collection):
    images = tmp_path / "imgs"
    images.mkdir()
    for i in range(5):
        draw_item(images / f"good{i}.jpg", "shirt", "red", i)
    (images / "empty.jpg").write_bytes(b"")
    good = (images / "good0.jpg").read_bytes()
    (images / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (images / "notes.png").write_text("this is not an image")
    (images / "README.txt").write_text("ignored: no image extension")

    store = CatalogStore.from_collection(mongo_collection)
    catalog = discover(images, category="shirt")
    report = build_index(catalog, encoder, store, quiet())
    assert catalog.ignored_files == 1
    assert (report.embedded, report.failed) == (5, 3)
    assert sorted(f["id"] for f in report.failures) == ["empty", "notes", "truncated"]
    assert all(f["error"] for f in report.failures)
    record = store.builds.find_one({"status": "done"})
    assert sorted(f["id"] for f in record["failures"]) == ["empty", "notes", "truncated"]
    assert record["counts"]["failed"] == 3
    assert mongo_collection.count_documents({}) == 5


def test_other_dimension_is_refused_unless_replace(tmp_path, encoder, mongo_collection):
    write_catalog(tmp_path, 6)
    store = CatalogStore.from_collection(mongo_collection)
    build_index(discover(tmp_path / "images"), encoder, store, quiet())
    small = TruncatedEncoder(encoder, 16)
    with pytest.raises(DimensionMismatchError, match=r"dimension 32.*16-dimensional.*--replace"):
        build_index(discover(tmp_path / "images"), small, store, quiet())
    assert mongo_collection.count_documents({"dim": 32}) == 6  # nothing lost

    report = build_index(discover(tmp_path / "images"), small, store, quiet(replace=True))
    assert report.replaced_other_dim == 6 and report.embedded == 6
    assert mongo_collection.count_documents({}) == mongo_collection.count_documents({"dim": 16})


def test_prune_deletes_only_items_of_this_scope_whose_image_is_gone(tmp_path, encoder,
                                                                   mongo_collection):
    ids = write_catalog(tmp_path, 12)
    store = CatalogStore.from_collection(mongo_collection)
    build_index(discover(tmp_path / "images"), encoder, store, quiet())
    gone = ids[:6]
    for item_id in gone:
        (tmp_path / "images" / f"{item_id}.jpg").unlink()  # metadata rows stay: still pruned

    without = build_index(discover(tmp_path / "images"), encoder, store, quiet())
    assert without.pruned == 0 and mongo_collection.count_documents({}) == 12  # opt-in only

    shard0 = discover(tmp_path / "images", shard=(0, 2))
    in_shard0 = {i for i in gone if shard_of(i, 2) == 0}
    assert 0 < len(in_shard0) < len(gone)  # the test needs both kinds
    report = build_index(shard0, encoder, store, quiet(prune=True))
    assert report.pruned == len(in_shard0)
    assert {d["_id"] for d in mongo_collection.find()} == set(ids) - in_shard0

    dresses = discover(tmp_path / "images", category="dress")
    report = build_index(dresses, encoder, store, quiet(prune=True))
    left = set(gone) - in_shard0
    gone_dresses = {i for i in left if CATALOG_CATEGORIES[int(i[4:]) % 3] == "dress"}
    assert 0 < len(gone_dresses) < len(left) and report.pruned == len(gone_dresses)
    assert {d["_id"] for d in mongo_collection.find()} == set(ids) - in_shard0 - gone_dresses
    record = store.builds.find_one({"_id": ObjectId(report.build_id)})
    assert record["pruned"] == report.pruned and record["status"] == "done"


def test_prune_refuses_an_empty_catalog(tmp_path, encoder, mongo_collection):
    write_catalog(tmp_path, 3)
    store = CatalogStore.from_collection(mongo_collection)
    build_index(discover(tmp_path / "images"), encoder, store, quiet())
    (tmp_path / "empty").mkdir()
    with pytest.raises(IndexerError, match="no items"):
        build_index(discover(tmp_path / "empty"), encoder, store, quiet(prune=True))
    assert mongo_collection.count_documents({}) == 3


class FailingEncoder(CountingEncoder):
    def encode_target_tensors(self, x):
        raise RuntimeError("out of memory (simulated)")


def test_a_build_that_raises_is_recorded_as_failed_with_its_error(tmp_path, encoder,
                                                                 mongo_collection):
    write_catalog(tmp_path, 3)
    store = CatalogStore.from_collection(mongo_collection)
    with pytest.raises(RuntimeError):
        build_index(discover(tmp_path / "images"), FailingEncoder(encoder), store, quiet())
    record = store.builds.find_one()
    assert record["status"] == "failed" and "out of memory" in record["error"]
    assert catalog_stats(store)["last_build"]["status"] == "failed"


def test_a_running_build_without_heartbeat_reads_as_stale():
    now = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    fresh = {"status": "running", "heartbeat_at": now - dt.timedelta(minutes=1)}
    old = {"status": "running", "heartbeat_at": (now - dt.timedelta(hours=1)).replace(tzinfo=None)}
    assert effective_status(fresh, now) == "running"
    assert effective_status(old, now) == "stale"
    assert effective_status({**old, "status": "done"}, now) == "done"


def _ids_and_vectors(collection) -> dict[str, np.ndarray]:
    return {d["_id"]: from_binary(d["embedding"]) for d in collection.find({}, {"embedding": 1})}


@pytest.mark.slow
def test_build_killed_part_way_then_rerun_has_no_loss_and_no_duplicates(
        tmp_path, tiny_checkpoint, mongo_env, mongo_collection):
    ids = write_catalog(tmp_path, 100, size=160)
    args = ["build", "--images", str(tmp_path / "images"), "--checkpoint", str(tiny_checkpoint),
            "--batch", "2", "--workers", "0", "--no-progress", "--json"]
    proc = subprocess.Popen([sys.executable, "-m", "indexer", *args], cwd=REPO_ROOT,
                            env={**os.environ, **mongo_env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    stored = 0
    while time.monotonic() < deadline and proc.poll() is None:
        stored = mongo_collection.count_documents({})
        if stored >= 4:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the build finished before it could be killed"
    at_kill = mongo_collection.count_documents({})
    assert 0 < at_kill < len(ids)
    builds = CatalogStore.from_collection(mongo_collection).builds
    assert builds.find_one()["status"] == "running"  # nobody could record the kill

    r = run_cli(args, mongo_env)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["skipped"] >= at_kill and report["embedded"] + report["skipped"] == len(ids)
    assert sorted(_ids_and_vectors(mongo_collection)) == ids
    assert mongo_collection.count_documents({}) == len(ids)
    statuses = [b["status"] for b in builds.find(sort=[("started_at", 1)])]
    assert statuses == ["killed", "done"]  # the re-run saw the dead process on this host


@pytest.mark.slow
def test_sigterm_stops_a_build_and_records_it_as_interrupted(tmp_path, tiny_checkpoint,
                                                             mongo_env, mongo_collection):
    write_catalog(tmp_path, 60, size=160)
    proc = subprocess.Popen(
        [sys.executable, "-m", "indexer", "build", "--images", str(tmp_path / "images"),
         "--checkpoint", str(tiny_checkpoint), "--batch", "2", "--workers", "0",
         "--no-progress"], cwd=REPO_ROOT, env={**os.environ, **mongo_env},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if mongo_collection.count_documents({}) >= 2:
            proc.send_signal(signal.SIGTERM)
            break
        time.sleep(0.01)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    record = CatalogStore.from_collection(mongo_collection).builds.find_one()
    assert record["status"] == "interrupted" and "SystemExit" in record["error"]
    assert 0 < record["counts"]["embedded"] < 60


@pytest.mark.slow
def test_two_shards_together_equal_one_full_build(tmp_path, tiny_checkpoint, encoder, mongo_env,
                                                  mongo_collection, mongo_client):
    write_catalog(tmp_path, 30)
    args = ["build", "--images", str(tmp_path / "images"), "--checkpoint", str(tiny_checkpoint),
            "--workers", "0", "--no-progress", "--json"]
    shards = [subprocess.Popen([sys.executable, "-m", "indexer", *args, "--shard", f"{i}/2"],
                               cwd=REPO_ROOT, env={**os.environ, **mongo_env},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for i in range(2)]
    outs = [p.communicate(timeout=300) for p in shards]
    assert [p.returncode for p in shards] == [0, 0], [o[1][-2000:] for o in outs]
    embedded = [json.loads(o[0].strip().splitlines()[-1])["embedded"] for o in outs]
    assert sum(embedded) == 30 and min(embedded) > 0

    full = mongo_client[mongo_collection.database.name]["full"]
    build_index(discover(tmp_path / "images"), encoder, CatalogStore.from_collection(full),
                quiet())
    sharded, whole = _ids_and_vectors(mongo_collection), _ids_and_vectors(full)
    assert sorted(sharded) == sorted(whole)
    for item_id, vec in whole.items():
        np.testing.assert_allclose(sharded[item_id], vec, atol=1e-5)
    fields = {"embedding": 0, "indexed_at": 0, "thumbnail": 0}
    assert sorted(mongo_collection.find({}, fields), key=lambda d: d["_id"]) == sorted(
        full.find({}, fields), key=lambda d: d["_id"])


@pytest.mark.slow
def test_cli_unreachable_database_fails_fast_with_masked_uri(tmp_path):
    env = {"MONGO_URI": f"mongodb://shop:hunter2@127.0.0.1:{free_port()}"}
    r = run_cli(["build", "--images", str(tmp_path)], env)
    assert r.returncode == 2  # not a hang: it gave up on its bounded server selection
    assert "ServerSelectionTimeoutError" in r.stderr
    assert "shop:***@127.0.0.1" in r.stderr and "hunter2" not in r.stderr + r.stdout
    assert "Hint" in r.stderr


@pytest.mark.slow
def test_cli_build_stats_and_drop(small_catalog, tiny_checkpoint, mongo_env, mongo_collection,
                                  tmp_path):
    root, _ = small_catalog
    shutil.copytree(root, tmp_path / "cat")
    (tmp_path / "cat" / "images" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with open(tmp_path / "cat" / "metadata.csv", "a") as fh:
        fh.write("broken,dress,a broken file,red,0\n")
    r = run_cli(["build", "--images", str(tmp_path / "cat" / "images"), "--checkpoint",
                 str(tiny_checkpoint), "--no-progress"], mongo_env)
    assert r.returncode == 0, r.stderr
    assert "24 embedded" in r.stdout and "1 failed" in r.stdout
    assert "skipped broken" in r.stdout
    # the build leaves the app an index snapshot of exactly this build (indexer.snapshot)
    manifests = list((Path(mongo_env["DATA_DIR"]) / "index_snapshots").rglob("manifest.json"))
    assert len(manifests) == 1
    snap = json.loads(manifests[0].read_text())
    build = CatalogStore.from_collection(mongo_collection).builds.find_one({"status": "done"})
    assert snap["count"] == 24 and snap["key"]["build_id"] == str(build["_id"])

    r = run_cli(["stats", "--json"], mongo_env)
    stats = json.loads(r.stdout)
    assert stats["per_category"] == {"dress": 8, "shirt": 8, "toptee": 8}
    assert list(stats["per_fingerprint"].values()) == [24]
    assert stats["last_build"]["counts"]["failed"] == 1
    assert "words" in build and "words" not in stats["last_build"]  # a catalog's words: not shown

    r = run_cli(["drop"], mongo_env)
    assert r.returncode == 2 and mongo_collection.count_documents({}) == 24
    r = run_cli(["drop", "--yes"], mongo_env)
    assert r.returncode == 0 and mongo_collection.count_documents({}) == 0
