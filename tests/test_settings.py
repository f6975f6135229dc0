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


def test_every_variable_of_env_example_is_declared():
    """.env.example documents exactly the declared variables (VARIABLES), nothing else."""
    import re

    from project_settings import VARIABLES

    text = (REPO_ROOT / ".env.example").read_text()
    named = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))
    assert named == set(VARIABLES)


def test_no_product_code_reads_the_process_environment_directly():
    """A variable read from os.environ alone ignores .env (ENCODER_ENGINE once did): every
    read goes through project_settings (read_environment / setting / load_settings)."""
    import re

    reads = re.compile(r"os\.environ(?!\s*,)|getenv\(")
    offenders = []
    for package in ("model", "indexer", "app", "dataprep", "imaging"):
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if reads.search(line) and "{**os.environ" not in line:
                    offenders.append(f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_setting_reads_dotenv_and_refuses_undeclared_names(tmp_path):
    from project_settings import setting

    env_file = tmp_path / ".env"
    env_file.write_text("ENCODER_ENGINE=eager\nAPP_TOP_K=7\n")
    assert setting("ENCODER_ENGINE", {}, env_file) == "eager"
    assert setting("ENCODER_ENGINE", {"ENCODER_ENGINE": "onnx"}, env_file) == "onnx"
    assert setting("APP_PORT", {}, env_file) is None
    with pytest.raises(KeyError, match="NOT_A_SETTING"):
        setting("NOT_A_SETTING", {}, env_file)


def test_encoder_engine_from_dotenv_takes_effect(tiny_checkpoint, tmp_path, monkeypatch):
    """ENCODER_ENGINE in .env picks load_retriever's engine, as it does from the environment
    (it used to be read from os.environ alone, so .env was silently ignored)."""
    import project_settings
    from model import load_retriever

    monkeypatch.delenv("ENCODER_ENGINE", raising=False)
    env_file = tmp_path / ".env"
    monkeypatch.setattr(project_settings, "ENV_FILE", env_file)
    env_file.write_text("ENCODER_ENGINE=eager\n")
    assert load_retriever(tiny_checkpoint).engine.name == "eager"
    env_file.write_text("ENCODER_ENGINE=warp-drive\n")
    with pytest.raises(ValueError, match="ENCODER_ENGINE"):
        load_retriever(tiny_checkpoint)
    monkeypatch.setenv("ENCODER_ENGINE", "eager")  # the environment wins over .env
    assert load_retriever(tiny_checkpoint).engine.name == "eager"


def test_app_settings_from_dotenv_take_effect(tmp_path, monkeypatch):
    import project_settings
    from app.settings import load_app_config

    env_file = tmp_path / ".env"
    env_file.write_text("APP_TOP_K=7\nAPP_TORCH_THREADS=3\n")
    monkeypatch.setattr(project_settings, "ENV_FILE", env_file)
    config = load_app_config({"APP_TORCH_THREADS": "2"})
    assert (config.default_k, config.torch_threads) == (7, 2)


def test_shell_scripts_read_settings_through_project_settings():
    """run_app.sh asks `python -m project_settings NAME DEFAULT`: the environment, then .env,
    then the default it names."""
    import os
    import subprocess
    import sys

    from project_settings import setting

    def get(value: str) -> str:
        env = {**os.environ, "APP_PORT": value}
        return subprocess.run([sys.executable, "-m", "project_settings", "APP_PORT", "8501"],
                              cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                              check=True).stdout.strip()

    assert get("9000") == "9000"
    assert get("") == (setting("APP_PORT", {}) or "8501")  # unset: .env, else the default
