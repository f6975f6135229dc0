"""The shopping page: a reference garment plus feedback -> catalog items, turn after turn.

Layout only. The model and the FAISS index are cached resources (loaded once per process);
the query pipeline, feedback rules and the chain of turns live in app.pipeline, app.feedback
and app.history, settings in app.settings, and every failure is worded by app.messages.

Run with ``bash run_app.sh`` (or, from the repository root with the database up,
``PYTHONPATH=. streamlit run app/streamlit_app.py``).
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

import pymongo.errors
import streamlit as st

from app import messages, resources
from app.feedback import MAX_FEEDBACK_CHARS
from app.history import History, HistoryError, ResultItem, Turn
from app.markup import plain
from app.pipeline import (
    reference_from_document,
    reference_from_upload,
    run_query,
    wait_for_database,
)
from app.settings import MAX_TOP_K, AppConfig, load_app_config
from imaging import ImageLoadError
from indexer import DatabaseUnavailableError, IndexerError
from project_settings import SettingsError

log = logging.getLogger(__name__)

ALL_CATEGORIES = "All categories"
GRID_COLUMNS = 4
STEPS_PER_ROW = 4
UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"]
REFRESH_CHECK_S = 1.5  # longest wait for the "is there a newer build" check
UPLOAD_HARD_LIMIT_MB = 64  # Streamlit's own refusal; our clearer limit (APP_MAX_UPLOAD_MB) is lower


@st.cache_resource(show_spinner="Loading the model (once per server)...")
def get_retriever(checkpoint: str, threads: int, device: str = "auto"):
    return resources.load_model(Path(checkpoint), threads, device)


@st.cache_resource(show_spinner="Loading the catalog index (once per server)...")
def get_index(index_key: str, fingerprint: str, _config: AppConfig):
    """One FAISS index per (database, collection, model); ``_config`` is not part of the key."""
    return resources.open_index(_config.settings, fingerprint)


def configure_logging() -> None:
    """Our INFO lines (model load, index load, per-query timings) in the server terminal."""
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in ("app", "indexer", "model"):
        logging.getLogger(name).setLevel(logging.INFO)


def init_state() -> None:
    """Session keys, created only when missing so reruns never reset a shopper's session."""
    defaults = {
        "history": History,
        "upload_seen": lambda: None,  # file_id of the last upload we processed
        "upload_error": lambda: None,  # message about the last rejected upload
        "notice": lambda: None,  # (level, text) shown once, set by callbacks
    }
    for key, factory in defaults.items():
        if key not in st.session_state:
            st.session_state[key] = factory()


def problem_ui(message: str, retry_key: str = "retry") -> None:
    """Show a blocking problem with a retry button, then stop this run."""
    st.error(message)
    st.button("Retry", key=retry_key)
    st.stop()


def load_parts(config: AppConfig):
    """The cached retriever and index, or a clear message and st.stop()."""
    try:
        retriever = get_retriever(str(config.checkpoint), config.torch_threads,
                                  config.settings.device)
    except Exception as exc:  # any load failure is reported, never a traceback
        log.exception("loading the checkpoint failed")
        problem_ui(messages.describe_checkpoint_problem(exc, config.checkpoint))
    try:
        index = get_index(config.index_key, retriever.fingerprint, config)
    except (IndexerError, pymongo.errors.PyMongoError) as exc:
        problem_ui(messages.describe_problem(exc, config.settings))
    refresh_index(index, config)
    return retriever, index


def refresh_index(index, config: AppConfig) -> None:
    """Reload the index when a rebuild finished since it was loaded.

    A database that does not answer is no reason to block the page: the loaded index still
    searches, and the query says so itself if it needs the database (fetching documents).
    The check waits at most REFRESH_CHECK_S, so a database outage does not slow every rerun
    by pymongo's full server-selection timeout."""
    try:
        with pymongo.timeout(REFRESH_CHECK_S):
            stale = index.is_stale()
        if stale and index.refresh():
            log.info("catalog index reloaded after a new build")
    except (IndexerError, pymongo.errors.PyMongoError) as exc:
        if not isinstance(exc, DatabaseUnavailableError | pymongo.errors.ConnectionFailure):
            problem_ui(messages.describe_problem(exc, config.settings))
        log.warning("index freshness not checked (%s); serving the loaded index",
                    type(exc).__name__)


def sidebar_ui(index, retriever, config: AppConfig) -> tuple[int, str | None]:
    """Catalog facts and the search options; returns (top-k, category or None)."""
    with st.sidebar:
        st.header("Catalog")
        st.metric("Items", f"{index.size:,}")
        st.caption(f"Model fingerprint `{retriever.fingerprint}`  \n"
                   f"Index built {messages.build_time(index.last_build)}")
        st.caption(f"Checkpoint `{config.checkpoint}`")
        st.divider()
        st.header("Search options")
        k = st.slider("Results (top-K)", 1, MAX_TOP_K, config.default_k, key="top_k")
        options = [ALL_CATEGORIES, *sorted(index.categories)]
        category = st.selectbox("Category", options, key="category",
                                format_func=lambda c: c if c == ALL_CATEGORIES
                                else f"{c} ({index.categories.get(c, 0)})")
    return int(k), (None if category == ALL_CATEGORIES else category)


def fetch_one(index, config: AppConfig, item_id: str) -> list[dict]:
    """The item's document, waiting through a short database outage (callbacks draw no
    placeholder, so a toast says why the click takes a while)."""
    return wait_for_database(
        lambda: index.fetch([item_id]), config.db_wait_s,
        on_wait=lambda: st.toast("Reconnecting to the catalog database...", icon=":material/sync:"))


def on_random(index, config: AppConfig, category: str | None) -> None:
    """Callback: start a new chain from a random catalog item (of the chosen category)."""
    try:
        item_id = index.random_id(category, random.Random())
        if item_id is None:
            st.session_state["notice"] = ("warning", "No catalog item in that category.")
            return
        doc = fetch_one(index, config, item_id)[0]
        st.session_state["history"].start(reference_from_document(doc, config.image_dirs))
        st.session_state["upload_error"] = None
        st.session_state["feedback"] = ""
    except (ImageLoadError, IndexerError, pymongo.errors.PyMongoError, IndexError) as exc:
        st.session_state["notice"] = ("error", messages.describe_problem(exc, config.settings))


def on_refine(index, config: AppConfig, item_id: str) -> None:
    """Callback: the chosen result becomes the next reference; the feedback box empties."""
    history: History = st.session_state["history"]
    try:
        docs = fetch_one(index, config, item_id)
        if not docs:
            raise HistoryError(f"item {item_id} is no longer in the catalog")
        history.refine_from(item_id, reference_from_document(docs[0], config.image_dirs))
        st.session_state["feedback"] = ""
    except (HistoryError, ImageLoadError) as exc:
        st.session_state["notice"] = ("error", f"Cannot refine from this item: "
                                               f"{plain(exc, None)}")
    except (IndexerError, pymongo.errors.PyMongoError) as exc:
        st.session_state["notice"] = ("error", messages.describe_problem(exc, config.settings))


def on_go_back(index: int) -> None:
    """Callback: return to step ``index`` with its feedback and results."""
    try:
        turn = st.session_state["history"].go_back(index)
        st.session_state["feedback"] = turn.feedback
    except HistoryError as exc:
        st.session_state["notice"] = ("warning", str(exc))


def take_upload(uploaded, config: AppConfig) -> None:
    """Start a new chain from a new upload; a bad file leaves the session as it was."""
    if uploaded is None or uploaded.file_id == st.session_state["upload_seen"]:
        return
    st.session_state["upload_seen"] = uploaded.file_id
    limit_mb = config.max_upload_bytes / 2**20
    if uploaded.size > config.max_upload_bytes:
        st.session_state["upload_error"] = (
            f"**{plain(uploaded.name)}** is {uploaded.size / 2**20:.1f} MB; the limit is "
            f"{limit_mb:.0f} MB. Upload a smaller photo (a phone picture resized to about "
            "1000 px is plenty)."
        )
        return
    try:
        ref = reference_from_upload(uploaded.getvalue(), uploaded.name,
                                    max_bytes=config.max_upload_bytes)
    except ImageLoadError as exc:
        st.session_state["upload_error"] = (f"**{plain(uploaded.name)}** cannot be used: "
                                            f"{plain(exc, None)}")
        return
    st.session_state["history"].start(ref)
    st.session_state["upload_error"] = None
    st.session_state["feedback"] = ""


def reference_ui(index, config: AppConfig, category: str | None) -> None:
    """Upload or random pick, and the current reference."""
    st.subheader("1. Reference")
    uploaded = st.file_uploader(
        "Upload a photo of a garment", type=UPLOAD_TYPES, key="upload",
        max_upload_size=UPLOAD_HARD_LIMIT_MB,
        help=f"Up to {config.max_upload_bytes / 2**20:.0f} MB. A new image starts a new session.",
    )
    take_upload(uploaded, config)
    st.button("Random catalog item", key="random", on_click=on_random,
              args=(index, config, category))
    if st.session_state["upload_error"]:
        st.error(st.session_state["upload_error"])
    ref = st.session_state["history"].reference
    if ref is None:
        st.info("Upload a photo, or pick a random catalog item, to start.")
        return
    st.image(ref.thumbnail or ref.image, caption=f"Reference: {plain(ref.label)}", width=220)


def query_ui(enabled: bool) -> tuple[str, bool]:
    """Feedback box and Search button in one form, so Enter searches too."""
    st.subheader("2. What should change?")
    with st.form("query", border=False):
        text = st.text_input(
            "Feedback", key="feedback", disabled=not enabled,
            placeholder="e.g. like this, but navy with long sleeves",
            help=f"At most {MAX_FEEDBACK_CHARS} characters are used. Leave empty to search by "
                 "the image alone.",
        )
        submitted = st.form_submit_button("Search", key="search", type="primary",
                                          disabled=not enabled)
    return text or "", submitted


def search(retriever, index, config: AppConfig, raw: str, k: int,
           category: str | None) -> None:
    """Run one query from the current reference and record it; errors become messages."""
    history: History = st.session_state["history"]
    status = st.empty()  # "reconnecting" while the database is away, then the error or nothing
    try:
        turn = wait_for_database(
            lambda: run_query(retriever, index, history.reference, raw, k=k, category=category),
            config.db_wait_s,
            on_wait=lambda: status.warning(messages.reconnecting(config.settings,
                                                                 config.db_wait_s)))
    except (IndexerError, pymongo.errors.PyMongoError) as exc:
        status.error(messages.describe_problem(exc, config.settings))
        return
    status.empty()
    history.record(turn)


def describe_attributes(item: ResultItem) -> str:
    """The item's attributes as one escaped line (catalog text is shown as text)."""
    return " · ".join(f"{plain(k, 40)}: {plain(v, 60)}" for k, v in item.attributes.items()
                      if v not in (None, ""))


def results_ui(turn: Turn, index, config: AppConfig) -> None:
    """Grid of thumbnails with title, category, attributes, score and 'Refine from this'."""
    for note in turn.notes:
        st.info(note)
    where = f" in {plain(turn.category)}" if turn.category else ""
    said = f'"{plain(turn.feedback, None)}"' if turn.feedback else "the image alone"
    st.caption(f"{len(turn.results)} results{where} for {said} "
               f"in {turn.latency_ms:.0f} ms")
    if not turn.results:
        st.warning("No results: try another category or fewer constraints.")
        return
    for row_start in range(0, len(turn.results), GRID_COLUMNS):
        cols = st.columns(GRID_COLUMNS)
        for col, item in zip(cols, turn.results[row_start:row_start + GRID_COLUMNS],
                             strict=False):
            with col.container(border=True, key=f"result_{item.item_id}"):
                if item.thumbnail:
                    st.image(item.thumbnail, width="stretch")
                st.markdown(f"**{plain(item.title)}**")
                st.caption(f"{plain(item.category)} · score {item.score:.3f}  \n"
                           f"{describe_attributes(item)}")
                st.button("Refine from this", key=f"refine_{item.item_id}",
                          on_click=on_refine, args=(index, config, item.item_id))


def history_ui(history: History) -> None:
    """The chain of turns as a strip of cards: reference -> feedback -> pick, 'Back to step i'."""
    if not history.turns:
        return
    st.subheader("Your steps")
    for row_start in range(0, len(history.turns), STEPS_PER_ROW):
        cols = st.columns(STEPS_PER_ROW)
        for offset, col in enumerate(cols[: len(history.turns) - row_start]):
            i = row_start + offset
            turn = history.turns[i]
            with col.container(border=True, key=f"step_{i}"):
                said = f'"{plain(turn.feedback, 80)}"' if turn.feedback else "(image only)"
                st.markdown(f"**Step {i + 1}.** {said}")
                ref_col, pick_col = st.columns(2)
                if turn.reference.thumbnail:
                    ref_col.image(turn.reference.thumbnail, width=64, caption="from")
                if turn.chosen and turn.chosen.thumbnail:
                    pick_col.image(turn.chosen.thumbnail, width=64, caption="picked")
                picked = (f" → {plain(turn.chosen.title, 60)}" if turn.chosen
                          else " → (results on display)")
                st.caption(f"{plain(turn.reference.label, 60)}{picked}")
                st.button(f"Back to step {i + 1}", key=f"back_{i}", on_click=on_go_back,
                          args=(i,))


def notice_ui() -> None:
    """Messages left by callbacks, shown once."""
    notice = st.session_state["notice"]
    if notice is None:
        return
    try:
        level, text = notice
        (st.error if level == "error" else st.warning)(text)
    finally:
        st.session_state["notice"] = None


def main() -> None:
    st.set_page_config(page_title="FashionVLP: like this, but...", layout="wide")
    configure_logging()
    init_state()
    st.title("Like this, but...")
    st.caption("Show a garment, say what to change, and find it in the catalog.")
    try:
        config = load_app_config()
    except (IndexerError, SettingsError) as exc:
        problem_ui(messages.describe_problem(exc, None))
    retriever, index = load_parts(config)
    k, category = sidebar_ui(index, retriever, config)
    notice_ui()
    history: History = st.session_state["history"]
    steps = st.container()  # filled last, so it shows the turn this run may add

    left, right = st.columns([1, 3], gap="large")
    with left:
        reference_ui(index, config, category)
    with right:
        raw, submitted = query_ui(enabled=history.reference is not None)
        open_turn = history.open_turn
        if submitted and history.reference is not None:
            search(retriever, index, config, raw, k, category)
        elif open_turn is not None and (open_turn.k, open_turn.category) != (k, category):
            # Options changed: redo the search on display with the same feedback.
            search(retriever, index, config, open_turn.feedback, k, category)
        if history.open_turn is not None:
            results_ui(history.open_turn, index, config)
    with steps:
        history_ui(history)


if __name__ == "__main__":
    main()
