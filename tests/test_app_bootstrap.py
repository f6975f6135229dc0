"""What run_app.sh does before serving: its argument handling and app.bootstrap's plan."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from app.bootstrap import BootstrapError, build_commands, main, prepare
from model import ModelConfig, build_retriever
from tests.app_catalog import index_small_catalog, make_small_catalog

REPO = Path(__file__).resolve().parents[1]


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(REPO / "run_app.sh"), *args], capture_output=True,
                          text=True, timeout=30, cwd=REPO)


def test_run_app_help_lists_the_flags_and_environment():
    out = run_script("--help")
    assert out.returncode == 0
    for word in ("--port", "--catalog", "--checkpoint", "APP_PORT", "MONGO_URI"):
        assert word in out.stdout


@pytest.mark.parametrize("args, message", [
    (("--bogus",), "unknown argument --bogus"),
    (("--port", "80a"), "port must be a number"),
])
def test_run_app_rejects_bad_arguments_before_doing_anything(args, message):
    out = run_script(*args)
    assert out.returncode == 2 and message in out.stderr


def test_missing_catalog_is_generated_then_indexed(tmp_path):
    cmds = build_commands(tmp_path / "new", Path("ckpt"), seed=3, per_category=7, python="py")
    assert cmds[0][:3] == ["py", "-m", "dataprep.demo_catalog"]
    assert cmds[0][cmds[0].index("--seed") + 1] == "3"
    assert cmds[0][cmds[0].index("--per-category") + 1] == "7"
    assert cmds[1][:4] == ["py", "-m", "indexer", "build"]
    assert cmds[1][cmds[1].index("--images") + 1] == str(tmp_path / "new")
    assert cmds[1][cmds[1].index("--metadata") + 1] == str(tmp_path / "new" / "metadata.csv")
    assert "ckpt" in cmds[1]


def test_an_existing_catalog_is_only_indexed(tmp_path):
    cat = make_small_catalog(tmp_path / "cat", colours=1)
    cmds = build_commands(cat.root, Path("ckpt"), seed=0, per_category=5, python="py")
    assert len(cmds) == 1 and cmds[0][3] == "build"
    assert cmds[0][cmds[0].index("--images") + 1] == str(cat.root)  # discovery finds the CSV


def _photo(path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 32), "red").save(path)


@pytest.mark.parametrize("layout", [["photo.jpg"], ["dresses/a.jpg", "shirts/2024/b.png"]],
                         ids=["plain folder", "nested folders"])
def test_a_folder_of_photos_without_metadata_is_indexed_as_it_is(tmp_path, layout):
    for name in layout:
        _photo(tmp_path / "mine" / name)
    cmds = build_commands(tmp_path / "mine", Path("ckpt"), seed=0, per_category=5, python="py")
    assert len(cmds) == 1 and "--metadata" not in cmds[0]  # never the demo catalog over it
    assert cmds[0][cmds[0].index("--images") + 1] == str(tmp_path / "mine")


def test_a_metadata_file_of_another_name_is_passed_to_the_indexer(tmp_path):
    _photo(tmp_path / "shop" / "photos" / "a1.jpg")
    (tmp_path / "products_export.csv").write_text("id,title\na1,Red dress\n")
    cmds = build_commands(tmp_path / "shop", Path("ckpt"), seed=0, per_category=5, python="py",
                          metadata=tmp_path / "products_export.csv")
    assert cmds[0][cmds[0].index("--metadata") + 1] == str(tmp_path / "products_export.csv")
    with pytest.raises(BootstrapError, match="is not a file"):
        build_commands(tmp_path / "shop", Path("ckpt"), 0, 5, metadata=tmp_path / "nope.csv")


def test_a_folder_of_other_files_is_not_overwritten_with_the_demo_catalog(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("not a photo")
    with pytest.raises(BootstrapError, match="holds no image files"):
        build_commands(tmp_path / "mine", Path("ckpt"), seed=0, per_category=5)


@pytest.mark.slow
def test_run_app_indexes_a_plain_nested_folder_with_a_renamed_metadata_file(
        monkeypatch, mongo_env, mongo_collection, tmp_path, capsys):
    """The whole bootstrap (real indexer CLI, tiny checkpoint) on a store-shaped folder."""
    retriever = build_retriever(ModelConfig.tiny(), seed=0)
    retriever.save(tmp_path / "ckpt")
    for name in ("tops/t1.jpg", "tops/t2.jpg", "dresses/long/d1.png"):
        _photo(tmp_path / "shop" / name)
    (tmp_path / "items.csv").write_text("\ufeffid,title,category\r\nt1,Plain tee,top\r\n",
                                        encoding="utf-8")
    for key, value in {**mongo_env, "CHECKPOINT": str(tmp_path / "ckpt"),
                       "CATALOG_DIR": str(tmp_path / "shop")}.items():
        monkeypatch.setenv(key, value)
    prepare(seed=0, per_category=5, metadata=tmp_path / "items.csv")
    docs = {d["_id"]: d for d in mongo_collection.find({}, {"title": 1, "category": 1})}
    assert docs == {"t1": {"_id": "t1", "title": "Plain tee", "category": "top"}}
    mongo_collection.drop()
    prepare(seed=0, per_category=5)  # no metadata: every photo, id from the file name
    assert sorted(d["_id"] for d in mongo_collection.find({}, {"_id": 1})) == ["d1", "t1", "t2"]


def test_missing_checkpoint_is_reported_with_the_flag_to_fix_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("CHECKPOINT", str(tmp_path / "nope"))
    assert main([]) == 1
    err = capsys.readouterr().err
    assert "checkpoint not found" in err and "--checkpoint" in err


@pytest.mark.slow
def test_an_indexed_catalog_is_not_rebuilt(monkeypatch, mongo_env, mongo_collection, tmp_path,
                                           capsys):
    retriever = build_retriever(ModelConfig.tiny(), seed=0)
    retriever.save(tmp_path / "ckpt")
    cat = make_small_catalog(tmp_path / "cat", colours=1)
    index_small_catalog(cat, retriever, mongo_collection)
    for key, value in {**mongo_env, "CHECKPOINT": str(tmp_path / "ckpt"),
                       "CATALOG_DIR": str(cat.root)}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("must not build"))
    prepare(seed=0, per_category=5)
    assert "6 items already indexed; skipping the build" in capsys.readouterr().out


@pytest.mark.slow
def test_a_catalog_indexed_with_another_model_is_reindexed(monkeypatch, mongo_env,
                                                          mongo_collection, tmp_path, capsys):
    old, new = (build_retriever(ModelConfig.tiny(), seed=s) for s in (0, 1))
    old.save(tmp_path / "old")
    new.save(tmp_path / "new")
    cat = make_small_catalog(tmp_path / "cat", colours=1)
    index_small_catalog(cat, old, mongo_collection)
    for key, value in {**mongo_env, "CHECKPOINT": str(tmp_path / "new"),
                       "CATALOG_DIR": str(cat.root)}.items():
        monkeypatch.setenv(key, value)
    prepare(seed=0, per_category=5)
    assert "6 items were indexed with another model; re-indexing" in capsys.readouterr().out
    assert mongo_collection.count_documents({"model": new.fingerprint}) == 6
    assert mongo_collection.count_documents({}) == 6


def test_a_folder_that_is_not_a_checkpoint_is_reported(monkeypatch, mongo_env, tmp_path,
                                                        capsys):
    (tmp_path / "ckpt").mkdir()  # exists, but has no config.json
    for key, value in {**mongo_env, "CHECKPOINT": str(tmp_path / "ckpt")}.items():
        monkeypatch.setenv(key, value)
    assert main([]) == 1
    err = capsys.readouterr().err
    assert "is not a checkpoint (config.json with a fingerprint)" in err and "--checkpoint" in err


@pytest.mark.slow
def test_database_down_is_reported_with_its_uri(monkeypatch, tmp_path, capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        uri = f"mongodb://127.0.0.1:{s.getsockname()[1]}"
    (tmp_path / "ckpt").mkdir()
    monkeypatch.setenv("CHECKPOINT", str(tmp_path / "ckpt"))
    monkeypatch.setenv("MONGO_URI", uri)
    assert main([]) == 1
    assert uri in capsys.readouterr().err
