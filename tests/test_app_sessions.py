"""Sessions that survive: the store (real embedded database), the chain's stored form, and the
page restoring, refusing and saving sessions (AppTest)."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import bson
import pytest
from streamlit.testing.v1 import AppTest

from app.history import History
from app.pipeline import reference_from_document, reference_from_upload, run_query
from app.sessions import (
    NOT_FOUND,
    SessionDataError,
    SessionNotFound,
    SessionStore,
    SessionTooLarge,
    chain_document,
    chain_signature,
    is_token,
    new_token,
    restore_chain,
    token_id,
)
from indexer import CatalogSearch, CatalogStore
from tests.app_catalog import (
    database_session,
    draw_garment,
    jpeg_bytes,
    result_buttons,
    search,
    uploaded,
)

SCRIPT = str(Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py")


@pytest.fixture(scope="module")
def index(indexed_catalog, tiny_retriever):
    return CatalogSearch(CatalogStore.from_collection(indexed_catalog), tiny_retriever.fingerprint)


@pytest.fixture
def sessions(indexed_catalog):
    coll = indexed_catalog.database[f"sessions_{uuid.uuid4().hex[:8]}"]
    yield SessionStore(coll, ttl_days=7, max_turns=5, max_bytes=2**20)
    coll.drop()


def garment_jpeg(colour=(20, 30, 90)) -> bytes:
    return jpeg_bytes(draw_garment("shirt", colour, False, size=200))


def body(n_turns: int = 1, data: bytes = b"") -> dict:
    return {"v": 1, "model": "m", "reference": {"kind": "upload", "key": "k", "label": "x"},
            "uploads": [{"key": "k", "label": "x", "data": bson.Binary(data)}],
            "turns": [{"feedback": f"turn {i}"} for i in range(n_turns)]}


# ---- the store ---------------------------------------------------------------------------------
def test_tokens_are_unguessable_and_only_their_hash_is_stored(sessions):
    token = new_token()
    assert is_token(token) and len({new_token() for _ in range(100)}) == 100
    sessions.save(token, body())
    (doc,) = list(sessions.collection.find())
    assert doc["_id"] == hashlib.sha256(token.encode()).hexdigest() == token_id(token)
    assert token.encode() not in bson.encode(doc)  # a database dump shows no live link
    assert sessions.load(token)["turns"] == [{"feedback": "turn 0"}]


@pytest.mark.parametrize("token", [None, "", "short", "x" * 42 + "!", "a" * 44, 12345,
                                   "../../etc/passwd", {"$ne": None}])
def test_a_malformed_or_unknown_token_is_not_found(sessions, token):
    sessions.save(new_token(), body())  # a live session exists, and no token reaches it
    with pytest.raises(SessionNotFound):
        sessions.load(token)
    with pytest.raises(SessionNotFound):
        sessions.load(new_token())


def test_an_expired_session_is_refused_on_read_before_any_sweep(sessions):
    token = new_token()
    sessions.save(token, body())
    later = SessionStore(sessions.collection, ttl_days=7, max_turns=5, max_bytes=2**20,
                         now=lambda: datetime.now(UTC) + timedelta(days=7, seconds=1))
    with pytest.raises(SessionNotFound, match="expired"):
        later.load(token)
    assert sessions.collection.count_documents({}) == 0  # deleted on the way


def test_each_save_extends_the_life_and_keeps_the_creation_time(sessions):
    token, t0 = new_token(), datetime(2030, 1, 1, tzinfo=UTC)
    clock = [t0]
    store = SessionStore(sessions.collection, ttl_days=7, max_turns=5, max_bytes=2**20,
                         now=lambda: clock[0])
    store.save(token, body())
    clock[0] = t0 + timedelta(days=3)
    store.save(token, body(2))
    doc = store.load(token)
    assert doc["created_at"] == t0.replace(tzinfo=None)
    assert doc["expires_at"] == (t0 + timedelta(days=10)).replace(tzinfo=None)


def test_the_ttl_index_deletes_expired_sessions_in_the_database(sessions):
    sessions.ensure_indexes()
    info = sessions.collection.index_information()["expires_at_ttl"]
    assert info["key"] == [("expires_at", 1)] and info["expireAfterSeconds"] == 0


def test_the_size_caps_refuse_to_save_and_write_nothing(sessions):
    with pytest.raises(SessionTooLarge, match="SESSION_MAX_TURNS"):
        sessions.save(new_token(), body(6))
    with pytest.raises(SessionTooLarge, match="SESSION_MAX_BYTES"):
        sessions.save(new_token(), body(1, b"\0" * 2**20))
    assert sessions.collection.count_documents({}) == 0


def test_delete_removes_the_session(sessions):
    token = new_token()
    sessions.save(token, body())
    assert sessions.delete(token) and not sessions.delete(token)
    with pytest.raises(SessionNotFound):
        sessions.load(token)


# ---- the chain as a document -------------------------------------------------------------------
def three_turns(tiny_retriever, index) -> History:
    """upload -> "is red" (pick 2nd) -> "has long sleeves", a like -> "shorter" on display."""
    from app.history import Steer

    h = History()
    h.start(reference_from_upload(garment_jpeg(), "mine.jpg"))
    h.record(run_query(tiny_retriever, index, h.reference, "is red", k=5))
    pick = h.turns[0].results[1].item_id
    h.refine_from(pick, reference_from_document(index.fetch([pick])[0]))
    h.record(run_query(tiny_retriever, index, h.reference, "has long sleeves", k=5,
                       steer=h.steer(False, new=True)))
    h.toggle_click(h.turns[1].results[3].item_id, "like")
    h.remove_words("is red")
    h.record(run_query(tiny_retriever, index, h.reference, "shorter", k=5,
                       steer=h.steer(False, new=True)))
    assert isinstance(h.steer(False, new=False), Steer)
    return h


def test_a_stored_chain_comes_back_with_the_same_steps_and_photo(tiny_retriever, index):
    h = three_turns(tiny_retriever, index)
    doc = bson.decode(bson.encode(chain_document(h, tiny_retriever.fingerprint)))  # as stored
    back = restore_chain(doc, index.fetch)
    assert [t.feedback for t in back.turns] == ["is red", "has long sleeves", "shorter"]
    assert [t.said for t in back.turns] == ["", "has long sleeves", "shorter"]
    assert [t.likes for t in back.turns] == [t.likes for t in h.turns]
    assert [t.chosen.item_id if t.chosen else None for t in back.turns] == [
        t.chosen.item_id if t.chosen else None for t in h.turns]
    assert [[r.item_id for r in t.results] for t in back.turns] == [
        [r.item_id for r in t.results] for t in h.turns]
    assert back.reference.key == h.reference.key
    assert back.turns[0].reference.image.tobytes() == h.turns[0].reference.image.tobytes()
    assert back.open_turn.basis is None  # the results on display are searched again
    assert chain_signature(back, tiny_retriever.fingerprint) == chain_signature(
        h, tiny_retriever.fingerprint)


def test_a_chain_whose_items_are_gone_cannot_be_restored(tiny_retriever, index):
    doc = chain_document(three_turns(tiny_retriever, index))
    with pytest.raises(SessionDataError):
        restore_chain(doc, lambda ids: [])  # a rebuilt catalog without those items
    with pytest.raises(SessionDataError):
        restore_chain({**doc, "v": 99}, index.fetch)
    with pytest.raises(SessionDataError):
        restore_chain({"v": 1, "turns": "nonsense"}, index.fetch)


# ---- the page ----------------------------------------------------------------------------------
@pytest.fixture
def app_env(app_env, monkeypatch):
    """The shared page environment (conftest) showing ten results a step."""
    monkeypatch.setenv("APP_TOP_K", "10")
    return {**app_env, "APP_TOP_K": "10"}


def new_app(token: str | None = None) -> AppTest:
    at = AppTest.from_file(SCRIPT, default_timeout=60)
    if token is not None:
        at.query_params["session"] = token
    return at


def result_ids(at: AppTest) -> list[str]:
    return [b.key.removeprefix("refine_") for b in result_buttons(at)]


def page_text(at: AppTest) -> str:
    parts = [e.value for e in (*at.markdown, *at.caption, *at.info, *at.warning, *at.error,
                               *at.sidebar.caption)]
    return "\n".join(str(p) for p in parts)


def three_turn_page() -> AppTest:
    """A shopper's session: upload, two searches with a pick between, then a click."""
    at = search(uploaded(new_app().run(), garment_jpeg()), "is red")
    at = result_buttons(at)[1].click().run()
    at = search(at, "has long sleeves")
    at = search(at, "shorter")
    return at.button(key=f"like_{result_ids(at)[4]}").click().run()


@pytest.mark.slow
def test_a_reload_or_a_shared_link_restores_the_session_with_the_same_results(app_env):
    at = three_turn_page()
    assert not at.exception and not at.warning
    token = at.query_params["session"]
    assert is_token(token) and "a shared link shows your uploaded photo" in page_text(at)
    top10 = result_ids(at)
    assert len(top10) == 10

    again = new_app(token).run()  # a new browser session on the same address
    assert not again.exception and not again.warning
    history = again.session_state["history"]
    assert [t.feedback for t in history.turns] == ["is red", "has long sleeves", "shorter"]
    assert history.turns[-1].likes == at.session_state["history"].turns[-1].likes
    assert result_ids(again) == top10
    assert again.query_params["session"] == token
    assert [b.label for b in again.button if b.key and b.key.startswith("chip_")] == [
        b.label for b in at.button if b.key and b.key.startswith("chip_")]


@pytest.mark.parametrize("token", ["forged", "A" * 43, new_token()])
def test_a_forged_or_unknown_token_says_session_not_found(app_env, token):
    at = new_app(token).run()
    assert not at.exception
    assert [w.value for w in at.warning if NOT_FOUND in w.value]
    assert "session" not in at.query_params  # the page starts afresh
    assert at.session_state["history"].reference is None


def test_an_expired_session_says_session_not_found(app_env, indexed_catalog):
    at = search(uploaded(new_app().run(), garment_jpeg()), "is red")
    token = at.query_params["session"]
    indexed_catalog.database["sessions"].update_one(
        {"_id": token_id(token)}, {"$set": {"expires_at": datetime.now(UTC) - timedelta(1)}})
    again = new_app(token).run()
    assert not again.exception and any(NOT_FOUND in w.value for w in again.warning)
    assert indexed_catalog.database["sessions"].count_documents({"_id": token_id(token)}) == 0


def test_delete_this_session_removes_it_and_its_link(app_env, indexed_catalog):
    at = search(uploaded(new_app().run(), garment_jpeg()), "is red")
    token = at.query_params["session"]
    at = at.button(key="delete_session").click().run()
    assert not at.exception and any("deleted" in s.value for s in at.success)
    assert "session" not in at.query_params and at.session_state["history"].turns == []
    assert indexed_catalog.database["sessions"].count_documents({"_id": token_id(token)}) == 0
    assert any(NOT_FOUND in w.value for w in new_app(token).run().warning)


def test_a_session_over_the_turn_cap_refuses_another_turn(app_env, monkeypatch):
    monkeypatch.setenv("SESSION_MAX_TURNS", "2")
    at = search(search(uploaded(new_app().run(), garment_jpeg()), "is red"), "is blue")
    at = search(at, "is green")
    assert not at.exception
    assert any("SESSION_MAX_TURNS" in e.value for e in at.error)
    assert [t.feedback for t in at.session_state["history"].turns] == ["is red", "is blue"]


def test_a_photo_over_the_byte_cap_is_searched_but_says_it_is_not_saved(app_env, monkeypatch):
    monkeypatch.setenv("SESSION_MAX_BYTES", "2048")
    at = search(uploaded(new_app().run(), garment_jpeg()), "is red")
    assert not at.exception and len(result_ids(at)) == 10
    assert any("not saved" in w.value and "SESSION_MAX_BYTES" in w.value for w in at.warning)
    assert "session" not in at.query_params


@pytest.mark.slow
def test_a_database_outage_while_saving_keeps_the_page_and_saves_later(
        monkeypatch, tmp_path, tiny_checkpoint, tiny_retriever):
    with database_session(monkeypatch, tmp_path, tiny_checkpoint, tiny_retriever,
                          APP_DB_WAIT_S="0") as server:
        at = search(search(uploaded(new_app().run(), garment_jpeg()), "is red"), "is blue")
        token = at.query_params["session"]
        server.stop()
        at = at.button(key="undo").click().run()  # needs no database, but its save does
        assert not at.exception and not at.error
        assert any("could not be saved" in w.value for w in at.warning)
        assert [t.feedback for t in at.session_state["history"].turns] == ["is red"]
        assert result_buttons(at)  # the step before is on display

        server.start()
        at = at.run()  # the next run saves what was kept
        assert not at.warning
        again = new_app(token).run()
        assert [t.feedback for t in again.session_state["history"].turns] == ["is red"]
