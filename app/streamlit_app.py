"""The shopping page: a reference garment plus feedback -> catalog items, turn after turn.

Layout only. The model and the FAISS index are cached resources (loaded once per process);
the query pipeline, feedback rules, the chain of turns, what it remembers and the ranking from
clicks live in app.pipeline, app.feedback, app.history, app.memory and app.reranking; saved
sessions (the ``?session=`` link) in app.sessions and app.session_page; settings in
app.settings, and every failure is worded by app.messages.

Run with ``bash run_app.sh`` (or, from the repository root with the database up,
``PYTHONPATH=. streamlit run app/streamlit_app.py``).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import random
from pathlib import Path

import pymongo.errors
import streamlit as st

from app import messages, resources, session_page
from app.feedback import MAX_FEEDBACK_CHARS
from app.history import ClickKind, History, HistoryError, ResultItem, Turn
from app.markup import plain
from app.memory import Chip, chips
from app.pipeline import (
    reference_from_document,
    reference_from_upload,
    run_query,
    wait_for_database,
)
from app.sessions import SESSIONS_COLLECTION, SessionStore
from app.settings import MAX_TOP_K, AppConfig, load_app_config
from imaging import ImageLoadError
from indexer import DatabaseUnavailableError, IndexerError
from project_settings import SettingsError

log = logging.getLogger(__name__)

ALL_CATEGORIES = session_page.ALL_CATEGORIES
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


@st.cache_resource(show_spinner=False)
def get_sessions(index_key: str, limits: tuple, _index) -> SessionStore:
    """The saved sessions, in the catalog's database (the index's client); the TTL index is
    made here when the database answers, else by the first save."""
    ttl_days, max_turns, max_bytes = limits
    store = SessionStore(_index.store.items.database[SESSIONS_COLLECTION], ttl_days=ttl_days,
                         max_turns=max_turns, max_bytes=max_bytes)
    try:
        with pymongo.timeout(REFRESH_CHECK_S):
            store.ensure_indexes()
    except pymongo.errors.PyMongoError as exc:
        log.warning("session TTL index not checked yet (%s)", type(exc).__name__)
    return store


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
        "session_token": lambda: None,  # token of the saved session this page shows
        "saved": lambda: None,  # signature of the chain as last saved
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
    retriever.use_catalog_words(index.words)  # the catalog's own words are not typos
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


def sidebar_ui(index, retriever, config: AppConfig) -> tuple[int, str | None, bool]:
    """Catalog facts and the search options; returns (top-k, category or None, show seen)."""
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
        show_seen = st.toggle(
            "Show items already seen", key="show_seen",
            help="Items shown in earlier steps and passed over are ranked below the others; "
                 "switch this on to rank them like any other item.")
    return int(k), (None if category == ALL_CATEGORIES else category), bool(show_seen)


def fetch_one(index, config: AppConfig, item_id: str) -> list[dict]:
    """The item's document, waiting through a short database outage (callbacks draw no
    placeholder, so a toast says why the click takes a while)."""
    return wait_for_database(
        lambda: index.fetch([item_id]), config.db_wait_s,
        on_wait=lambda: st.toast("Reconnecting to the catalog database...", icon=":material/sync:"))


# ---- callbacks (they run before the script; searches run in it, with a status line) -------
def on_random(index, config: AppConfig, category: str | None) -> None:
    """Start a new chain from a random catalog item (of the chosen category)."""
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
    """The chosen result becomes the next reference; the feedback box empties."""
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


def history_action(action) -> None:
    """Run a change of the chain; a stale button's refusal becomes a notice."""
    try:
        action(st.session_state["history"])
    except HistoryError as exc:
        st.session_state["notice"] = ("warning", str(exc))


def on_go_back(index: int) -> None:
    """Return to step ``index`` with its results; the feedback box is for what comes next."""
    history_action(lambda h: h.go_back(index))
    st.session_state["feedback"] = ""


def on_undo() -> None:
    history_action(History.undo)
    st.session_state["feedback"] = ""


def on_click_item(item_id: str, kind: ClickKind) -> None:
    """'More like this' / 'Less like this': the results are searched again in this run."""
    history_action(lambda h: h.toggle_click(item_id, kind))


def on_remove_chip(chip: Chip) -> None:
    if chip.kind == "words":
        history_action(lambda h: h.remove_words(chip.text))
    else:
        history_action(lambda h: h.remove_click(chip.item_id))


def on_submit() -> None:
    """Search: the words go to this run's search, and the box empties for the next ones."""
    st.session_state["pending_search"] = st.session_state.get("feedback") or ""
    st.session_state["feedback"] = ""


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


# ---- layout ---------------------------------------------------------------------------------
def reference_ui(index, config: AppConfig, category: str | None) -> None:
    """Upload or random pick, and the current reference."""
    st.subheader("1. Reference")
    uploaded = st.file_uploader(
        "Upload a photo of a garment", type=UPLOAD_TYPES, key="upload",
        max_upload_size=UPLOAD_HARD_LIMIT_MB,
        help=f"Up to {config.max_upload_bytes / 2**20:.0f} MB. A new image starts a new search.",
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


def query_ui(enabled: bool) -> None:
    """Feedback box and Search button in one form, so Enter searches too."""
    with st.form("query", border=False):
        st.text_input(
            "Feedback", key="feedback", disabled=not enabled,
            placeholder="e.g. like this, but navy with long sleeves",
            help=f"At most {MAX_FEEDBACK_CHARS} characters are used. Earlier steps are "
                 "remembered (shown below); leave empty to search with the image and them.",
        )
        st.form_submit_button("Search", key="search", type="primary", disabled=not enabled,
                              on_click=on_submit)


def chip_key(chip: Chip) -> str:
    digest = hashlib.sha1((chip.item_id or chip.text).encode()).hexdigest()[:12]
    return f"chip_{chip.kind}_{digest}"


def chips_ui(history: History) -> None:
    """What the chain remembers, each removable with one click (the search runs without it)."""
    turns = history.turns
    if history.open_turn is None and turns and history.reference is not None:
        # After a pick: what the next search will carry (the picked item, nothing new said).
        turns = [*turns, Turn(history.reference, "", [])]
    remembered = chips(turns)
    if not remembered:
        return
    with st.container(horizontal=True, key="chips", vertical_alignment="center"):
        st.markdown("**Remembered:**")
        for chip in remembered:
            st.button(f"{plain(chip.label, 60)} ✕", key=chip_key(chip), on_click=on_remove_chip,
                      args=(chip,), help="Remove this: the search runs again without it")


def search(retriever, index, config: AppConfig, status, raw: str, k: int,
           category: str | None, show_seen: bool, *, new: bool) -> bool:
    """A new turn (``new``) or the open turn searched again; errors become messages."""
    history: History = st.session_state["history"]
    if new and len(history.turns) >= config.session_max_turns:
        status.error(f"**This search already has {len(history.turns)} steps**, the most one "
                     "session keeps (SESSION_MAX_TURNS). Undo a step, go back to an earlier "
                     "one, or start a new search with an upload or a random item.")
        return False
    steer = history.steer(show_seen, new=new)
    try:
        turn = wait_for_database(
            lambda: run_query(retriever, index, history.reference, raw, k=k, category=category,
                              steer=steer),
            config.db_wait_s,
            on_wait=lambda: status.warning(messages.reconnecting(config.settings,
                                                                 config.db_wait_s)))
    except (IndexerError, pymongo.errors.PyMongoError) as exc:
        status.error(messages.describe_problem(exc, config.settings))
        return False
    status.empty()
    (history.record if new else history.replace_open)(turn)
    return True


def describe_attributes(item: ResultItem) -> str:
    """The item's attributes as one escaped line (catalog text is shown as text)."""
    return " · ".join(f"{plain(k, 40)}: {plain(v, 60)}" for k, v in item.attributes.items()
                      if v not in (None, ""))


def results_caption(turn: Turn, remembers: bool) -> str:
    where = f" in {plain(turn.category)}" if turn.category else ""
    if turn.feedback:
        said = f'"{plain(turn.feedback, None)}"'
    else:
        said = "no new words" if remembers else "the image alone"
    return f"{len(turn.results)} results{where} for {said} in {turn.latency_ms:.0f} ms"


def results_ui(history: History, index, config: AppConfig) -> None:
    """Grid of thumbnails with title, category, attributes, score and the actions."""
    turn = history.open_turn
    for note in turn.notes:
        st.info(note)
    remembers = any(t.said for t in history.turns[:-1])
    st.caption(results_caption(turn, remembers))
    if not turn.results:
        st.warning("No results: try another category or fewer constraints.")
        return
    for row_start in range(0, len(turn.results), GRID_COLUMNS):
        cols = st.columns(GRID_COLUMNS)
        for col, item in zip(cols, turn.results[row_start:row_start + GRID_COLUMNS],
                             strict=False):
            with col.container(border=True, key=f"result_{item.item_id}"):
                result_card(item, turn, index, config)


def result_card(item: ResultItem, turn: Turn, index, config: AppConfig) -> None:
    if item.thumbnail:
        st.image(item.thumbnail, width="stretch")
    st.markdown(f"**{plain(item.title)}**")
    seen = " · seen before" if item.seen else ""
    st.caption(f"{plain(item.category)} · score {item.score:.3f}{seen}  \n"
               f"{describe_attributes(item)}")
    st.button("Refine from this", key=f"refine_{item.item_id}", on_click=on_refine,
              args=(index, config, item.item_id), width="stretch")
    liked, disliked = item.item_id in turn.likes, item.item_id in turn.dislikes
    st.button("More like this", key=f"like_{item.item_id}", on_click=on_click_item,
              args=(item.item_id, "like"), type="primary" if liked else "secondary",
              icon=":material/thumb_up:", width="stretch")
    st.button("Less like this", key=f"dislike_{item.item_id}", on_click=on_click_item,
              args=(item.item_id, "dislike"), type="primary" if disliked else "secondary",
              icon=":material/thumb_down:", width="stretch")


def history_ui(history: History) -> None:
    """The chain of turns as a strip of cards: reference -> words -> pick, 'Back to step i'."""
    if not history.turns:
        return
    head, undo = st.columns([4, 1], vertical_alignment="bottom")
    head.subheader("Your steps")
    undo.button("Undo last turn", key="undo", on_click=on_undo, icon=":material/undo:")
    for row_start in range(0, len(history.turns), STEPS_PER_ROW):
        cols = st.columns(STEPS_PER_ROW)
        for offset, col in enumerate(cols[: len(history.turns) - row_start]):
            i = row_start + offset
            with col.container(border=True, key=f"step_{i}"):
                step_card(i, history.turns[i])


def step_card(i: int, turn: Turn) -> None:
    said = f'"{plain(turn.said, 80)}"' if turn.said else "(no new words)"
    st.markdown(f"**Step {i + 1}.** {said}")
    ref_col, pick_col = st.columns(2)
    if turn.reference.thumbnail:
        ref_col.image(turn.reference.thumbnail, width=64, caption="from")
    if turn.chosen and turn.chosen.thumbnail:
        pick_col.image(turn.chosen.thumbnail, width=64, caption="picked")
    picked = (f" → {plain(turn.chosen.title, 60)}" if turn.chosen
              else " → (results on display)" if turn.is_open else "")
    clicks = ", ".join(part for part in (
        f"{len(turn.likes)} more like" if turn.likes else "",
        f"{len(turn.dislikes)} less like" if turn.dislikes else "") if part)
    st.caption(f"{plain(turn.reference.label, 60)}{picked}" + (f"  \n{clicks}" if clicks else ""))
    st.button(f"Back to step {i + 1}", key=f"back_{i}", on_click=on_go_back, args=(i,))


def notice_ui() -> None:
    """Messages left by callbacks, shown once."""
    notice = st.session_state["notice"]
    if notice is None:
        return
    try:
        level, text = notice
        {"error": st.error, "success": st.success}.get(level, st.warning)(text)
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
    sessions = get_sessions(config.index_key, (config.session_ttl_days,
                            config.session_max_turns, config.session_max_bytes), index)
    wait = functools.partial(wait_for_database, wait_s=config.db_wait_s)
    session_page.restore(sessions, index, config, wait)  # before the widgets it sets
    k, category, show_seen = sidebar_ui(index, retriever, config)
    session_note = st.sidebar.container()
    notice_ui()
    save_status = st.empty()
    history: History = st.session_state["history"]
    steps = st.container()  # filled last, so it shows the turn this run may add

    left, right = st.columns([1, 3], gap="large")
    with left:
        reference_ui(index, config, category)
    with right:
        st.subheader("2. What should change?")
        form_area, chips_area, status = st.container(), st.container(), st.empty()
        pending = st.session_state.pop("pending_search", None)
        if pending is not None and history.reference is not None:
            if not search(retriever, index, config, status, pending, k, category, show_seen,
                          new=True):
                st.session_state["feedback"] = pending  # the words stay for another try
        elif history.is_stale(k, category, show_seen):
            # A click, a removed chip or an option changed: search the open turn again.
            search(retriever, index, config, status, history.open_turn.feedback, k, category,
                   show_seen, new=False)
        with form_area:
            query_ui(enabled=history.reference is not None)
        with chips_area:
            chips_ui(history)
        if history.open_turn is not None:
            results_ui(history, index, config)
    with steps:
        history_ui(history)
    session_page.save(sessions, retriever.fingerprint, save_status)
    with session_note:
        session_page.sidebar_note(sessions, config)


if __name__ == "__main__":
    main()
