"""Every kind of hostile input in tests/hostile_corpus.py, fed to the path that meets it in use:

- uploads and feedback through the real page (Streamlit AppTest, tiny real model, real
  embedded database): one clear message, or handled as text, and the session stays usable;
- metadata CSVs and images folders through the indexer (discovery + a real build): read or
  refused with one message, and nothing stored lost or duplicated (each build is run twice);
- ``.env`` values through the settings loader: read, or refused naming the variable.

How the page *renders* catalog and shopper text is checked in a real browser by
tests/test_hostile_render.py.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from app.feedback import normalize_feedback
from app.markup import plain
from app.settings import load_app_config
from indexer import BuildConfig, CatalogSearch, CatalogStore, build_index, discover
from project_settings import SettingsError, load_settings
from tests.app_catalog import (
    draw_garment,
    index_small_catalog,
    jpeg_bytes,
    make_small_catalog,
    result_buttons,
    search,
    uploaded,
)
from tests.hostile_corpus import FEEDBACK, LONG_TITLE, MARKUP_TITLES, uploads

OCTETS = "application/octet-stream"  # what a browser sends for a file it cannot type

SCRIPT = str(Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py")
UPLOADS = uploads()


# ---- the page: uploads and feedback -------------------------------------------------------

@pytest.fixture(scope="module")
def page_env(mongo_client, mongo_server, tiny_retriever, tiny_checkpoint, tmp_path_factory):
    catalog = make_small_catalog(tmp_path_factory.mktemp("catalog"), colours=2)
    coll = mongo_client[f"test_hostile_{uuid.uuid4().hex[:10]}"]["catalog"]
    assert index_small_catalog(catalog, tiny_retriever, coll) == 12
    yield {"MONGO_URI": mongo_server.uri + "/?directConnection=true",
           "DB_NAME": coll.database.name, "COLLECTION_NAME": coll.name,
           "CHECKPOINT": str(tiny_checkpoint), "APP_MAX_UPLOAD_MB": "1", "APP_TOP_K": "6",
           "DATA_DIR": str(tmp_path_factory.mktemp("data"))}
    mongo_client.drop_database(coll.database.name)


@pytest.fixture
def page(monkeypatch, page_env) -> AppTest:
    for key, value in page_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("CATALOG_DIR", raising=False)
    at = AppTest.from_file(SCRIPT, default_timeout=60).run()
    assert not at.exception and not at.error
    return at


@pytest.mark.parametrize("item", UPLOADS, ids=[u.kind for u in UPLOADS])
def test_upload(page, item):
    at = uploaded(page, item.data, item.name, mime=OCTETS)
    assert not at.exception
    history = at.session_state["history"]
    if item.refused_because is None:  # odd but valid: converted and searchable
        assert not at.error
        assert history.reference is not None and history.reference.image.mode == "RGB"
        at = search(at, "in red")
        assert not at.exception and not at.error and len(result_buttons(at)) == 6
        return
    assert len(at.error) == 1, [e.value for e in at.error]
    message = at.error[0].value
    assert item.refused_because in message
    assert plain(item.name) in message  # the file name, shown as text
    assert history.reference is None  # nothing half-started
    at = uploaded(at, jpeg_bytes(draw_garment("shirt", (200, 30, 40), True)), "good.jpg",
                  mime=OCTETS)
    assert not at.error and history.reference is not None  # and the page still works


@pytest.mark.parametrize("item", FEEDBACK, ids=[f.kind for f in FEEDBACK])
def test_feedback(page, item):
    cleaned = normalize_feedback(item.raw)
    if item.model_sees is not None:
        assert cleaned.text == item.model_sees
    else:  # the 100,000-character message: cut, and the shopper is told
        assert cleaned.truncated and len(cleaned.text) <= 300 and cleaned.notes
    if not item.typable:
        return
    at = uploaded(page, jpeg_bytes(draw_garment("dress", (20, 30, 90), False)), "ref.jpg",
                  mime=OCTETS)
    at = search(at, item.raw)
    assert not at.exception and not at.error and len(result_buttons(at)) == 6
    turn = at.session_state["history"].open_turn
    assert turn.feedback == cleaned.text
    caption = next(c.value for c in at.caption if "results for" in c.value)
    if cleaned.text:
        assert plain(cleaned.text, None) in caption  # shown escaped: as text, never markup
    else:
        assert "the image alone" in caption
        assert any("retrieved by the image alone" in i.value for i in at.info)
    if cleaned.truncated:
        assert any("only the first" in i.value for i in at.info)


def test_markup_in_feedback_is_escaped_wherever_the_page_repeats_it(page):
    raw = FEEDBACK[5].raw
    at = uploaded(page, jpeg_bytes(draw_garment("dress", (20, 30, 90), False)), "ref.jpg",
                  mime=OCTETS)
    at = search(at, raw)
    sources = [m.value for m in at.markdown] + [c.value for c in at.caption]
    repeated = [s for s in sources if "bold" in s]
    assert repeated, "the feedback is shown back to the shopper"
    for source in repeated:
        assert "**bold**" not in source and "\\*\\*bold\\*\\*" in source
        assert ":smile:" not in source and "$x^2$" not in source


# ---- the indexer: metadata CSV ------------------------------------------------------------

def photos(folder: Path, ids: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, item_id in enumerate(ids):
        draw_garment("shirt", (30 * i % 255, 80, 160), i % 2 == 0, size=64).save(
            folder / f"{item_id}.jpg", quality=85)


def build_twice(images: Path, encoder, collection, metadata: list[Path] = ()) -> dict:
    """Two builds of the same catalog: the second must store nothing new and lose nothing."""
    store = CatalogStore.from_collection(collection)
    config = BuildConfig(progress=False, workers=0, batch_size=8)
    first = build_index(discover(images, metadata), encoder, store, config)
    before = {d["_id"]: d["sha256"] for d in collection.find({}, {"sha256": 1})}
    second = build_index(discover(images, metadata), encoder, store, config)
    assert second.embedded == 0 and second.skipped == first.embedded
    assert {d["_id"]: d["sha256"] for d in collection.find({}, {"sha256": 1})} == before
    return {d["_id"]: d for d in collection.find({}, {"embedding": 0, "thumbnail": 0})}


def csv_case(tmp_path: Path, data: bytes, ids=("a1", "a2", "a3")) -> tuple[Path, Path]:
    photos(tmp_path / "images", list(ids))
    (tmp_path / "metadata.csv").write_bytes(data)
    return tmp_path / "images", tmp_path / "metadata.csv"


@pytest.mark.parametrize("kind, data, titles", [
    ("Latin-1 (Windows-1252) encoding",
     "id,title\na1,Robe d'été rouge\na2,Chemise à carreaux\na3,Tee\n".encode("cp1252"),
     {"a1": "Robe d'été rouge", "a2": "Chemise à carreaux", "a3": "Tee"}),
    ("UTF-8 with a byte-order mark",
     "\ufeffid,title\na1,One\na2,Two\na3,Three\n".encode(),
     {"a1": "One", "a2": "Two", "a3": "Three"}),
    ("CRLF line endings",
     b"id,category,title\r\na1,dress,One\r\na2,dress,Two\r\na3,shirt,Three\r\n",
     {"a1": "One", "a2": "Two", "a3": "Three"}),
    ("NUL bytes inside cells", b"id,title\na1,Red\x00 dress\na2,Two\na3,Three\n",
     {"a1": "Red dress", "a2": "Two", "a3": "Three"}),
    ("header in other case with spaces", b" ID , Title \na1,One\na2,Two\na3,Three\n",
     {"a1": "One", "a2": "Two", "a3": "Three"}),
    ("rows with too many and too few fields", b"id,title,colour\na1,One,red,EXTRA,MORE\na2\n"
     b"a3,Three,blue\n", {"a1": "One", "a2": "", "a3": "Three"}),
    ("duplicate ids (first row wins)", b"id,title\na1,First\na1,Second\na2,Two\na3,Three\n",
     {"a1": "First", "a2": "Two", "a3": "Three"}),
    ("no title and no category column", b"id\na1\na2\na3\n", {"a1": "", "a2": "", "a3": ""}),
    ("Markdown and HTML in titles (stored as the text it is)",
     ("id,title\n" + "".join(f'a{i},"{t}"\n' for i, t in
                             zip((1, 2, 3), list(MARKUP_TITLES.values())[:3], strict=True))
      ).encode(),
     {f"a{i}": t for i, t in zip((1, 2, 3), list(MARKUP_TITLES.values())[:3], strict=True)}),
])
def test_metadata_csv(tmp_path, tiny_retriever, mongo_collection, kind, data, titles):
    images, metadata = csv_case(tmp_path, data)
    docs = build_twice(images, tiny_retriever, mongo_collection, [metadata])
    assert {i: d["title"] for i, d in docs.items()} == titles


def test_metadata_csv_with_10000_character_fields_is_capped(tmp_path, tiny_retriever,
                                                            mongo_collection):
    data = f'id,title,material\na1,"{LONG_TITLE}",{"cotton " * 1500}\na2,Two,silk\n'.encode()
    images, metadata = csv_case(tmp_path, data, ids=("a1", "a2"))
    docs = build_twice(images, tiny_retriever, mongo_collection, [metadata])
    assert len(docs["a1"]["title"]) == 500 and docs["a1"]["title"].endswith("…")
    assert len(docs["a1"]["attributes"]["material"]) == 200
    assert docs["a2"]["title"] == "Two"


def test_metadata_csv_with_a_stray_quote_is_reported(tmp_path, tiny_retriever,
                                                     mongo_collection, caplog):
    data = b'id,title,colour\na1,"unclosed title,red\na2,Two,blue\na3,Three,green\n'
    images, metadata = csv_case(tmp_path, data)
    with caplog.at_level(logging.WARNING, logger="indexer.catalog"):
        docs = build_twice(images, tiny_retriever, mongo_collection, [metadata])
    assert "stray quote" in caplog.text and "a1" in caplog.text
    assert docs["a1"]["title"] == "unclosed title,red"  # one line, not the swallowed rows


@pytest.mark.parametrize("kind, data, message", [
    ("no id column", b"sku,title\na1,One\n", "needs an 'id' column"),
    ("empty file", b"", "needs an 'id' column"),
])
def test_unusable_metadata_csv_is_refused_with_one_message(tmp_path, kind, data, message):
    images, metadata = csv_case(tmp_path, data)
    with pytest.raises(ValueError, match=message) as err:
        discover(images, [metadata])
    assert str(metadata) in str(err.value)


# ---- the indexer: images folder -----------------------------------------------------------

def test_nested_folders_hidden_and_non_image_files(tmp_path, tiny_retriever, mongo_collection):
    photos(tmp_path / "shop" / "dresses" / "summer", ["d1", "d2"])
    photos(tmp_path / "shop" / "shirts", ["s1"])
    (tmp_path / "shop" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    photos(tmp_path / "shop" / ".thumbs", ["hidden1"])
    (tmp_path / "shop" / "shirts" / "README.txt").write_text("prices in EUR")
    catalog = discover(tmp_path / "shop")
    assert catalog.ignored_files == 1
    docs = build_twice(tmp_path / "shop", tiny_retriever, mongo_collection)
    assert sorted(docs) == ["d1", "d2", "s1"]


def test_the_same_id_in_two_folders_is_stored_once_and_reported(tmp_path, tiny_retriever,
                                                                 mongo_collection):
    photos(tmp_path / "shop" / "a", ["x1", "x2"])
    photos(tmp_path / "shop" / "b", ["x1"])
    Image.open(tmp_path / "shop" / "b" / "x1.jpg").save(tmp_path / "shop" / "b" / "x1.png")
    catalog = discover(tmp_path / "shop")
    assert [p[0] for p in catalog.problems] == ["x1", "x1"]
    assert all("duplicate id" in p[2] for p in catalog.problems)
    assert sorted(build_twice(tmp_path / "shop", tiny_retriever, mongo_collection)) == ["x1",
                                                                                        "x2"]


def test_file_names_with_unicode_spaces_and_markup_become_ids(tmp_path, tiny_retriever,
                                                              mongo_collection):
    names = ["robe été 1", "**bold** [x](y)", "<b>html<b>", "\u202eevil", "emoji 👗"]
    photos(tmp_path / "shop", names)
    docs = build_twice(tmp_path / "shop", tiny_retriever, mongo_collection)
    assert sorted(docs) == sorted(names)


def test_a_symlink_loop_in_the_images_folder_does_not_hang_the_scan(tmp_path, tiny_retriever,
                                                                    mongo_collection):
    photos(tmp_path / "shop" / "sub", ["l1", "l2"])
    (tmp_path / "shop" / "sub" / "loop").symlink_to(tmp_path / "shop")
    (tmp_path / "shop" / "dangling").symlink_to(tmp_path / "nowhere")
    assert sorted(build_twice(tmp_path / "shop", tiny_retriever, mongo_collection)) == ["l1",
                                                                                        "l2"]


def test_zero_byte_and_corrupt_images_are_listed_and_the_rest_is_stored(tmp_path, tiny_retriever,
                                                                        mongo_collection):
    photos(tmp_path / "shop", ["ok1", "ok2"])
    (tmp_path / "shop" / "empty.jpg").write_bytes(b"")
    (tmp_path / "shop" / "noise.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(500))
    assert sorted(build_twice(tmp_path / "shop", tiny_retriever, mongo_collection)) == ["ok1",
                                                                                        "ok2"]
    store = CatalogStore.from_collection(mongo_collection)
    report = build_index(discover(tmp_path / "shop"), tiny_retriever, store,
                         BuildConfig(progress=False, workers=0))
    assert report.failed == 2 and sorted(f["id"] for f in report.failures) == ["empty", "noise"]
    assert all(f["error"] for f in report.failures)
    assert CatalogSearch(store, tiny_retriever.fingerprint).size == 2


# ---- configuration: .env values -----------------------------------------------------------

def test_env_file_with_bom_crlf_quotes_and_comments_is_read(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_bytes(b"\xef\xbb\xbf# shop settings\r\nDB_NAME=shop\r\n"
                         b"COLLECTION_NAME=\"items\"  # quoted, with a comment\r\n"
                         b"EMBEDDED_DB_PORT= 27999 \r\n")
    settings = load_settings({}, env_file=env_file)
    assert (settings.db_name, settings.collection_name, settings.embedded_port) == (
        "shop", "items", 27999)


@pytest.mark.parametrize("line, variable", [
    ("DB_NAME=shop/../admin", "DB_NAME"),
    ("DB_NAME=my shop", "DB_NAME"),
    ("COLLECTION_NAME=$items", "COLLECTION_NAME"),
    ("EMBEDDED_DB_PORT=27017abc", "EMBEDDED_DB_PORT"),
    ("EMBEDDED_DB_PORT=70000", "EMBEDDED_DB_PORT"),
    ("MONGO_URI=http://127.0.0.1:27017", "MONGO_URI"),
    ("DEVICE=gpu; rm -rf /", "DEVICE"),
], ids=["path in DB_NAME", "space in DB_NAME", "dollar collection", "port with letters",
        "port out of range", "not a mongodb URI", "shell in DEVICE"])
def test_malformed_env_values_are_refused_naming_the_variable(tmp_path, line, variable):
    env_file = tmp_path / ".env"
    env_file.write_text(line + "\n")
    with pytest.raises(SettingsError, match=variable):
        load_settings({}, env_file=env_file)


def test_a_nul_byte_in_a_path_setting_is_refused():
    with pytest.raises(SettingsError, match="CHECKPOINT contains a NUL byte"):
        load_settings({"CHECKPOINT": "checkpoints/demo\x00/../../etc"}, env_file="/nonexistent")


@pytest.mark.parametrize("name, value", [("APP_TOP_K", "1e9"), ("APP_TOP_K", "-3"),
                                         ("APP_MAX_UPLOAD_MB", "lots"),
                                         ("APP_DB_WAIT_S", "forever")])
def test_malformed_app_values_are_refused_naming_the_variable(name, value):
    with pytest.raises(SettingsError, match=name):
        load_app_config({name: value})
