"""The app's settings: the project settings plus the page's own (upload limit, top-K, threads)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from project_settings import (
    REPO_ROOT,
    Settings,
    SettingsError,
    load_settings,
    read_environment,
)

DEFAULT_MAX_UPLOAD_MB = 10.0  # an upload above this is refused before decoding
DEFAULT_TOP_K = 12
MAX_TOP_K = 48
DEFAULT_TORCH_THREADS = 1  # see load_model
# A database restart takes seconds: an action waits this long for it (saying so on the page)
# before it gives up with the "try again" message, so the shopper need not retry by hand.
DEFAULT_DB_WAIT_S = 15.0


@dataclass(frozen=True)
class AppConfig:
    """Settings of the page on top of the project settings (database, checkpoint, catalog)."""

    settings: Settings
    max_upload_bytes: int = int(DEFAULT_MAX_UPLOAD_MB * 1024 * 1024)
    default_k: int = DEFAULT_TOP_K
    torch_threads: int = DEFAULT_TORCH_THREADS
    db_wait_s: float = DEFAULT_DB_WAIT_S

    @property
    def checkpoint(self) -> Path:
        return self.settings.checkpoint

    @property
    def image_dirs(self) -> tuple[Path, ...]:
        """Where relative ``image_path`` values of catalog documents are looked up."""
        return (self.settings.catalog_dir, self.settings.catalog_dir / "images", REPO_ROOT)

    @property
    def index_key(self) -> str:
        """Everything that identifies which catalog the cached index holds."""
        s = self.settings
        return f"{s.effective_uri}|{s.db_name}|{s.collection_name}"


def load_app_config(env: Mapping[str, str] | None = None) -> AppConfig:
    """Project settings plus APP_MAX_UPLOAD_MB, APP_TOP_K, APP_TORCH_THREADS, APP_DB_WAIT_S,
    each from the environment or .env (project_settings.read_environment).

    Raises SettingsError naming the variable when a value is malformed.
    """
    env = read_environment(env)
    settings = load_settings(env)
    max_mb = _number(env, "APP_MAX_UPLOAD_MB", float, DEFAULT_MAX_UPLOAD_MB, 1e-6, 1024)
    k = _number(env, "APP_TOP_K", int, DEFAULT_TOP_K, 1, MAX_TOP_K)
    threads = _number(env, "APP_TORCH_THREADS", int, DEFAULT_TORCH_THREADS, 1, 256)
    db_wait = _number(env, "APP_DB_WAIT_S", float, DEFAULT_DB_WAIT_S, 0, 300)
    return AppConfig(settings=settings, max_upload_bytes=int(max_mb * 1024 * 1024),
                     default_k=k, torch_threads=threads, db_wait_s=db_wait)


def _number(env: Mapping[str, str], name: str, kind: type, default, lo, hi):
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name} must be {'an integer' if kind is int else 'a number'}, "
                            f"got {raw!r}") from None
    if not lo <= value <= hi:
        raise SettingsError(f"{name} must be between {lo} and {hi}, got {raw!r}")
    return value
