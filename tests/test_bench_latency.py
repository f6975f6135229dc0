"""bench.latency end to end with a tiny model and tiny catalogs (real embedded SecantusDB)."""

from __future__ import annotations

import json

import pytest

from bench import latency
from indexer import SearchConfig
from tests.tiny_dataset import write_tiny_dataset


@pytest.mark.slow
def test_latency_script_writes_json_and_plot(tiny_checkpoint, tmp_path):
    catalog = write_tiny_dataset(tmp_path / "catalog")
    report = latency.main([
        "--checkpoint", str(tiny_checkpoint), "--catalog", str(catalog), "--cache-dir", "",
        "--sizes", "300", "100", "--queries", "12", "--thumbnails-up-to", "100",
        "--hnsw-m", "16", "--out-dir", str(tmp_path / "out")])
    written = tmp_path / "out" / "latency" / f"{report['fingerprint']}.json"  # by checkpoint
    saved = json.loads(written.read_text())
    assert set(saved["results"]) == {"100", "300"}
    big = saved["results"]["300"]
    assert big["flat"]["size"] == big["hnsw"]["size"] == 300
    assert big["flat"]["total"]["n"] == 12 and big["flat"]["total"]["p50_ms"] > 0
    assert 0.9 <= big["hnsw"]["recall@10"] <= 1.0  # 300 vectors: HNSW is near exact
    assert [e["ef_search"] for e in big["hnsw"]["ef_sweep"]] == [64, 128, 256, 512, 1024]
    assert saved["config"]["hnsw_m"] == 16 and "HNSW (M=16," in latency.format_report(saved)
    assert big["flat"]["blas_threshold"] == SearchConfig.blas_threshold  # the app's setting
    assert big["flat"]["exact_scan"] == SearchConfig.exact_scan
    assert big["flat-fp32"]["exact_scan"] == big["flat-blas20"]["exact_scan"] == "fp32"
    assert big["flat-blas20"]["blas_threshold"] == 20
    assert big["flat"]["recall@10"] == big["flat-fp32"]["recall@10"] == 1.0  # both exact
    assert big["flat"]["lite0"]["n"] == 12 and big["flat"]["lite0"]["p50_ms"] > 0  # yardstick
    assert not big["insert"]["thumbnails"] and saved["results"]["100"]["insert"]["thumbnails"]
    assert written.with_suffix(".png").stat().st_size > 10_000
    assert report["seed_items"] == 36


def test_replicas_keep_the_seed_and_stay_close():
    import numpy as np

    from bench.catalog_vectors import SeedCatalog, replicate

    rng = np.random.default_rng(0)
    v = rng.standard_normal((6, 4)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    seed = SeedCatalog(list("abcdef"), ["c"] * 6, [""] * 6, [{}] * 6, [None] * 6, v)
    for noise, kwargs in (("isotropic", {"sigma": 0.01}), ("neighbour", {})):
        rows, out = replicate(seed, 15, noise, **kwargs)
        assert rows.tolist() == [0, 1, 2, 3, 4, 5] * 2 + [0, 1, 2]
        assert np.allclose(out[:6], v)  # copy 0 is the real vector
        assert np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
        assert not np.allclose(out[6:], v[rows[6:]])
    # isotropic: tiny sigma keeps copies close; neighbour: as far as real nearest neighbours
    _, iso = replicate(seed, 600, "isotropic", sigma=0.01)
    assert (iso[6:] * v[np.arange(600)[6:] % 6]).sum(1).min() > 0.99
    _, nb = replicate(seed, 6000, "neighbour")
    sims = v @ v.T
    np.fill_diagonal(sims, -np.inf)
    nn_dist2 = np.mean(2 - 2 * sims.max(1))
    copy_dist2 = np.mean(np.sum((nb[6:] - v[np.arange(6000)[6:] % 6]) ** 2, 1))
    assert 0.5 * nn_dist2 < copy_dist2 < 1.2 * nn_dist2