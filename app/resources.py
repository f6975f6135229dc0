"""The app's heavy shared parts, loaded once per server process: the model and the index.

Why separate from the Streamlit script: the page wraps these functions in ``st.cache_resource``
(one model and one FAISS index per process, shared by every session), while tests and the
cold-start benchmark call them directly. The index (``indexer.CatalogSearch``) is safe to share
between session threads: it guards its own state.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from app.settings import DEFAULT_TORCH_THREADS
from indexer import CatalogStore, ensure_database
from project_settings import Settings

if TYPE_CHECKING:
    from indexer import CatalogSearch

log = logging.getLogger(__name__)


def load_model(checkpoint: Path, threads: int = DEFAULT_TORCH_THREADS, device: str = "auto"):
    """The retriever of ``checkpoint`` on ``threads`` CPU threads, warmed up with one query.

    Why one thread by default: a single query is too small to gain from a second thread, and
    with two OpenMP threads on this 2-core machine any other busy process (the browser, an
    indexer run) made one query take 2.3 s instead of 50 ms (measured: threads spin-wait on
    each other). Why the warm-up: the first forward pass allocates and picks kernels
    (seconds), and the conversation memory loads its sentence reader on first use; paying that
    while the page says "Loading the model" keeps the shopper's first search as fast as the
    others. PyTorch is imported lazily (seconds) for the same reason.
    """
    import torch
    from PIL import Image

    from model import load_retriever

    torch.set_num_threads(threads)
    retriever = load_retriever(checkpoint, device=device)
    t0 = time.perf_counter()
    blank = Image.new("RGB", (224, 224), "white")
    # Two turns: the conversation memory loads its clause reader too (model.conversation).
    retriever.encode_conversation([(blank, "warm up"), (blank, "something a bit more elegant")])
    log.info("model %s loaded on %s; warm-up query %.0f ms on %d thread(s)",
             retriever.fingerprint, retriever.device, 1e3 * (time.perf_counter() - t0), threads)
    return retriever


def open_index(settings: Settings, fingerprint: str) -> CatalogSearch:
    """Connect (never starting a server: that is run_app.sh's job) and load the FAISS index,
    from its snapshot under INDEX_SNAPSHOT_DIR when that matches the latest build.

    Raises DatabaseUnavailableError, EmptyCatalogError, FingerprintMismatchError.
    """
    from indexer import CatalogSearch, settings_config

    client = ensure_database(settings, start_embedded=False)
    try:
        return CatalogSearch(CatalogStore.open(settings, client), fingerprint,
                             settings_config(settings))
    except BaseException:
        client.close()
        raise
