"""Catalogs of any size made of real vectors: the demo catalog encoded with a checkpoint.

Why replicate: the demo catalog has 2,400 items, the latency floors are about 100k and 1M.
Copy r of item i is normalise(v_i + noise) (copy 0 is v_i itself). The default noise
("neighbour") is Gaussian with the second moment of the real nearest-neighbour differences
v_j - v_nn(j): a copy differs from its original as real items differ from their nearest real
neighbour, in size and in direction, so a larger catalog looks like a denser real one.

Isotropic noise of the same size (``noise="isotropic"``, sigma from calibrated_sigma) is kept
for comparison, but it builds a geometry no catalog has: in 256 dimensions every copy is then
nearer its original than any sibling copy (by a factor sqrt(2), with almost no spread), so
each original becomes the hub of a star of 417 points at 1M. HNSW's neighbour-selection
heuristic keeps only the hub as a copy's neighbour and the hub keeps at most 2M links, so most
copies become unreachable: recall@10 0.60-0.67 for efSearch 64-1024 at 1M
(bench/results/latency/a4dda1f98374ca2e-isotropic.json). Documents follow the DESIGN.md
schema under the checkpoint's fingerprint, so CatalogSearch and the app load them exactly as an
indexed catalog.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from imaging import load_image, make_thumbnail
from indexer import CatalogStore, discover, item_document, item_metadata, record_finished_build
from model.feature_cache import extract_features
from project_settings import FEATURE_CACHE_DIR

logger = logging.getLogger(__name__)


@dataclass
class SeedCatalog:
    """The real items every larger catalog is replicated from."""

    ids: list[str]
    categories: list[str]
    titles: list[str]
    attributes: list[dict]
    image_paths: list[Path]
    vectors: np.ndarray  # (n, D) float32, L2-normalised f_tar of each item
    thumbnails: list[bytes] | None = None

    def __len__(self) -> int:
        return len(self.ids)


def encode_catalog(retriever, catalog_dir: Path, cache_dir: str | None = FEATURE_CACHE_DIR,
                   limit: int | None = None, batch_size: int = 128) -> SeedCatalog:
    """f_tar of every catalog image (backbone features from the cache, as the trainer uses)."""
    catalog_dir = Path(catalog_dir)
    metadata = [catalog_dir / "metadata.csv"] if (catalog_dir / "metadata.csv").is_file() else []
    items = discover(catalog_dir / "images", metadata).items[:limit]
    bank = extract_features(retriever.encoder, {it.id: it.image_path for it in items},
                            cache_dir or None, workers=0)
    items = [it for it in items if it.id in bank.index]
    out = []
    for i in range(0, len(items), batch_size):
        whole, crop = bank.lookup([it.id for it in items[i:i + batch_size]])
        out.append(retriever.encode_target_features(whole, crop).float().numpy())
    vectors = np.concatenate(out) if out else np.zeros((0, retriever.dim), np.float32)
    return SeedCatalog([it.id for it in items], [it.category for it in items],
                       [it.title for it in items], [dict(it.attributes) for it in items],
                       [it.image_path.resolve() for it in items], vectors)


def add_thumbnails(seed: SeedCatalog) -> None:
    """The indexer's thumbnail of each seed image (copies share their original's)."""
    if seed.thumbnails is None:
        seed.thumbnails = [make_thumbnail(load_image(p)) for p in
                           tqdm(seed.image_paths, desc="thumbnails", unit="img",
                                disable=len(seed) < 1000)]


def nearest_neighbours(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index, cosine) of each unit vector's nearest other vector."""
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    return sims.argmax(axis=1), sims.max(axis=1)


def calibrated_sigma(vectors: np.ndarray) -> tuple[float, float]:
    """(sigma, median nearest-neighbour cosine of the seed vectors), for isotropic noise.

    A copy normalise(v + sigma * z) has cosine ~ 1 / sqrt(1 + D sigma^2) with its original;
    this sigma puts each copy as far from its original as a real item typically is from its
    nearest real neighbour.
    """
    nn_cos = float(np.median(nearest_neighbours(vectors)[1]))
    nn_cos = min(max(nn_cos, 0.05), 0.9999)
    return float(np.sqrt((1 / nn_cos**2 - 1) / vectors.shape[1])), nn_cos


NOISE_KINDS = ("neighbour", "isotropic")


def neighbour_noise_basis(vectors: np.ndarray) -> np.ndarray:
    """B (D, D) such that z @ B, z ~ N(0, I), has the second moment of v_j - v_nn(j)."""
    diffs = vectors - vectors[nearest_neighbours(vectors)[0]]
    _, s, vt = np.linalg.svd(diffs, full_matrices=False)
    return (s[:, None] / np.sqrt(len(diffs)) * vt).astype(np.float32)


def replicate(seed: SeedCatalog, n: int, noise: str = "neighbour", sigma: float | None = None,
              rng_seed: int = 0, chunk: int = 100_000) -> tuple[np.ndarray, np.ndarray]:
    """(source rows (n,), vectors (n, D)): copy r // len(seed) of item r % len(seed).

    ``sigma`` (isotropic noise only) defaults to calibrated_sigma of the seed."""
    if noise not in NOISE_KINDS:
        raise ValueError(f"noise must be one of {NOISE_KINDS}, got {noise!r}")
    d = seed.vectors.shape[1]
    if noise == "neighbour":
        basis = neighbour_noise_basis(seed.vectors)
    else:
        basis = np.eye(d, dtype=np.float32) * (sigma or calibrated_sigma(seed.vectors)[0])
    rows = np.arange(n) % len(seed)
    rng = np.random.default_rng(rng_seed)
    vectors = seed.vectors[rows].copy()
    for start in range(len(seed), n, chunk):  # copy 0 (the first len(seed) rows) stays exact
        stop = min(n, start + chunk)
        vectors[start:stop] += rng.standard_normal((stop - start, d), dtype=np.float32) @ basis
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return rows, vectors


def item_id(seed: SeedCatalog, row: int, copy: int) -> str:
    return seed.ids[row] if copy == 0 else f"{seed.ids[row]}~{copy}"


def populate(store: CatalogStore, seed: SeedCatalog, n: int, fingerprint: str,
             noise: str = "neighbour", sigma: float | None = None, thumbnails: bool = True,
             chunk: int = 5000) -> dict:
    """Insert n documents (DESIGN.md schema) and a finished build record; returns timings."""
    if thumbnails:
        add_thumbnails(seed)
    rows, vectors = replicate(seed, n, noise, sigma)
    dim = vectors.shape[1]
    started = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    for start in tqdm(range(0, n, chunk), desc=f"inserting {n:,} docs", unit="chunk",
                      disable=n < 50_000):
        now = dt.datetime.now(dt.UTC)
        docs = []
        for k in range(start, min(n, start + chunk)):
            r = int(rows[k])
            meta = item_metadata(seed.categories[r], seed.titles[r], seed.attributes[r],
                                 seed.image_paths[r])
            docs.append(item_document(item_id(seed, r, k // len(seed)), meta, sha256="",
                                      vector=vectors[k], fingerprint=fingerprint,
                                      thumbnail=seed.thumbnails[r] if thumbnails else None,
                                      indexed_at=now))
        store.items.insert_many(docs, ordered=False)
    seconds = time.perf_counter() - t0
    record_finished_build(store, fingerprint, dim, n, started_at=started,
                          note="bench replica catalog")
    copies = vectors[len(seed):min(n, 2 * len(seed))]
    cos = float((copies * seed.vectors[rows[len(seed):len(seed) + len(copies)]]).sum(1).mean()
                ) if len(copies) else 1.0
    return {"n": n, "insert_s": seconds, "docs_per_s": n / seconds, "thumbnails": thumbnails,
            "noise": noise, "sigma": sigma if noise == "isotropic" else None,
            "mean_cos_copy_to_original": cos}

