"""Project settings: one frozen dataclass loaded on demand from the environment and ``.env``.

Shared by the indexer, the app and the benchmarks (repository root, checkpoint, catalog folder,
database), so it lives beside them rather than inside any one of them.

Why a function and not module-level constants: tests, the CLI and the app each need to load
settings with different environments, and nothing should read ``os.environ`` as a side effect
of an import. Precedence: process environment, then ``.env`` (python-dotenv), then defaults
that work with no ``.env`` at all (the embedded database under ``data/``). The only
module-level values are fixed names (defaults, paths such as FEATURE_CACHE_DIR), never read
from the environment.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

REPO_ROOT = Path(__file__).resolve().parent
DEFAULT_EMBEDDED_HOST = "127.0.0.1"
DEFAULT_EMBEDDED_PORT = 27017
DEFAULT_DB_NAME = "fashionvlp"
DEFAULT_COLLECTION_NAME = "catalog"
# Paths named once (relative to the repository root, or to the working directory of a command
# run from it): the backbone-feature cache of training, evaluation and benchmarks, and the
# committed checkpoint every entry point uses when none is named.
FEATURE_CACHE_DIR = "data/feature_cache"
DEFAULT_CHECKPOINT = "checkpoints/demo"
ENV_FILE = REPO_ROOT / ".env"  # the .env read when a caller names none

# Every variable the project reads, with its meaning (used by docs and error messages). Each is
# read through `read_environment` / `setting`, so the process environment and .env agree.
VARIABLES: dict[str, str] = {
    "MONGO_URI": "MongoDB connection string; unset = embedded SecantusDB on 127.0.0.1",
    "DB_NAME": "database name",
    "COLLECTION_NAME": "catalog collection name (builds are recorded in <name>_builds)",
    "DATA_DIR": "project data folder (embedded database, caches)",
    "CHECKPOINT": "retriever checkpoint directory used by the indexer and the app",
    "CATALOG_DIR": "catalog folder (images + metadata.csv) indexed by default",
    "EMBEDDED_DB_PORT": "port of the embedded SecantusDB server",
    "DEVICE": "where the indexer and the app run the model: auto (CUDA when present), cpu, cuda",
    "INDEX_SNAPSHOT_DIR": "folder of search-index snapshots, shareable by app replicas "
                          "(default DATA_DIR/index_snapshots; 'off' disables them)",
    "ENCODER_ENGINE": "inference engine of load_retriever (model.engines): auto (ONNX Runtime "
                      "on the CPU, eager PyTorch on CUDA), eager, onnx, onnx-int8",
    "APP_PORT": "port of the Streamlit app (run_app.sh; --port wins), default 8501",
    "APP_ADDRESS": "interface the app listens on (run_app.sh), default 127.0.0.1",
    "APP_TOP_K": "default number of results on the page (1-48), default 12",
    "APP_MAX_UPLOAD_MB": "uploads above this are refused before decoding, default 10",
    "APP_TORCH_THREADS": "torch threads per app process, default 1",
    "APP_DB_WAIT_S": "seconds an app action waits for a restarting database, default 15",
    "SESSION_TTL_DAYS": "days a saved app session (the ?session= link) lives after its last "
                        "change, default 7",
    "SESSION_MAX_TURNS": "most turns one app session keeps, default 30",
    "SESSION_MAX_BYTES": "largest saved app session in bytes (uploaded photo included), "
                         "default 12582912 (12 MiB; MongoDB documents stop at 16 MiB)",
}
DEVICES = ("auto", "cpu", "cuda")

_DB_NAME_FORBIDDEN = re.compile(r'[/\\. "$*<>:|?\x00]')


class SettingsError(ValueError):
    """A configuration value (environment or .env) is malformed; the message names it."""


@dataclass(frozen=True)
class Settings:
    """Resolved configuration; paths are absolute."""

    mongo_uri: str | None  # None: use the embedded server at embedded_uri
    db_name: str = DEFAULT_DB_NAME
    collection_name: str = DEFAULT_COLLECTION_NAME
    data_dir: Path = REPO_ROOT / "data"
    checkpoint: Path = REPO_ROOT / DEFAULT_CHECKPOINT
    catalog_dir: Path = REPO_ROOT / "data" / "demo_catalog"
    embedded_port: int = DEFAULT_EMBEDDED_PORT
    embedded_host: str = DEFAULT_EMBEDDED_HOST
    device: str = "auto"
    index_snapshot_dir: Path | None = REPO_ROOT / "data" / "index_snapshots"  # None: off

    @property
    def embedded_uri(self) -> str:
        """URI of the embedded server (what ``mongo_uri`` means when it is unset)."""
        return f"mongodb://{self.embedded_host}:{self.embedded_port}"

    @property
    def effective_uri(self) -> str:
        """The URI clients connect to: MONGO_URI when set, else the embedded server."""
        return self.mongo_uri or self.embedded_uri

    @property
    def uses_default_local_address(self) -> bool:
        """True when MONGO_URI is unset or names the embedded server's own address.

        Only then may the project start SecantusDB itself; any other URI is a real MongoDB
        that we connect to and never try to manage.
        """
        if self.mongo_uri is None:
            return True
        uri = self.mongo_uri.rstrip("/")
        port = self.embedded_port
        return uri in {f"mongodb://127.0.0.1:{port}", f"mongodb://localhost:{port}"} or (
            port == DEFAULT_EMBEDDED_PORT and uri in {"mongodb://127.0.0.1", "mongodb://localhost"}
        )

    @property
    def builds_collection_name(self) -> str:
        return f"{self.collection_name}_builds"

    @property
    def embedded_dir(self) -> Path:
        """Folder holding the embedded server's storage, PID file and log."""
        return self.data_dir / "secantus"


def load_settings(
    env: Mapping[str, str] | None = None, env_file: str | Path | None = None
) -> Settings:
    """Load settings: ``env`` (default ``os.environ``) wins over ``env_file`` (default ``.env``
    at the repo root, ignored when absent). Empty values count as unset.

    Raises SettingsError naming the variable when a value is malformed.
    """
    raw = read_environment(env, env_file)
    return Settings(
        mongo_uri=_mongo_uri(raw.get("MONGO_URI")),
        db_name=_db_name(raw.get("DB_NAME", DEFAULT_DB_NAME)),
        collection_name=_collection_name(raw.get("COLLECTION_NAME", DEFAULT_COLLECTION_NAME)),
        data_dir=_path("DATA_DIR", raw.get("DATA_DIR"), REPO_ROOT / "data"),
        checkpoint=_path("CHECKPOINT", raw.get("CHECKPOINT"), REPO_ROOT / DEFAULT_CHECKPOINT),
        catalog_dir=_path(
            "CATALOG_DIR", raw.get("CATALOG_DIR"), REPO_ROOT / "data" / "demo_catalog"
        ),
        embedded_port=_port(raw.get("EMBEDDED_DB_PORT")),
        device=_device(raw.get("DEVICE", "auto")),
        index_snapshot_dir=_snapshot_dir(raw.get("INDEX_SNAPSHOT_DIR"), raw.get("DATA_DIR")),
    )


def read_environment(
    env: Mapping[str, str] | None = None, env_file: str | Path | None = None
) -> dict[str, str]:
    """Every declared variable (VARIABLES) that is set: ``env`` (default ``os.environ``) over
    ``env_file`` (default ``ENV_FILE``, ignored when absent); values stripped, empty = unset.

    Why one reader: a variable read from ``os.environ`` alone silently ignores ``.env``
    (ENCODER_ENGINE once did), so every part of the project reads through this.
    """
    env = os.environ if env is None else env
    path = Path(env_file) if env_file is not None else ENV_FILE
    file_values = {k: v for k, v in dotenv_values(path).items() if v is not None}
    merged = {**file_values, **{k: v for k, v in env.items() if k in VARIABLES}}
    return {k: v.strip() for k, v in merged.items() if k in VARIABLES and v.strip() != ""}


def setting(name: str, env: Mapping[str, str] | None = None,
            env_file: str | Path | None = None) -> str | None:
    """One declared variable's value (environment over .env), or None when unset."""
    if name not in VARIABLES:
        raise KeyError(f"{name} is not declared in project_settings.VARIABLES")
    return read_environment(env, env_file).get(name)


def main(argv: list[str] | None = None) -> None:
    """``python -m project_settings NAME [DEFAULT]``: print one setting (for shell scripts,
    so run_app.sh reads APP_PORT from .env as the Python code does)."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if not 1 <= len(args) <= 2:
        raise SystemExit("usage: python -m project_settings NAME [DEFAULT]")
    value = setting(args[0])
    print(value if value is not None else (args[1] if len(args) == 2 else ""))


def _snapshot_dir(value: str | None, data_dir: str | None) -> Path | None:
    if value is not None and value.lower() == "off":
        return None
    if value is None:
        return _path("DATA_DIR", data_dir, REPO_ROOT / "data") / "index_snapshots"
    return _path("INDEX_SNAPSHOT_DIR", value, REPO_ROOT / "data" / "index_snapshots")


def _device(value: str) -> str:
    if value not in DEVICES and not re.fullmatch(r"cuda:\d+", value):
        raise SettingsError(f"DEVICE={value!r} is not one of {', '.join(DEVICES)} (or cuda:N)")
    return value


def _mongo_uri(value: str | None) -> str | None:
    if value is None:
        return None
    if not value.startswith(("mongodb://", "mongodb+srv://")):
        raise SettingsError(
            f"MONGO_URI must start with mongodb:// or mongodb+srv:// (got {value[:12]!r}...); "
            "unset it to use the embedded database"
        )
    if not value.split("://", 1)[1].strip("/"):
        raise SettingsError("MONGO_URI has no host; example: mongodb://127.0.0.1:27017")
    return value


def _db_name(value: str) -> str:
    if len(value) > 63 or _DB_NAME_FORBIDDEN.search(value):
        raise SettingsError(
            f"DB_NAME {value!r} is not a valid MongoDB database name "
            '(at most 63 characters, none of / \\ . " $ * < > : | ? or spaces)'
        )
    return value


def _collection_name(value: str) -> str:
    if "$" in value or "\x00" in value or value.startswith("system.") or len(value) > 200:
        raise SettingsError(
            f"COLLECTION_NAME {value!r} is not a valid MongoDB collection name "
            "(no '$', must not start with 'system.')"
        )
    return value


def _port(value: str | None) -> int:
    if value is None:
        return DEFAULT_EMBEDDED_PORT
    try:
        port = int(value)
    except ValueError:
        raise SettingsError(f"EMBEDDED_DB_PORT must be an integer port, got {value!r}") from None
    if not 1 <= port <= 65535:
        raise SettingsError(f"EMBEDDED_DB_PORT must be between 1 and 65535, got {port}")
    return port


def _path(name: str, value: str | None, default: Path) -> Path:
    if value is None:
        return default
    if "\x00" in value:
        raise SettingsError(f"{name} contains a NUL byte")
    path = Path(value).expanduser()
    return path if path.is_absolute() else (REPO_ROOT / path).resolve()


if __name__ == "__main__":
    main()
