"""One CatalogSearch shared by threads (as the app shares it between browser sessions): random
picks and searches racing against refreshes that replace the whole catalog always see one
consistent load. Real embedded database, real FAISS, real threads.

Why it matters: the app's "Random catalog item" reads the loaded ids and the category ranges;
a refresh after a rebuild replaces both. Read one from the old load and the other from the new
one and the pick is an item of another category, or an index out of range.
"""

from __future__ import annotations

import random
import sys
import threading
import time

import numpy as np
import pytest

from indexer import (
    CatalogSearch,
    CatalogStore,
    item_document,
    item_metadata,
    record_finished_build,
)

DIM = 8
N_X, N_Y, Y_DRESSES = 200, 100, 10  # load X: all dresses; load Y: 10 dresses, the rest shirts


def _docs(prefix: str, n: int, dresses: int, model: str) -> list[dict]:
    vectors = np.random.default_rng(len(prefix)).standard_normal((n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [item_document(f"{prefix}{i:05d}",
                          item_metadata("dress" if i < dresses else "shirt", "", {}, "/x.jpg"),
                          sha256="", vector=v, fingerprint=model)
            for i, v in enumerate(vectors)]


@pytest.mark.slow
def test_random_items_and_searches_race_refreshes_safely(mongo_collection):
    store = CatalogStore.from_collection(mongo_collection)
    store.items.insert_many(_docs("x", N_X, N_X, model="fp"))  # load X is live first
    store.items.insert_many(_docs("y", N_Y, Y_DRESSES, model="parked"))
    record_finished_build(store, "fp", DIM, N_X)
    search = CatalogSearch(store, "fp")
    dresses = {f"x{i:05d}" for i in range(N_X)} | {f"y{i:05d}" for i in range(Y_DRESSES)}

    def switch_to(live: str) -> None:
        parked = "y" if live == "x" else "x"
        store.items.update_many({"_id": {"$regex": f"^{live}"}}, {"$set": {"model": "fp"}})
        store.items.update_many({"_id": {"$regex": f"^{parked}"}}, {"$set": {"model": "parked"}})
        record_finished_build(store, "fp", DIM, N_X if live == "x" else N_Y)  # a new build...
        assert search.refresh()  # ...which the app picks up while shoppers keep clicking

    problems: list[str] = []
    done = threading.Event()

    def check(read) -> None:
        """Run ``read`` until the refreshes are over; collect what it finds wrong."""
        while not done.is_set() and len(problems) < 20:
            try:
                read()
            except Exception as exc:  # noqa: BLE001 -- any failure of a read is the finding
                problems.append(f"{type(exc).__name__}: {exc}")

    rng = random.Random(0)
    query = np.ones(DIM, np.float32) / np.sqrt(DIM)

    def random_dress() -> None:  # the app's "Random catalog item" with the dress filter
        pick = search.random_id("dress", rng)
        if pick not in dresses:
            problems.append(f"random dress {pick} is not a dress of either load")

    def search_dresses() -> None:
        hits = {i for i, _ in search.search(query, k=5, category="dress")}
        if not hits <= dresses:
            problems.append(f"dress search returned {sorted(hits - dresses)}")

    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show up quickly
    threads = [threading.Thread(target=check, args=(read,))
               for read in (random_dress, search_dresses)]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        for n in range(30):
            switch_to("y" if n % 2 == 0 else "x")
            if time.monotonic() > deadline or problems:
                break
    finally:
        done.set()
        for t in threads:
            t.join(timeout=30)
        sys.setswitchinterval(old_interval)
    assert not problems, problems[:5]
    assert search.size in (N_X, N_Y)
