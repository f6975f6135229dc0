"""The page's logic with Streamlit's AppTest: real tiny model, real embedded database.

Each test drives the script the way a shopper would (upload, type, click) and asserts what
the page shows; the browser test (test_app_e2e.py) covers what AppTest cannot (Enter key,
real uploads, rendering).
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from model import ModelConfig, build_retriever
from tests.app_catalog import (
    database_session,
    down_for,
    draw_garment,
    jpeg_bytes,
    result_buttons,
    search,
    uploaded,
)

SCRIPT = str(Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py")
TIMEOUT = 60  # first run loads the model; later runs take well under a second


def new_app() -> AppTest:
    return AppTest.from_file(SCRIPT, default_timeout=TIMEOUT)


def garment_jpeg() -> bytes:
    return jpeg_bytes(draw_garment("shirt", (20, 30, 90), False, size=200))


def texts(at: AppTest) -> str:
    """Everything the page wrote, as one string (for 'the page says X' assertions)."""
    parts = [e.value for e in (*at.markdown, *at.caption, *at.info, *at.warning, *at.error)]
    return "\n".join(str(p) for p in parts)


def test_page_loads_with_catalog_facts_in_the_sidebar(app_env, tiny_retriever):
    at = new_app().run()
    assert not at.exception
    assert at.sidebar.metric[0].value == "24"
    side = "\n".join(c.value for c in at.sidebar.caption)
    assert tiny_retriever.fingerprint in side and "UTC" in side
    assert at.sidebar.selectbox(key="category").options == [
        "All categories", "dress (8)", "shirt (8)", "toptee (8)"]
    assert "Upload a photo" in texts(at)
    assert at.text_input(key="feedback").disabled  # nothing to search from yet


def test_upload_type_and_search_shows_a_grid_of_results(app_env):
    at = uploaded(new_app().run(), garment_jpeg())
    assert not at.exception and not at.error
    at = search(at, "navy with long sleeves")
    assert not at.exception and not at.error
    assert len(result_buttons(at)) == 12  # default top-K
    page = texts(at)
    assert "12 results for \"navy with long sleeves\"" in page
    assert "score" in page and "color:" in page and "sleeve:" in page
    history = at.session_state["history"]
    assert len(history.turns) == 1 and history.turns[0].feedback == "navy with long sleeves"


def test_refine_from_a_result_then_search_again_builds_a_two_step_chain(app_env):
    at = search(uploaded(new_app().run(), garment_jpeg()), "red")
    first = result_buttons(at)[2]
    chosen_id = first.key.removeprefix("refine_")
    at = first.click().run()
    assert not at.exception
    history = at.session_state["history"]
    assert history.reference.key == chosen_id and history.reference.kind == "catalog"
    assert at.text_input(key="feedback").value == ""  # ready for the next change
    assert result_buttons(at) == []  # the old results are no longer on display
    at = search(at, "with long sleeves")
    history = at.session_state["history"]
    assert [t.feedback for t in history.turns] == ["red", "with long sleeves"]
    assert history.turns[0].chosen.item_id == chosen_id
    assert chosen_id not in [b.key.removeprefix("refine_") for b in result_buttons(at)]
    page = texts(at)
    assert "Step 1." in page and "Step 2." in page and '"with long sleeves"' in page


def test_go_back_to_step_one_restores_its_feedback_and_results(app_env):
    at = search(uploaded(new_app().run(), garment_jpeg()), "red")
    step1_ids = [b.key for b in result_buttons(at)]
    at = result_buttons(at)[0].click().run()
    at = search(at, "shorter")
    at = at.button(key="back_0").click().run()
    assert not at.exception
    history = at.session_state["history"]
    assert len(history.turns) == 1 and history.turns[0].chosen is None
    assert '12 results for "red"' in texts(at)
    assert at.text_input(key="feedback").value == ""  # the box is for what comes next
    assert [b.key for b in result_buttons(at)] == step1_ids


def test_search_by_pressing_enter_is_a_form_submit(app_env):
    # AppTest cannot press Enter; the feedback box must be inside the form whose submit button
    # is Search, which is what makes Enter submit in the browser (checked in test_app_e2e).
    at = uploaded(new_app().run(), garment_jpeg())
    assert at.text_input(key="feedback").form_id == at.button(key="search").form_id != ""


# File names are shown as text: Markdown-escaped in the message source (app.markup.plain).
@pytest.mark.parametrize("name, data, expected", [
    ("broken.jpg", b"\xff\xd8\xff\xe0 definitely not a jpeg", "broken\\.jpg** cannot be used"),
    ("empty.png", b"", "empty\\.png** cannot be used"),
    ("notes.jpg", b"hello, I am a text file\n" * 20, "notes\\.jpg** cannot be used"),
])
def test_bad_upload_gets_a_message_and_the_session_keeps_working(app_env, name, data, expected):
    at = search(uploaded(new_app().run(), garment_jpeg()), "red")
    at = uploaded(at, data, name)
    assert not at.exception
    assert any(expected in e.value for e in at.error)
    history = at.session_state["history"]
    assert history.reference.label == "shirt.jpg" and len(history.turns) == 1  # kept
    at = search(at, "blue")  # still searchable
    assert len(result_buttons(at)) == 12 and not at.exception


def test_upload_over_the_size_limit_is_refused_with_the_limit(app_env, monkeypatch):
    monkeypatch.setenv("APP_MAX_UPLOAD_MB", "0.001")  # about 1 KB
    at = uploaded(new_app().run(), garment_jpeg(), "huge.jpg")
    assert not at.exception
    assert any("huge\\.jpg" in e.value and "the limit is" in e.value for e in at.error)
    assert at.session_state["history"].reference is None


def test_empty_feedback_searches_by_image_and_says_so(app_env):
    at = search(uploaded(new_app().run(), garment_jpeg()), "   ")
    assert any("image alone" in i.value for i in at.info)
    assert len(result_buttons(at)) == 12


def test_the_page_says_how_it_read_the_words(app_env):
    at = search(uploaded(new_app().run(), garment_jpeg()), "hi, in red please, thanks!")
    assert any('Read as "in red"' in i.value for i in at.info)


def test_very_long_feedback_is_truncated_and_says_so(app_env):
    at = search(uploaded(new_app().run(), garment_jpeg()), "make it darker and " * 60)
    assert any("only the first" in i.value and "300" in i.value for i in at.info)
    assert len(at.session_state["history"].turns[0].feedback) <= 300


def test_top_k_and_category_filter_apply_to_the_results_on_display(app_env):
    at = search(uploaded(new_app().run(), garment_jpeg()), "red")
    at.sidebar.slider(key="top_k").set_value(5)
    at.sidebar.selectbox(key="category").set_value("dress")
    at = at.run()
    turn = at.session_state["history"].open_turn
    assert len(result_buttons(at)) == 5 and turn.k == 5
    assert {r.category for r in turn.results} == {"dress"} and turn.feedback == "red"


def test_random_catalog_item_becomes_the_reference(app_env):
    at = new_app().run()
    at.sidebar.selectbox(key="category").set_value("toptee")
    at = at.run()
    at = at.button(key="random").click().run()
    ref = at.session_state["history"].reference
    assert ref.kind == "catalog" and ref.key.startswith("toptee-")
    at = search(at, "")
    assert ref.key not in [b.key.removeprefix("refine_") for b in result_buttons(at)]


def test_empty_catalog_says_how_to_build_it(app_env, monkeypatch, mongo_collection):
    monkeypatch.setenv("DB_NAME", mongo_collection.database.name)
    monkeypatch.setenv("COLLECTION_NAME", mongo_collection.name)
    at = new_app().run()
    assert not at.exception
    msg = at.error[0].value
    assert "is empty" in msg and "python -m indexer build" in msg and "run_app.sh" in msg
    assert at.button(key="retry")


@pytest.mark.slow
def test_database_down_says_which_uri_and_how_to_start_it(app_env, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        uri = f"mongodb://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("MONGO_URI", uri)
    at = new_app().run()
    assert not at.exception
    msg = at.error[0].value
    assert uri in msg and "python -m indexer.db start" in msg


def test_checkpoint_that_does_not_match_the_vectors_is_explained(app_env, monkeypatch, tmp_path):
    build_retriever(ModelConfig.tiny(), seed=7).save(tmp_path / "other")
    monkeypatch.setenv("CHECKPOINT", str(tmp_path / "other"))
    at = new_app().run()
    assert not at.exception
    msg = at.error[0].value
    assert "does not match the stored vectors" in msg and "--checkpoint" in msg


def test_missing_checkpoint_is_explained(app_env, monkeypatch, tmp_path):
    monkeypatch.setenv("CHECKPOINT", str(tmp_path / "nowhere"))
    at = new_app().run()
    assert not at.exception
    assert "does not exist" in at.error[0].value and "--checkpoint" in at.error[0].value


@pytest.mark.slow
def test_database_going_down_mid_session_keeps_the_session(monkeypatch, tmp_path, tiny_checkpoint,
                                                            tiny_retriever):
    """Stop the server under a live session: the page says so; restarting it resumes."""
    with database_session(monkeypatch, tmp_path, tiny_checkpoint, tiny_retriever,
                          APP_DB_WAIT_S="0") as server:
        at = search(uploaded(new_app().run(), garment_jpeg()), "red")
        assert len(result_buttons(at)) == 12

        server.stop()
        at = at.run()  # the loaded index keeps the page (and the results on display) up
        assert not at.exception and not at.error
        assert len(result_buttons(at)) == 12
        at = search(at, "blue")  # fetching documents needs the database: one clear message
        assert not at.exception and len(at.error) == 1
        msg = at.error[0].value
        assert "reconnecting" in msg and "Try again" in msg
        assert server.uri in msg and "indexer.db start" in msg
        assert at.text_input(key="feedback").value == "blue"  # the words wait for a retry

        server.start()
        at = search(at, "blue")
        assert not at.exception and not at.error
        history = at.session_state["history"]
        assert [t.feedback for t in history.turns] == ["red", "blue"]  # the session survived
        assert len(result_buttons(at)) == 12


@pytest.mark.slow
def test_actions_during_a_database_restart_wait_and_answer(monkeypatch, tmp_path, tiny_checkpoint,
                                                           tiny_retriever):
    """The database restarts while a shopper searches, then while they refine: no error, the
    answer comes once it is back (the page said "reconnecting" meanwhile)."""
    with database_session(monkeypatch, tmp_path, tiny_checkpoint, tiny_retriever,
                          APP_DB_WAIT_S="60") as server:
        at = search(uploaded(new_app().run(), garment_jpeg()), "red")
        # down longer than pymongo's own 5 s server selection, which rides out shorter ones
        with down_for(server, 7.0):
            at = search(at, "blue")
        assert not at.exception and not at.error
        assert not at.warning  # the "reconnecting" placeholder is gone with the answer
        assert at.session_state["history"].open_turn.feedback == "blue"
        assert len(result_buttons(at)) == 12

        with down_for(server, 7.0):  # a "Refine from this" click (a callback) waits the same way
            at = result_buttons(at)[0].click().run()
        assert not at.exception and not at.error
        history = at.session_state["history"]
        assert history.reference.kind == "catalog" and history.turns[-1].chosen is not None


def test_model_and_index_load_once_per_process_not_per_run_or_session(app_env, monkeypatch):
    import streamlit as st

    from app import resources

    st.cache_resource.clear()  # whatever earlier tests loaded
    calls = {"model": 0, "index": 0}
    real_model, real_index = resources.load_model, resources.open_index

    def counting_model(*args, **kwargs):
        calls["model"] += 1
        return real_model(*args, **kwargs)

    def counting_index(*args, **kwargs):
        calls["index"] += 1
        return real_index(*args, **kwargs)

    monkeypatch.setattr(resources, "load_model", counting_model)
    monkeypatch.setattr(resources, "open_index", counting_index)
    for _ in range(2):  # two shopper sessions, several runs each
        at = search(uploaded(new_app().run(), garment_jpeg()), "red")
        at = search(at, "blue")
        assert len(result_buttons(at)) == 12
    assert calls == {"model": 1, "index": 1}


def test_the_page_mends_typos_knowing_the_catalogs_words(app_env, monkeypatch):
    import streamlit as st

    from app import resources
    from model.spelling import SpellingCorrector

    st.cache_resource.clear()
    real_model, loaded = resources.load_model, []

    def with_mender(*args, **kwargs):  # the tiny checkpoint lists no caption words
        retriever = real_model(*args, **kwargs)
        retriever.spelling = SpellingCorrector({"black": 3}, frozenset(), {"navy": 5})
        loaded.append(retriever)
        return retriever

    monkeypatch.setattr(resources, "load_model", with_mender)
    try:
        at = search(uploaded(new_app().run(), garment_jpeg()), "red")
        assert not at.exception and len(result_buttons(at)) == 12
        (retriever,) = loaded
        assert {"shirt", "dress"} <= retriever.spelling.catalog  # the indexed catalog's words
        assert retriever.mend(["a shrit"]) == ["a shirt"]
    finally:
        st.cache_resource.clear()  # no later test gets this retriever


# ---- the conversation: chips, clicks, items seen, undo ---------------------------------------
def result_ids(at: AppTest) -> list[str]:
    return [b.key.removeprefix("refine_") for b in result_buttons(at)]


def chip_buttons(at: AppTest) -> list:
    return [b for b in at.button if b.key and b.key.startswith("chip_")]


def two_turns(at: AppTest) -> AppTest:
    """Upload, "is red", pick the third result, "has long sleeves"."""
    at = search(uploaded(at, garment_jpeg()), "is red")
    at = result_buttons(at)[2].click().run()
    return search(at, "has long sleeves")


def test_a_chain_encodes_each_reference_once(app_env, monkeypatch):
    from model.retriever import Retriever

    encoded = []
    targets = Retriever.encode_targets
    monkeypatch.setattr(Retriever, "encode_targets", lambda self, images, *a, **k: (
        encoded.append(len(images)) or targets(self, images, *a, **k)))
    at = search(two_turns(new_app().run()), "shorter")
    assert not at.exception and len(at.session_state["history"].turns) == 3
    # the earlier references' target vectors came from the turns that had them as current
    assert encoded == []


def test_chips_show_what_is_remembered_and_removing_one_searches_without_it(app_env):
    at = two_turns(new_app().run())
    labels = [b.label for b in chip_buttons(at)]
    assert any("red" in label for label in labels)
    assert any("long sleeves" in label for label in labels)
    red = next(b for b in chip_buttons(at) if "red" in b.label)
    before = [r.score for r in at.session_state["history"].open_turn.results]
    at = red.click().run()
    assert not at.exception
    history = at.session_state["history"]
    assert history.turns[0].said == "" and history.turns[0].feedback == "is red"
    assert not any("red" in b.label for b in chip_buttons(at))
    assert len(history.turns) == 2 and history.open_turn is history.turns[1]
    after = [r.score for r in history.open_turn.results]
    assert after != pytest.approx(before, abs=1e-4)  # searched again without it
    assert not history.is_stale(12, None, False)


def test_more_like_this_reranks_without_typing_and_less_like_this_drops_the_item(app_env):
    at = search(uploaded(new_app().run(), garment_jpeg()), "navy")
    ids = result_ids(at)
    liked, disliked = ids[7], ids[0]
    score = {r.item_id: r.score for r in at.session_state["history"].open_turn.results}
    at = at.button(key=f"like_{liked}").click().run()
    assert not at.exception
    turn = at.session_state["history"].open_turn
    assert turn.likes == (liked,) and turn.feedback == "navy"
    assert len(at.session_state["history"].turns) == 1  # a click is not a new turn
    # the query moved towards the liked item (app.reranking's weight decides how far)
    assert {r.item_id: r.score for r in turn.results}[liked] > score[liked]
    assert result_ids(at).index(liked) <= 7
    assert any(b.label.startswith("More like") for b in chip_buttons(at))
    at = at.button(key=f"dislike_{disliked}").click().run()
    assert disliked not in result_ids(at)
    assert at.session_state["history"].open_turn.dislikes == (disliked,)
    at = at.button(key=f"like_{liked}").click().run()  # clicked again: taken back
    assert at.session_state["history"].open_turn.likes == ()


def test_items_seen_in_earlier_steps_rank_lower_until_the_switch_shows_them(app_env):
    at = uploaded(new_app().run(), garment_jpeg())
    at.sidebar.slider(key="top_k").set_value(5)
    at = search(at.run(), "navy")
    first = set(result_ids(at))
    at = search(at, "with long sleeves")  # no pick: a second turn from the same reference
    assert first.isdisjoint(result_ids(at))
    at.sidebar.toggle(key="show_seen").set_value(True)
    at = at.run()
    turn = at.session_state["history"].open_turn
    assert turn.show_seen and len(at.session_state["history"].turns) == 2
    seen_now = {r.item_id for r in turn.results if r.seen}
    assert seen_now and seen_now <= first
    assert "seen before" in texts(at)


def test_undo_last_turn_shows_the_step_before(app_env):
    at = two_turns(new_app().run())
    step1 = at.session_state["history"].turns[0]
    at = at.button(key="undo").click().run()
    assert not at.exception
    history = at.session_state["history"]
    assert len(history.turns) == 1 and history.open_turn.feedback == "is red"
    assert result_ids(at) == [r.item_id for r in step1.results]
    at = at.button(key="undo").click().run()
    assert at.session_state["history"].turns == [] and result_buttons(at) == []
    assert at.session_state["history"].reference.kind == "upload"
