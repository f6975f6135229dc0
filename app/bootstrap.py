"""Prepare what ``run_app.sh`` serves: the database is up and the catalog is indexed.

Why Python and not more bash: the same settings rules as the indexer and the app apply
(environment, then ``.env``, then defaults), and the check stays cheap (no PyTorch import), so
a second ``run_app.sh`` only pings the database and counts documents before serving.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from dataprep import IMAGE_EXTENSIONS, scan_images
from indexer import IndexerError, ensure_database, mask_uri
from project_settings import SettingsError, load_settings

log = logging.getLogger(__name__)

DEFAULT_SEED = 0
DEFAULT_PER_CATEGORY = 200  # 600 items: indexed in well under a minute on 2 cores


class BootstrapError(RuntimeError):
    """Something the person running the script must fix; the message says what."""


def holds_images(folder: Path) -> bool:
    """True when an image file lies anywhere under ``folder`` (the indexer's own scan)."""
    return folder.is_dir() and bool(scan_images(folder).by_id)


def build_commands(
    catalog: Path, checkpoint: Path, seed: int, per_category: int, python: str = sys.executable,
    metadata: Path | None = None,
) -> list[list[str]]:
    """Commands that create the demo catalog (only when ``catalog`` is empty or absent) and
    index it.

    A store's catalog is taken as it comes, with the indexer's own discovery: a plain or
    nested folder of photos (id and title from the file name), the project layout
    (``images/`` + ``metadata.csv``), or any of these with a metadata file of another name
    (``metadata``). Only a folder that holds files but no image at all is refused: generating
    the demo catalog into it would mix it with someone's files."""
    if metadata is not None and not metadata.is_file():
        raise BootstrapError(f"--metadata {metadata} is not a file")
    commands = []
    generated = not holds_images(catalog)
    if generated:
        if catalog.is_dir() and any(catalog.iterdir()):
            raise BootstrapError(
                f"{catalog} holds no image files ({', '.join(IMAGE_EXTENSIONS)}), not even in "
                "subfolders; point --catalog at a folder of product photos (metadata.csv is "
                "optional), or at an empty or new folder to generate the demo catalog")
        if metadata is not None:
            raise BootstrapError(f"--metadata {metadata} was given, but {catalog} holds no "
                                 "photos to index; point --catalog at the photos")
        commands.append([python, "-m", "dataprep.demo_catalog", "--out", str(catalog),
                         "--seed", str(seed), "--per-category", str(per_category)])
        metadata = catalog / "metadata.csv"
    index = [python, "-m", "indexer", "build", "--images", str(catalog)]
    if metadata is not None:
        index += ["--metadata", str(metadata)]
    commands.append([*index, "--checkpoint", str(checkpoint)])
    return commands


def checkpoint_fingerprint(checkpoint: Path) -> str:
    """The fingerprint recorded in a checkpoint's config.json (read without importing torch)."""
    try:
        return str(json.loads((checkpoint / "config.json").read_text())["fingerprint"])
    except (OSError, ValueError, KeyError) as exc:
        raise BootstrapError(
            f"{checkpoint} is not a checkpoint (config.json with a fingerprint): {exc}. Pass "
            "--checkpoint DIR (or set CHECKPOINT) to a checkpoint saved by `python -m model.train`."
        ) from exc


def prepare(seed: int, per_category: int, force_index: bool = False,
            metadata: Path | None = None) -> None:
    """Start the database when it is the embedded default; index the catalog when empty."""
    settings = load_settings()
    if not settings.checkpoint.exists():
        raise BootstrapError(
            f"checkpoint not found: {settings.checkpoint}. Pass --checkpoint DIR (or set "
            "CHECKPOINT) to a checkpoint saved by `python -m model.train`."
        )
    print(f"[app] database: {mask_uri(settings.effective_uri)} "
          f"({settings.db_name}.{settings.collection_name})", flush=True)
    client = ensure_database(settings)  # starts SecantusDB only when MONGO_URI is the default
    fingerprint = checkpoint_fingerprint(settings.checkpoint)
    try:
        items = client[settings.db_name][settings.collection_name]
        count = items.count_documents({"model": fingerprint})
        others = 0 if count else items.estimated_document_count()
    finally:
        client.close()
    if count and not force_index:
        print(f"[app] catalog: {count} items already indexed; skipping the build", flush=True)
        return
    if others:  # e.g. the demo checkpoint was retrained: the vectors must be remade
        print(f"[app] catalog: {others} items were indexed with another model; re-indexing "
              f"{settings.catalog_dir} with checkpoint {settings.checkpoint} ({fingerprint})",
              flush=True)
    else:
        print(f"[app] catalog is empty: building it from {settings.catalog_dir} "
              f"with checkpoint {settings.checkpoint}", flush=True)
    for cmd in build_commands(settings.catalog_dir, settings.checkpoint, seed, per_category,
                              metadata=metadata):
        shown = ["python", *cmd[1:]] if cmd[0] == sys.executable else cmd
        print("[app] $ " + " ".join(shown), flush=True)
        result = subprocess.run(cmd, check=False)  # inherits the terminal: progress shows
        if result.returncode != 0:
            raise BootstrapError(f"`{' '.join(cmd[1:])}` failed (exit {result.returncode})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.bootstrap", description=__doc__)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help="seed of the generated demo catalog")
    parser.add_argument("--per-category", type=int, default=DEFAULT_PER_CATEGORY,
                        help="items per category of the generated demo catalog")
    parser.add_argument("--reindex", action="store_true",
                        help="run the (idempotent) indexer even when the catalog is not empty")
    parser.add_argument("--metadata", type=Path, default=None,
                        help="the catalog's metadata file when it is not CATALOG/metadata.csv")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        prepare(args.seed, args.per_category, force_index=args.reindex,
                metadata=args.metadata)
    except (BootstrapError, IndexerError, SettingsError) as exc:
        print(f"[app] error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    code = main()
    # pymongo's monitor threads notice close() only after their next 0.5 s sleep, and the
    # interpreter waits for them at exit: half a second more before every app (re)start, where
    # shoppers' pages give up reconnecting after about three. Nothing else is left to clean up.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
