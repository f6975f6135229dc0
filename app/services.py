"""Loading the app's heavy parts and turning their failures into messages for the page.

Why separate from the Streamlit script: the page wraps these functions in ``st.cache_resource``
(one model and one FAISS index per process), while tests call them directly. Every failure a
shopper or operator can cause is translated here into one message that says what is wrong and
what to do, so the page never shows a traceback.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pymongo.errors

from indexer.connect import CatalogStore, ensure_database, mask_uri
from indexer.errors import (
    DatabaseUnavailableError,
    DimensionMismatchError,
    EmptyCatalogError,
    FingerprintMismatchError,
    IndexerError,
    SettingsError,
)
from indexer.settings import REPO_ROOT, Settings, load_settings

log = logging.getLogger(__name__)

DEFAULT_MAX_UPLOAD_MB = 10.0  # an upload above this is refused before decoding
DEFAULT_TOP_K = 12
MAX_TOP_K = 48
DEFAULT_TORCH_THREADS = 1  # see load_model


@dataclass(frozen=True)
class AppConfig:
    """Settings of the page on top of the project settings (database, checkpoint, catalog)."""

    settings: Settings
    max_upload_bytes: int = int(DEFAULT_MAX_UPLOAD_MB * 1024 * 1024)
    default_k: int = DEFAULT_TOP_K
    torch_threads: int = DEFAULT_TORCH_THREADS

    @property
    def checkpoint(self) -> Path:
        return self.settings.checkpoint

    @property
    def image_dirs(self) -> tuple[Path, ...]:
        """Where relative ``image_path`` values of catalog documents are looked up."""
        return (self.settings.catalog_dir, self.settings.catalog_dir / "images", REPO_ROOT)

    @property
    def index_key(self) -> str:
        """Everything that identifies which catalog the cached index holds."""
        s = self.settings
        return f"{s.effective_uri}|{s.db_name}|{s.collection_name}"


def load_app_config(env: Mapping[str, str] | None = None) -> AppConfig:
    """Project settings plus APP_MAX_UPLOAD_MB, APP_TOP_K and APP_TORCH_THREADS.

    Raises SettingsError naming the variable when a value is malformed.
    """
    env = os.environ if env is None else env
    settings = load_settings(env)
    max_mb = _number(env, "APP_MAX_UPLOAD_MB", float, DEFAULT_MAX_UPLOAD_MB, 1e-6, 1024)
    k = _number(env, "APP_TOP_K", int, DEFAULT_TOP_K, 1, MAX_TOP_K)
    threads = _number(env, "APP_TORCH_THREADS", int, DEFAULT_TORCH_THREADS, 1, 256)
    return AppConfig(settings=settings, max_upload_bytes=int(max_mb * 1024 * 1024),
                     default_k=k, torch_threads=threads)


def _number(env: Mapping[str, str], name: str, kind: type, default, lo, hi):
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name} must be {'an integer' if kind is int else 'a number'}, "
                            f"got {raw!r}") from None
    if not lo <= value <= hi:
        raise SettingsError(f"{name} must be between {lo} and {hi}, got {raw!r}")
    return value


def load_model(checkpoint: Path, threads: int = DEFAULT_TORCH_THREADS):
    """The retriever of ``checkpoint`` on ``threads`` CPU threads, warmed up with one query.

    Why one thread by default: a single query is too small to gain from a second thread, and
    with two OpenMP threads on this 2-core machine any other busy process (the browser, an
    indexer run) made one query take 2.3 s instead of 50 ms (measured: threads spin-wait on
    each other). Why the warm-up: the first forward pass allocates and picks kernels
    (seconds); paying that while the page says "Loading the model" keeps the shopper's first
    search as fast as the others. PyTorch is imported lazily (seconds) for the same reason.
    """
    import torch
    from PIL import Image

    from model import load_retriever

    torch.set_num_threads(threads)
    retriever = load_retriever(checkpoint)
    t0 = time.perf_counter()
    retriever.encode_query(Image.new("RGB", (224, 224), "white"), "warm up")
    log.info("model %s loaded; warm-up query %.0f ms on %d thread(s)", retriever.fingerprint,
             1e3 * (time.perf_counter() - t0), threads)
    return retriever


def open_index(settings: Settings, fingerprint: str):
    """Connect (never starting a server: that is run_app.sh's job) and load the FAISS index.

    Raises DatabaseUnavailableError, EmptyCatalogError, FingerprintMismatchError.
    """
    from indexer.search import CatalogSearch

    client = ensure_database(settings, start_embedded=False)
    try:
        return GuardedIndex(CatalogSearch(CatalogStore.open(settings, client), fingerprint))
    except BaseException:
        client.close()
        raise


class GuardedIndex:
    """The shared CatalogSearch behind a lock for the calls that read or swap its arrays.

    Why: every browser session runs in its own thread against the one cached index, and
    ``refresh()`` (after a new build) replaces ids, vectors and the FAISS index one after the
    other; a search in between could pair new ids with the old index. Searches take well under
    a millisecond, so serialising them costs nothing noticeable.
    """

    def __init__(self, index: Any):
        self.index = index
        self._lock = threading.Lock()

    def refresh(self) -> bool:
        with self._lock:
            return self.index.refresh()

    def search(self, query_vec: Any, k: int, category: str | None = None):
        with self._lock:
            return self.index.search(query_vec, k, category)

    def fetch(self, ids: list[str]) -> list[dict[str, Any]]:
        return self.index.fetch(ids)  # a database query; reads no shared arrays

    def __getattr__(self, name: str) -> Any:  # size, categories, ids, ranges, last_build...
        return getattr(self.index, name)


def random_item_id(index: Any, category: str | None, rng: random.Random) -> str | None:
    """A random item of the in-memory index (of ``category`` when given), without a DB query.

    Adapter over CatalogSearch internals: ``ids`` is sorted by category and ``ranges`` maps a
    category to its slice, so a category pick is a slice, not a scan.
    """
    lo, hi = (0, len(index.ids)) if category is None else index.ranges.get(category, (0, 0))
    return str(index.ids[rng.randrange(lo, hi)]) if hi > lo else None


def build_time(build: Mapping[str, Any] | None) -> str:
    """When the index on display was built, for the sidebar ("unknown" when not recorded)."""
    when = (build or {}).get("finished_at") or (build or {}).get("started_at")
    if isinstance(when, datetime):
        return f"{when:%Y-%m-%d %H:%M} UTC"
    return str(when) if when else "unknown"


def build_hint(settings: Settings) -> str:
    """Commands that create and index the demo catalog with the configured checkpoint."""
    cat = settings.catalog_dir
    return (
        "Build it with `bash run_app.sh` (it generates and indexes the demo catalog when the "
        "collection is empty), or by hand:\n\n"
        f"    python -m dataprep.demo_catalog --out {cat} --seed 0 --per-category 200\n"
        f"    python -m indexer build --images {cat}/images --metadata {cat}/metadata.csv "
        f"--checkpoint {settings.checkpoint}"
    )


def describe_problem(exc: BaseException, settings: Settings | None) -> str:
    """One message for the page: what is wrong and what to do next (markdown)."""
    uri = mask_uri(settings.effective_uri) if settings else "the configured MongoDB"
    if isinstance(exc, DatabaseUnavailableError | pymongo.errors.PyMongoError):
        detail = str(exc) if isinstance(exc, IndexerError) else type(exc).__name__
        return (
            f"**The catalog database is not reachable at `{uri}`.** {detail}\n\n"
            "Start the embedded database with `python -m indexer.db start` (or `bash "
            "run_app.sh`, which starts it), or set `MONGO_URI` to a running MongoDB; then "
            "press **Retry**."
        )
    if isinstance(exc, EmptyCatalogError):
        where = f"`{settings.db_name}.{settings.collection_name}`" if settings else "the catalog"
        hint = build_hint(settings) if settings else ""
        return f"**The catalog {where} is empty.** {exc}\n\n{hint}"
    if isinstance(exc, FingerprintMismatchError | DimensionMismatchError):
        ckpt = settings.checkpoint if settings else "the checkpoint"
        return (
            f"**The checkpoint does not match the stored vectors.** {exc}\n\n"
            f"Either re-index the catalog with this checkpoint (`python -m indexer build ... "
            f"--checkpoint {ckpt}`) or start the app with the checkpoint that built the index "
            "(`bash run_app.sh --checkpoint DIR`)."
        )
    if isinstance(exc, SettingsError):
        return f"**Configuration error.** {exc}\n\nFix the variable in the environment or `.env`."
    if isinstance(exc, IndexerError):
        return f"**Catalog error.** {exc}"
    return f"**Unexpected error.** {type(exc).__name__}: {exc}"


def describe_checkpoint_problem(exc: BaseException, checkpoint: Path) -> str:
    """Message for a checkpoint that is missing or cannot be loaded."""
    what = "does not exist" if not Path(checkpoint).exists() else "cannot be loaded"
    return (
        f"**The model checkpoint `{checkpoint}` {what}.** {type(exc).__name__}: {exc}\n\n"
        "Pass `--checkpoint DIR` to run_app.sh (or set `CHECKPOINT`) to a folder saved by "
        "`python -m model.train` or `Retriever.save`."
    )
