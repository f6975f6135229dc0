"""bench.latency end to end with a tiny model and tiny catalogs (real embedded SecantusDB)."""

from __future__ import annotations

import json

import pytest

from bench import latency
from indexer.search import SearchConfig
from tests.tiny_dataset import write_tiny_dataset


@pytest.mark.slow
def test_latency_script_writes_json_and_plot(tiny_checkpoint, tmp_path):
    catalog = write_tiny_dataset(tmp_path / "catalog")
    report = latency.main([
        "--checkpoint", str(tiny_checkpoint), "--catalog", str(catalog), "--cache-dir", "",
        "--sizes", "300", "100", "--queries", "12", "--thumbnails-up-to", "100",
        "--out-dir", str(tmp_path / "out")])
    saved = json.loads((tmp_path / "out" / "latency.json").read_text())
    assert set(saved["results"]) == {"100", "300"}
    big = saved["results"]["300"]
    assert big["flat"]["size"] == big["hnsw"]["size"] == 300
    assert big["flat"]["total"]["n"] == 12 and big["flat"]["total"]["p50_ms"] > 0
    assert 0.9 <= big["hnsw"]["recall@10"] <= 1.0  # 300 vectors: HNSW is near exact
    assert [e["ef_search"] for e in big["hnsw"]["ef_sweep"]] == [64, 128, 256, 512, 1024]
    assert big["flat"]["blas_threshold"] == SearchConfig.blas_threshold  # the app's setting
    assert big["flat-blas20"]["blas_threshold"] == 20
    assert not big["insert"]["thumbnails"] and saved["results"]["100"]["insert"]["thumbnails"]
    assert (tmp_path / "out" / "latency.png").stat().st_size > 10_000
    assert report["seed_items"] == 36


def test_replicas_keep_the_seed_and_stay_close():
    import numpy as np

    from bench.catalog_vectors import SeedCatalog, replicate

    v = np.eye(4, dtype=np.float32)
    seed = SeedCatalog(list("abcd"), ["c"] * 4, [""] * 4, [{}] * 4, [None] * 4, v)
    rows, out = replicate(seed, 10, sigma=0.01)
    assert rows.tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
    assert np.allclose(out[:4], v)
    assert np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
    assert (out[4:] * v[rows[4:]]).sum(1).min() > 0.99
