"""The app's query pipeline against a real embedded database and a tiny real model."""

from __future__ import annotations

import socket
import uuid

import numpy as np
import pytest

from app import messages, resources
from app.history import Reference
from app.pipeline import (
    reference_from_document,
    reference_from_upload,
    run_query,
    wait_for_database,
)
from app.settings import load_app_config
from imaging import ImageLoadError
from indexer import (
    CatalogSearch,
    CatalogStore,
    DatabaseUnavailableError,
    EmptyCatalogError,
    FingerprintMismatchError,
)
from model import ModelConfig, build_retriever
from project_settings import SettingsError, load_settings
from tests.app_catalog import draw_garment, index_small_catalog, jpeg_bytes, make_small_catalog


@pytest.fixture(scope="module")
def retriever():
    return build_retriever(ModelConfig.tiny(), seed=0)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    return make_small_catalog(tmp_path_factory.mktemp("catalog"), colours=4)


@pytest.fixture(scope="module")
def indexed(mongo_client, catalog, retriever):
    coll = mongo_client[f"test_app_{uuid.uuid4().hex[:10]}"]["catalog"]
    n = index_small_catalog(catalog, retriever, coll)
    assert n == 24
    yield coll
    mongo_client.drop_database(coll.database.name)


@pytest.fixture(scope="module")
def index(indexed, retriever):
    return CatalogSearch(CatalogStore.from_collection(indexed), retriever.fingerprint)


def upload_ref(colour=(20, 30, 90), category="dress") -> Reference:
    return reference_from_upload(jpeg_bytes(draw_garment(category, colour, False)), "me.jpg")


def test_query_returns_k_ranked_documents_with_metadata(retriever, index):
    turn = run_query(retriever, index, upload_ref(), "in red with long sleeves", k=5)
    assert len(turn.results) == 5
    scores = [r.score for r in turn.results]
    assert scores == sorted(scores, reverse=True)
    first = turn.results[0]
    assert first.title and first.category in {"dress", "shirt", "toptee"}
    assert set(first.attributes) == {"color", "sleeve"}
    assert first.thumbnail[:2] == b"\xff\xd8"  # JPEG
    assert turn.feedback == "in red with long sleeves" and turn.notes == []
    assert turn.latency_ms > 0


def test_scores_are_the_cosine_of_the_query_and_the_stored_vector(retriever, index):
    ref = upload_ref()
    turn = run_query(retriever, index, ref, "shorter", k=3)
    q = retriever.encode_query(ref.image, "shorter")
    vec = index.vectors[list(index.ids).index(turn.results[0].item_id)]
    assert turn.results[0].score == pytest.approx(float(q @ vec), abs=1e-5)


def test_category_filter_only_returns_that_category(retriever, index):
    turn = run_query(retriever, index, upload_ref(), "navy", k=50, category="shirt")
    assert len(turn.results) == 8
    assert {r.category for r in turn.results} == {"shirt"}


def test_empty_feedback_searches_by_image_and_says_so(retriever, index):
    turn = run_query(retriever, index, upload_ref(), "   ", k=3)
    assert turn.feedback == "" and len(turn.results) == 3
    assert any("image alone" in n for n in turn.notes)


def test_long_feedback_is_truncated_and_reported(retriever, index):
    turn = run_query(retriever, index, upload_ref(), "much darker " * 100, k=3)
    assert len(turn.feedback) <= 300
    assert any("characters" in n for n in turn.notes)


def test_words_read_otherwise_are_shown_as_read(retriever, index):
    turn = run_query(retriever, index, upload_ref(), "hi, much darker please, thanks!", k=3)
    assert turn.feedback == "hi, much darker please, thanks!"  # the history keeps the words
    assert any('Read as "much darker"' in n for n in turn.notes)
    plain = run_query(retriever, index, upload_ref(), "much darker", k=3)
    assert not any("Read as" in n for n in plain.notes)


def test_the_references_of_earlier_turns_are_left_out_too(retriever, index):
    from app.history import Steer

    first = run_query(retriever, index, reference_from_document(
        index.fetch(["dress-red-short"])[0]), "in navy", k=4)
    ref2 = reference_from_document(index.fetch([first.results[0].item_id])[0])
    turn = run_query(retriever, index, ref2, "", k=30, steer=Steer(earlier=(first,)))
    ids = [r.item_id for r in turn.results]
    assert len(ids) == 22 and not {"dress-red-short", ref2.key} & set(ids)  # 24 items


def test_a_catalog_reference_is_left_out_of_its_own_results(retriever, index, catalog):
    doc = index.fetch(["dress-red-short"])[0]
    ref = reference_from_document(doc)
    turn = run_query(retriever, index, ref, "", k=23)
    ids = [r.item_id for r in turn.results]
    assert "dress-red-short" not in ids and len(ids) == 23


def test_catalog_reference_uses_the_full_image_when_present(index, catalog):
    ref = reference_from_document(index.fetch(["shirt-navy-long"])[0])
    assert ref.kind == "catalog" and ref.key == "shirt-navy-long"
    assert ref.image.size == (160, 160)  # the file, not the ~128 px thumbnail


def test_catalog_reference_falls_back_to_the_thumbnail_when_the_file_is_gone(index):
    doc = dict(index.fetch(["toptee-green-short"])[0])
    doc["image_path"] = "/nonexistent/toptee-green-short.jpg"
    ref = reference_from_document(doc)
    assert max(ref.image.size) < 160 and ref.thumbnail == bytes(doc["thumbnail"])


def test_catalog_reference_without_image_or_thumbnail_is_a_clear_error():
    with pytest.raises(ImageLoadError, match="re-index"):
        reference_from_document({"_id": "x", "image_path": "/nonexistent.jpg"})


@pytest.mark.parametrize("data, match", [
    (b"", "empty|zero|0 bytes"),
    (b"this is not an image at all", "image"),
    (jpeg_bytes(draw_garment("dress", (1, 2, 3), True))[:300], "truncated|corrupt|incomplete"),
])
def test_bad_uploads_raise_image_load_error(data, match):
    with pytest.raises(ImageLoadError, match=f"(?i){match}"):
        reference_from_upload(data, "bad.jpg")


def test_upload_over_the_byte_limit_is_refused():
    data = jpeg_bytes(draw_garment("dress", (1, 2, 3), True))
    with pytest.raises(ImageLoadError):
        reference_from_upload(data, "big.jpg", max_bytes=len(data) - 1)


def test_open_index_reports_an_empty_catalog(mongo_env, retriever):
    settings = load_settings(mongo_env, env_file="/nonexistent")
    with pytest.raises(EmptyCatalogError):
        resources.open_index(settings, retriever.fingerprint)
    msg = messages.describe_problem(EmptyCatalogError("empty"), settings)
    assert "python -m indexer build" in msg and settings.collection_name in msg


def test_open_index_reports_a_checkpoint_that_does_not_match(indexed, mongo_env):
    env = {**mongo_env, "DB_NAME": indexed.database.name, "COLLECTION_NAME": indexed.name}
    settings = load_settings(env, env_file="/nonexistent")
    other = build_retriever(ModelConfig.tiny(), seed=1)
    with pytest.raises(FingerprintMismatchError) as err:
        resources.open_index(settings, other.fingerprint)
    msg = messages.describe_problem(err.value, settings)
    assert "re-index" in msg.lower() and "--checkpoint" in msg


@pytest.mark.slow
def test_open_index_reports_a_database_that_is_down():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        uri = f"mongodb://127.0.0.1:{s.getsockname()[1]}"
    settings = load_settings({"MONGO_URI": uri}, env_file="/nonexistent")
    with pytest.raises(DatabaseUnavailableError) as err:
        resources.open_index(settings, "abc")
    msg = messages.describe_problem(err.value, settings)
    assert uri in msg and "python -m indexer.db start" in msg


def test_random_item_respects_the_category(index):
    import random

    rng = random.Random(0)
    picks = {index.random_id("toptee", rng) for _ in range(20)}
    assert picks and all(p.startswith("toptee-") for p in picks)
    assert index.random_id("no-such-category", rng) is None


def test_app_config_reads_upload_limit_and_top_k(mongo_env):
    cfg = load_app_config({**mongo_env, "APP_MAX_UPLOAD_MB": "2", "APP_TOP_K": "7",
                           "APP_DB_WAIT_S": "4.5"})
    assert cfg.max_upload_bytes == 2 * 2**20 and cfg.default_k == 7 and cfg.db_wait_s == 4.5
    with pytest.raises(SettingsError, match="APP_TOP_K"):
        load_app_config({**mongo_env, "APP_TOP_K": "many"})


def test_query_vector_is_unit_length(retriever):
    # The pipeline relies on inner product == cosine.
    v = retriever.encode_query(upload_ref().image, "red")
    assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-4)


def test_a_new_build_is_picked_up_without_restarting(mongo_env, mongo_collection, retriever,
                                                     tmp_path):
    first = make_small_catalog(tmp_path / "a", colours=1)  # 6 items
    index_small_catalog(first, retriever, mongo_collection)
    settings = load_settings(mongo_env, env_file="/nonexistent")
    index = resources.open_index(settings, retriever.fingerprint)
    assert index.size == 6 and not index.refresh()  # nothing new: no reload
    bigger = make_small_catalog(tmp_path / "b", colours=3)  # 18 items, 6 of them the same ids
    index_small_catalog(bigger, retriever, mongo_collection)
    assert index.refresh() and index.size == 18
    turn = run_query(retriever, index, upload_ref(), "green", k=18)
    assert len(turn.results) == 18


def test_an_action_waits_through_a_short_database_outage():
    from indexer import DatabaseUnavailableError

    tries, said = [], []

    def fetch():
        tries.append(1)
        if len(tries) < 3:
            raise DatabaseUnavailableError("cannot fetch catalog documents: refused")
        return ["doc"]

    assert wait_for_database(fetch, 5.0, on_wait=lambda: said.append(1), pause_s=0.01) == ["doc"]
    assert len(tries) == 3 and said == [1]  # "reconnecting" said once, not per try


def test_a_longer_outage_ends_with_the_error_and_other_errors_are_not_retried():
    import pymongo.errors

    def down():
        raise pymongo.errors.ServerSelectionTimeoutError("no server")

    with pytest.raises(pymongo.errors.ServerSelectionTimeoutError):
        wait_for_database(down, 0.05, pause_s=0.01)
    tries = []

    def broken():
        tries.append(1)
        raise ValueError("not a database problem")

    with pytest.raises(ValueError):
        wait_for_database(broken, 5.0)
    assert tries == [1]


# ---- a search in a chain: conversation, clicks, items already seen ----------------------------
def position(index, item_id: str) -> int:
    return list(index.ids).index(item_id)


def test_vectors_of_reads_the_stored_vectors_by_id(index):
    ids = ["toptee-red-long", "dress-navy-short", "no-such-item", "shirt-green-long"]
    vectors = index.vectors_of(ids)
    expected = [index.vectors[position(index, i)] for i in ids if i != "no-such-item"]
    np.testing.assert_array_equal(vectors, np.stack(expected))
    assert index.vectors_of([]).shape == (0, index.dim)


def test_a_chain_search_encodes_the_whole_conversation(retriever, index):
    from app.history import Steer

    first = run_query(retriever, index, upload_ref(), "in red", k=4)
    ref2 = reference_from_document(index.fetch([first.results[0].item_id])[0])
    turn = run_query(retriever, index, ref2, "shorter", k=4, steer=Steer(earlier=(first,)))
    q = retriever.encode_conversation([(first.reference.image, "in red"),
                                       (ref2.image, "shorter")])
    vec = index.vectors[position(index, turn.results[0].item_id)]
    assert turn.results[0].score == pytest.approx(float(q @ vec), abs=1e-5)
    alone = retriever.encode_query(ref2.image, "shorter")
    assert not np.allclose(q, alone, atol=1e-4)  # "in red" is remembered


def test_a_click_replaces_the_push_away_from_earlier_references(retriever, index):
    from app.history import Steer
    from app.reranking import rocchio

    first = run_query(retriever, index, upload_ref(), "in red", k=4)
    ref2 = reference_from_document(index.fetch([first.results[0].item_id])[0])
    liked = first.results[1].item_id
    turn = run_query(retriever, index, ref2, "shorter", k=4,
                     steer=Steer(earlier=(first,), likes=(liked,)))
    turns = [(first.reference.image, "in red"), (ref2.image, "shorter")]
    q = rocchio(retriever.encode_conversation(turns, avoid_earlier=False),
                index.vectors_of([liked]))
    for r in turn.results:
        assert r.score == pytest.approx(float(q @ index.vectors[position(index, r.item_id)]),
                                        abs=1e-5)


def test_a_removed_chip_is_left_out_of_the_conversation(retriever, index):
    import dataclasses

    from app.history import Steer

    first = run_query(retriever, index, upload_ref(), "is red with long sleeves", k=4)
    forgot = dataclasses.replace(first, removed=("is red",))
    ref = first.reference
    turn = run_query(retriever, index, ref, "", k=1, steer=Steer(earlier=(forgot,)))
    q = retriever.encode_conversation([(ref.image, "with long sleeves"), (ref.image, "")])
    vec = index.vectors[position(index, turn.results[0].item_id)]
    assert turn.results[0].score == pytest.approx(float(q @ vec), abs=1e-5)


def test_more_like_this_moves_the_query_by_rocchio_over_the_items_vectors(retriever, index):
    from app.history import Steer
    from app.reranking import rocchio

    ref = upload_ref()
    plain_turn = run_query(retriever, index, ref, "navy", k=6)
    liked = plain_turn.results[5].item_id
    turn = run_query(retriever, index, ref, "navy", k=6, steer=Steer(likes=(liked,)))
    q = rocchio(retriever.encode_query(ref.image, "navy"), index.vectors_of([liked]))
    for r in turn.results:
        assert r.score == pytest.approx(float(q @ index.vectors[position(index, r.item_id)]),
                                        abs=1e-5)
    ranks = [r.item_id for r in turn.results]
    # the liked item gains: its cosine with the moved query beats its cosine with the words
    assert liked in ranks and ranks.index(liked) <= 5 and turn.likes == (liked,)
    assert next(r.score for r in turn.results if r.item_id == liked) > plain_turn.results[5].score


def test_less_like_this_sends_the_item_down_with_the_items_seen(retriever, index):
    from app.history import Steer

    ref = upload_ref()
    first = run_query(retriever, index, ref, "navy", k=6)
    disliked = first.results[0].item_id
    again = run_query(retriever, index, ref, "navy", k=6, steer=Steer(dislikes=(disliked,)))
    assert disliked not in [r.item_id for r in again.results]


def test_items_already_seen_rank_below_unseen_ones_unless_the_switch_is_on(retriever, index):
    from app.history import Steer

    ref = upload_ref()
    first = run_query(retriever, index, ref, "navy", k=6)
    seen = {r.item_id for r in first.results}
    second = run_query(retriever, index, ref, "navy", k=6, steer=Steer(earlier=(first,)))
    assert seen.isdisjoint(r.item_id for r in second.results)
    assert not any(r.seen for r in second.results)
    shown_again = run_query(retriever, index, ref, "navy", k=6,
                            steer=Steer(earlier=(first,), show_seen=True))
    q = retriever.encode_conversation([(ref.image, "navy"), (ref.image, "navy")])
    assert [r.item_id for r in shown_again.results] == [i for i, _ in index.search(q, 6)]
    assert {r.item_id for r in shown_again.results if r.seen} == seen & {
        r.item_id for r in shown_again.results}
