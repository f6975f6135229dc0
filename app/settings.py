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
# Saved sessions (app.sessions): a link lives a week after its last change; a session keeps at
# most 30 turns and 12 MiB (an uploaded photo of up to APP_MAX_UPLOAD_MB included; MongoDB
# refuses documents above 16 MiB).
DEFAULT_SESSION_TTL_DAYS = 7.0
DEFAULT_SESSION_MAX_TURNS = 30
DEFAULT_SESSION_MAX_BYTES = 12 * 2**20


@dataclass(frozen=True)
class AppConfig:
    """Settings of the page on top of the project settings (database, checkpoint, catalog)."""

    settings: Settings
    max_upload_bytes: int = int(DEFAULT_MAX_UPLOAD_MB * 1024 * 1024)
    default_k: int = DEFAULT_TOP_K
    torch_threads: int = DEFAULT_TORCH_THREADS
    db_wait_s: float = DEFAULT_DB_WAIT_S
    session_ttl_days: float = DEFAULT_SESSION_TTL_DAYS
    session_max_turns: int = DEFAULT_SESSION_MAX_TURNS
    session_max_bytes: int = DEFAULT_SESSION_MAX_BYTES

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
    """Project settings plus APP_MAX_UPLOAD_MB, APP_TOP_K, APP_TORCH_THREADS, APP_DB_WAIT_S and
    SESSION_TTL_DAYS, SESSION_MAX_TURNS, SESSION_MAX_BYTES, each from the environment or .env
    (project_settings.read_environment).

    Raises SettingsError naming the variable when a value is malformed.
    """
    env = read_environment(env)
    settings = load_settings(env)
    max_mb = _number(env, "APP_MAX_UPLOAD_MB", float, DEFAULT_MAX_UPLOAD_MB, 1e-6, 1024)
    k = _number(env, "APP_TOP_K", int, DEFAULT_TOP_K, 1, MAX_TOP_K)
    threads = _number(env, "APP_TORCH_THREADS", int, DEFAULT_TORCH_THREADS, 1, 256)
    db_wait = _number(env, "APP_DB_WAIT_S", float, DEFAULT_DB_WAIT_S, 0, 300)
    ttl = _number(env, "SESSION_TTL_DAYS", float, DEFAULT_SESSION_TTL_DAYS, 1e-6, 3650)
    turns = _number(env, "SESSION_MAX_TURNS", int, DEFAULT_SESSION_MAX_TURNS, 1, 1000)
    size = _number(env, "SESSION_MAX_BYTES", int, DEFAULT_SESSION_MAX_BYTES, 1024, 16 * 2**20)
    return AppConfig(settings=settings, max_upload_bytes=int(max_mb * 1024 * 1024),
                     default_k=k, torch_threads=threads, db_wait_s=db_wait,
                     session_ttl_days=ttl, session_max_turns=turns, session_max_bytes=size)


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
