"""The page's side of saved sessions: restore the chain of ``?session=<token>``, save every
change under that token, and delete it on request (storage in app.sessions).

Why the page never fails on a save: the chain lives in Streamlit's session state first; the
database copy is what a reload or a shared link needs. A save that fails (database down, size
cap) leaves the chain as it is, says so, and is tried again with the next action.
"""

from __future__ import annotations

import logging

import pymongo
import pymongo.errors
import streamlit as st

from app import messages
from app.history import History
from app.sessions import (
    NOT_FOUND,
    SessionDataError,
    SessionNotFound,
    SessionStore,
    SessionTooLarge,
    chain_document,
    chain_signature,
    new_token,
    restore_chain,
)
from app.settings import MAX_TOP_K, AppConfig
from indexer import IndexerError

log = logging.getLogger(__name__)

PARAM = "session"  # the query parameter holding the token
SAVE_TIMEOUT_S = 2.0  # a save or delete waits at most this for the database (CSOT)
ALL_CATEGORIES = "All categories"


def forget_session() -> None:
    """This page no longer shows a saved session (its link is dropped from the address)."""
    st.query_params.pop(PARAM, None)
    st.session_state["session_token"] = None
    st.session_state["saved"] = None


def restore(sessions: SessionStore, index, config: AppConfig, wait) -> None:
    """Load the chain of the address's token when this page does not show it yet.

    A malformed, unknown or expired token, or a session whose items are gone, gives one
    message (NOT_FOUND) and a fresh page; a database that does not answer stops the page with
    the usual message and a Retry button, keeping the token for the retry. ``wait`` is
    app.pipeline.wait_for_database bound to the page's wait."""
    token = st.query_params.get(PARAM)
    if not token or token == st.session_state["session_token"]:
        return
    try:
        doc = wait(lambda: sessions.load(token))
        history = wait(lambda: restore_chain(doc, index.fetch, config.image_dirs))
    except (SessionNotFound, SessionDataError) as exc:
        log.info("session not restored: %s", exc)
        forget_session()
        st.session_state["notice"] = ("warning", f"**{NOT_FOUND}.** The link may have expired "
                                      f"({config.session_ttl_days:g} days after its last step), "
                                      "been deleted, or been copied incompletely.")
        return
    except (IndexerError, pymongo.errors.PyMongoError) as exc:
        st.error(messages.describe_problem(exc, config.settings))
        st.button("Retry", key="retry_restore")
        st.stop()
    st.session_state["history"] = history
    st.session_state["session_token"] = token
    st.session_state["saved"] = chain_signature(history, str(doc.get("model", "")))
    _restore_options(history, index)
    log.info("session restored: %d turn(s)", len(history.turns))


def _restore_options(history: History, index) -> None:
    """The sidebar's options as the last turn had them, so its results are not searched again
    with other ones."""
    if not history.turns:
        return
    last = history.turns[-1]
    if 1 <= last.k <= MAX_TOP_K:
        st.session_state["top_k"] = last.k
    st.session_state["category"] = (last.category if last.category in index.categories
                                    else ALL_CATEGORIES)
    st.session_state["show_seen"] = last.show_seen


def save(sessions: SessionStore, fingerprint: str, status) -> None:
    """Save the chain when it changed since the last save; ``status`` (a placeholder) shows
    why it could not be."""
    history: History = st.session_state["history"]
    if history.reference is None:
        return
    signature = chain_signature(history, fingerprint)
    if signature == st.session_state["saved"]:
        return
    token = st.session_state["session_token"] or new_token()
    try:
        with pymongo.timeout(SAVE_TIMEOUT_S):
            size = sessions.save(token, chain_document(history, fingerprint))
    except SessionTooLarge as exc:
        status.warning(f"**This step is not saved:** {exc} Searching works as before, but the "
                       "link in the address bar restores the last step that was saved. Undo "
                       "a step or start a new search to keep saving.")
        return
    except pymongo.errors.PyMongoError as exc:
        log.warning("session not saved (%s): %s", type(exc).__name__, exc)
        status.warning("**Your steps could not be saved: the database is not answering.** "
                       "This page keeps them, and they are saved with your next action once "
                       "the database is back; until then the link restores the last saved step.")
        return
    log.info("session saved (%d turn(s), %.0f kB)", len(history.turns), size / 1e3)
    st.session_state["session_token"] = token
    st.session_state["saved"] = signature
    st.query_params[PARAM] = token


def on_delete(sessions: SessionStore) -> None:
    """Callback: delete the saved session and start afresh."""
    token = st.session_state["session_token"]
    try:
        with pymongo.timeout(SAVE_TIMEOUT_S):
            sessions.delete(token)
    except pymongo.errors.PyMongoError:
        st.session_state["notice"] = ("error", "The session could not be deleted: the database "
                                      "is not answering. Try again in a few seconds.")
        return
    forget_session()
    st.session_state["history"] = History()
    st.session_state["feedback"] = ""
    st.session_state["notice"] = ("success", "Session deleted: its link no longer works.")


def sidebar_note(sessions: SessionStore, config: AppConfig) -> None:
    """What the link holds, how long it lives, and the delete button (in the sidebar)."""
    if not st.session_state["session_token"]:
        return
    st.header("Session")
    st.caption("The address of this page restores these steps after a reload or a restart, "
               "and for anyone you share it with: **a shared link shows your uploaded photo**. "
               f"It expires {config.session_ttl_days:g} days after your last step.")
    st.button("Delete this session", key="delete_session", on_click=on_delete,
              args=(sessions,), icon=":material/delete:")
