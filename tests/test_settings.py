"""Settings: defaults without .env, .env values, environment precedence, clear errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from project_settings import REPO_ROOT, Settings, SettingsError, load_settings


def load(env: dict[str, str], tmp_path: Path, dotenv: str | None = None) -> Settings:
    env_file = tmp_path / ".env"
    if dotenv is not None:
        env_file.write_text(dotenv)
    return load_settings(env=env, env_file=env_file)


def test_defaults_work_without_any_env_file(tmp_path):
    s = load({}, tmp_path)
    assert s.mongo_uri is None
    assert s.effective_uri == "mongodb://127.0.0.1:27017"
    assert s.uses_default_local_address
    assert (s.db_name, s.collection_name) == ("fashionvlp", "catalog")
    assert s.data_dir == REPO_ROOT / "data"
    assert s.checkpoint == REPO_ROOT / "checkpoints" / "demo"
    assert s.catalog_dir == REPO_ROOT / "data" / "demo_catalog"
    assert s.builds_collection_name == "catalog_builds"


def test_dotenv_values_are_used(tmp_path):
    s = load({}, tmp_path, "MONGO_URI=mongodb://db.example:27017\nDB_NAME=shop\n"
                           "COLLECTION_NAME=items\nCHECKPOINT=/ckpt/x\n")
    assert s.mongo_uri == "mongodb://db.example:27017"
    assert not s.uses_default_local_address
    assert (s.db_name, s.collection_name, s.checkpoint) == ("shop", "items", Path("/ckpt/x"))


def test_environment_wins_over_dotenv(tmp_path):
    s = load({"DB_NAME": "from_env"}, tmp_path, "DB_NAME=from_file\nCOLLECTION_NAME=c_file\n")
    assert s.db_name == "from_env"
    assert s.collection_name == "c_file"


def test_empty_value_counts_as_unset(tmp_path):
    # `MONGO_URI= python -m indexer ...` forces the embedded database despite .env
    assert load({"MONGO_URI": ""}, tmp_path, "MONGO_URI=mongodb://elsewhere:1\n").mongo_uri is None
    assert load({}, tmp_path, "MONGO_URI=\n").mongo_uri is None


def test_relative_paths_resolve_under_repo_root(tmp_path):
    s = load({"DATA_DIR": "mydata", "CATALOG_DIR": "mydata/cat"}, tmp_path)
    assert s.data_dir == REPO_ROOT / "mydata"
    assert s.catalog_dir == REPO_ROOT / "mydata" / "cat"
    assert s.embedded_dir == REPO_ROOT / "mydata" / "secantus"


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("MONGO_URI", "localhost:27017"),
        ("MONGO_URI", "mongodb://"),
        ("DB_NAME", "my.db"),
        ("DB_NAME", "has space"),
        ("COLLECTION_NAME", "system.users"),
        ("COLLECTION_NAME", "a$b"),
        ("EMBEDDED_DB_PORT", "abc"),
        ("EMBEDDED_DB_PORT", "70000"),
        ("DEVICE", "tpu"),
        ("DEVICE", "cuda:x"),
    ],
)
def test_malformed_values_raise_an_error_naming_the_variable(tmp_path, var, value):
    with pytest.raises(SettingsError, match=var):
        load({var: value}, tmp_path)


def test_device_defaults_to_auto_and_accepts_a_gpu_index(tmp_path):
    assert load({}, tmp_path).device == "auto"
    assert load({"DEVICE": "cuda:1"}, tmp_path).device == "cuda:1"


def test_malformed_value_in_dotenv_is_reported_too(tmp_path):
    with pytest.raises(SettingsError, match="EMBEDDED_DB_PORT"):
        load({}, tmp_path, "EMBEDDED_DB_PORT=twenty\n")


@pytest.mark.parametrize(
    ("uri", "port", "local"),
    [
        ("mongodb://127.0.0.1:27017", 27017, True),
        ("mongodb://localhost:27017/", 27017, True),
        ("mongodb://localhost", 27017, True),
        ("mongodb://127.0.0.1:27018", 27017, False),
        ("mongodb://127.0.0.1:27018", 27018, True),
        ("mongodb+srv://u:p@cluster.example.net", 27017, False),
    ],
)
def test_only_the_default_local_address_may_start_the_embedded_server(tmp_path, uri, port, local):
    s = load({"MONGO_URI": uri, "EMBEDDED_DB_PORT": str(port)}, tmp_path)
    assert s.uses_default_local_address is local


def test_settings_are_frozen(tmp_path):
    s = load({}, tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.db_name = "other"  # type: ignore[misc]
