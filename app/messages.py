"""What the page says when something goes wrong, and how it words dates: one message per
failure, saying what is wrong and what to do next (markdown), so the page never shows a
traceback."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pymongo.errors

from indexer import (
    DatabaseUnavailableError,
    DimensionMismatchError,
    EmptyCatalogError,
    FingerprintMismatchError,
    IndexerError,
    mask_uri,
)
from project_settings import Settings, SettingsError


def build_time(build: Mapping[str, Any] | None) -> str:
    """When the index on display was built, for the sidebar ("unknown" when not recorded)."""
    when = (build or {}).get("finished_at") or (build or {}).get("started_at")
    if isinstance(when, datetime):
        return f"{when:%Y-%m-%d %H:%M} UTC"
    return str(when) if when else "unknown"


def build_hint(settings: Settings) -> str:
    """Commands that create and index the demo catalog with the configured checkpoint."""
    cat = settings.catalog_dir
    return (
        "Build it with `bash run_app.sh` (it generates and indexes the demo catalog when the "
        "collection is empty), or by hand:\n\n"
        f"    python -m dataprep.demo_catalog --out {cat} --seed 0 --per-category 200\n"
        f"    python -m indexer build --images {cat}/images --metadata {cat}/metadata.csv "
        f"--checkpoint {settings.checkpoint}"
    )


def database_down(settings: Settings | None) -> str:
    """The first sentence of every database-outage message (markdown)."""
    uri = mask_uri(settings.effective_uri) if settings else "the configured MongoDB"
    return f"**The catalog database is not answering right now (`{uri}`); reconnecting.**"


def describe_problem(exc: BaseException, settings: Settings | None) -> str:
    """One message for the page: what is wrong and what to do next (markdown)."""
    if isinstance(exc, DatabaseUnavailableError | pymongo.errors.PyMongoError):
        detail = str(exc) if isinstance(exc, IndexerError) else type(exc).__name__
        return (
            f"{database_down(settings)} Try again in a few seconds: your steps are kept, and "
            "the app reconnects by itself as soon as the database is back.\n\n"
            "If it stays down: start the embedded database with `python -m indexer.db start` "
            "(or `bash run_app.sh`, which starts it), or set `MONGO_URI` to a running "
            f"MongoDB.\n\n({detail})"
        )
    if isinstance(exc, EmptyCatalogError):
        where = f"`{settings.db_name}.{settings.collection_name}`" if settings else "the catalog"
        hint = build_hint(settings) if settings else ""
        return f"**The catalog {where} is empty.** {exc}\n\n{hint}"
    if isinstance(exc, FingerprintMismatchError | DimensionMismatchError):
        ckpt = settings.checkpoint if settings else "the checkpoint"
        return (
            f"**The checkpoint does not match the stored vectors.** {exc}\n\n"
            f"Either re-index the catalog with this checkpoint (`python -m indexer build ... "
            f"--checkpoint {ckpt}`) or start the app with the checkpoint that built the index "
            "(`bash run_app.sh --checkpoint DIR`)."
        )
    if isinstance(exc, SettingsError):
        return f"**Configuration error.** {exc}\n\nFix the variable in the environment or `.env`."
    if isinstance(exc, IndexerError):
        return f"**Catalog error.** {exc}"
    return f"**Unexpected error.** {type(exc).__name__}: {exc}"


def reconnecting(settings: Settings | None, wait_s: float) -> str:
    """Shown while an action waits for the database to come back (see wait_for_database)."""
    return (f"{database_down(settings)} This answers as soon as it is back (waiting up to "
            f"{wait_s:.0f} s); your steps are kept.")


def describe_checkpoint_problem(exc: BaseException, checkpoint: Path) -> str:
    """Message for a checkpoint that is missing or cannot be loaded."""
    what = "does not exist" if not Path(checkpoint).exists() else "cannot be loaded"
    return (
        f"**The model checkpoint `{checkpoint}` {what}.** {type(exc).__name__}: {exc}\n\n"
        "Pass `--checkpoint DIR` to run_app.sh (or set `CHECKPOINT`) to a folder saved by "
        "`python -m model.train` or `Retriever.save`."
    )
