"""Time to load N catalog vectors from MongoDB into FAISS (what the app pays at start-up and
after each new build), and the query latency that follows.

    source scripts/env.sh && .venv/bin/python -m bench.load_vectors [--n 100000] [--dim 256]

Inserts N documents of the DESIGN.md schema (256-d BSON binary vector, ~4 KB thumbnail,
metadata) into a fresh embedded SecantusDB (or --uri), then times ``CatalogSearch`` loading
them (flat and HNSW). Prints a table and writes bench/results/load_vectors.json.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from contextlib import nullcontext

import numpy as np
from tqdm import tqdm

from bench._common import table, temporary_server, write_results
from indexer import (
    CatalogSearch,
    CatalogStore,
    SearchConfig,
    connect,
    item_document,
    item_metadata,
    record_finished_build,
)

CATS = ("dress", "shirt", "toptee")


def populate(store: CatalogStore, n: int, dim: int, chunk: int = 2000) -> float:
    rng = np.random.default_rng(0)
    thumb = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
    t0 = time.perf_counter()
    for start in tqdm(range(0, n, chunk), desc="inserting", unit="chunk"):
        v = rng.standard_normal((min(chunk, n - start), dim)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        store.items.insert_many([
            item_document(f"p{start + i:07d}",
                          item_metadata(CATS[(start + i) % 3], f"product {start + i}",
                                        {"colour": "red"}, f"/catalog/p{start + i}.jpg"),
                          sha256="0" * 64, vector=vec, fingerprint="bench", thumbnail=thumb)
            for i, vec in enumerate(v)], ordered=False)
    record_finished_build(store, "bench", dim, n)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--uri", default=None, help="existing MongoDB (default: a fresh embedded one)")
    p.add_argument("--hnsw", action="store_true", help="also time loading into HNSW (M=32)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with (nullcontext() if args.uri else temporary_server()) as server:
        uri = args.uri or server.uri
        client = connect(uri, directConnection=not args.uri)
        store = CatalogStore.from_collection(client["bench_load"]["items"])
        store.items.drop()
        store.builds.drop()
        insert_s = populate(store, args.n, args.dim)
        rows, result = [], {"n": args.n, "dim": args.dim, "insert_s": insert_s}
        kinds = ["flat", "hnsw"] if args.hnsw else ["flat"]
        for kind in kinds:
            search = CatalogSearch(store, "bench", SearchConfig(index=kind))
            total = search.load_seconds
            q = np.random.default_rng(1).standard_normal((100, args.dim)).astype(np.float32)
            t0 = time.perf_counter()
            for row in q:
                search.search(row, 10)
            one = (time.perf_counter() - t0) / len(q)
            t0 = time.perf_counter()
            search.search_batch(q, 10)
            batch = (time.perf_counter() - t0) / len(q)
            t0 = time.perf_counter()
            search.search(q[0], 10, category="shirt")
            filtered = time.perf_counter() - t0
            rows.append((kind, f"{total:.2f}", f"{one * 1e3:.2f}", f"{batch * 1e3:.3f}",
                         f"{filtered * 1e3:.2f}"))
            result[kind] = {"load_s": total, "query_ms": one * 1e3, "batch_query_ms": batch * 1e3,
                            "filtered_query_ms": filtered * 1e3}
        t0 = time.perf_counter()
        search.fetch([f"p{i:07d}" for i in range(0, 10 * 997, 997)])
        result["fetch10_ms"] = (time.perf_counter() - t0) * 1e3
        store.items.drop()
        store.builds.drop()
    result["load_average_1m"] = os.getloadavg()[0]
    print(f"\n{args.n} vectors of dim {args.dim}; inserted in {insert_s:.1f} s "
          f"({args.n / insert_s:.0f} docs/s); fetch of 10 documents "
          f"{result['fetch10_ms']:.1f} ms; load average {result['load_average_1m']:.1f}\n")
    print(table(rows, ("index", "load s (Mongo->FAISS)", "ms/query", "ms/query in batch of 100",
                       "ms category-filtered")))
    print(f"wrote {write_results('load_vectors', result)}")


if __name__ == "__main__":
    main()
