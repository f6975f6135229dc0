"""``python -m indexer build|stats|drop``: index a catalog into MongoDB and inspect it."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path

import pymongo.errors

from indexer.errors import IndexerError
from project_settings import DEFAULT_CHECKPOINT, DEVICES, load_settings

log = logging.getLogger("indexer")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m indexer", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="embed catalog images and upsert them into MongoDB")
    b.add_argument("--images", type=Path, default=None,
                   help="folder of catalog images (default: CATALOG_DIR)")
    b.add_argument("--metadata", type=Path, nargs="+", default=[],
                   help="metadata.csv / products.csv, or FashionIQ split.{cat}.{split}.json "
                        "files or their folder (default: IMAGES/metadata.csv when present)")
    b.add_argument("--category", default=None,
                   help="index only this category (without metadata: the category of every "
                        "image, default 'uncategorized')")
    b.add_argument("--category-column", default=None,
                   help="CSV column holding the category (default: category, else type)")
    b.add_argument("--checkpoint", type=Path, default=None,
                   help="retriever checkpoint directory (default: CHECKPOINT, "
                        f"{DEFAULT_CHECKPOINT})")
    b.add_argument("--batch", type=int, default=32, help="images per forward pass and write")
    b.add_argument("--device", default=None, choices=DEVICES,
                   help="where the model runs (default: DEVICE from the environment, else "
                   "auto: CUDA when a GPU is present)")
    b.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                   help="image-decoding worker processes (0 = main process)")
    b.add_argument("--shard", default=None, help="i/n: index only shard i of n (0-based), "
                   "split by a stable hash of the id; run n of these side by side")
    b.add_argument("--replace", action="store_true",
                   help="delete stored vectors whose dimension differs from this checkpoint's")
    b.add_argument("--prune", action="store_true",
                   help="delete stored items whose image file is gone (within --category and "
                        "--shard); refused for an empty catalog")
    b.add_argument("--db-wait", type=float, default=60.0, metavar="S",
                   help="how long to wait for a database that stops answering during the "
                        "build before giving up (the same command resumes)")
    b.add_argument("--no-snapshot", action="store_true",
                   help="do not write the search-index snapshot after the build (the app then "
                        "loads the vectors from the database at its next start)")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.add_argument("--json", action="store_true", help="print the build report as JSON")

    s = sub.add_parser("stats", help="counts per category and per model, last build")
    s.add_argument("--json", action="store_true")
    d = sub.add_parser("drop", help="delete the catalog collection and its build records")
    d.add_argument("--yes", action="store_true", help="really delete")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
        if args.command == "build":
            return _build(args, settings)
        if args.command == "stats":
            return _stats(args, settings)
        return _drop(args, settings)
    except IndexerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # bad arguments or metadata detected while reading them
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except pymongo.errors.ConnectionFailure as exc:  # before the build could retry (start-up)
        print(f"error: the database stopped answering ({type(exc).__name__}); start it again "
              "(embedded default: `python -m indexer.db start`) and re-run the same command: "
              "it resumes where it stopped", file=sys.stderr)
        return 2


def _build(args, settings) -> int:
    from indexer.catalog import discover, parse_shard
    from indexer.db.store import CatalogStore, mask_uri

    shard = parse_shard(args.shard) if args.shard else None
    images = args.images or settings.catalog_dir
    store = CatalogStore.open(settings)  # fail fast, before importing torch and the model
    catalog = discover(images, args.metadata, args.category, args.category_column, shard)
    checkpoint = args.checkpoint or settings.checkpoint

    from indexer.build import BuildConfig, build_index, report_dict  # imports torch
    from model import load_retriever

    try:
        encoder = load_retriever(checkpoint, device=args.device or settings.device)
    except Exception as exc:  # CheckpointError and friends: say which checkpoint
        print(f"error: cannot load checkpoint {checkpoint}: {exc}", file=sys.stderr)
        return 2
    log.info("model %s (dim %d) from %s; %d items under %s%s; database %s", encoder.fingerprint,
             encoder.dim, checkpoint, len(catalog.items), images,
             f" (shard {args.shard})" if shard else "", mask_uri(settings.effective_uri))
    config = BuildConfig(batch_size=args.batch, workers=args.workers, replace=args.replace,
                         prune=args.prune, db_wait_s=args.db_wait,
                         progress=not args.no_progress, description={
                             "checkpoint": str(checkpoint), "images": str(images),
                             "shard": args.shard, "category": args.category})
    # SIGTERM (kill, systemd, docker stop) unwinds like Ctrl-C: the record says "interrupted"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    report = build_index(catalog, encoder, store, config)
    if args.json:
        print(json.dumps(report_dict(report), default=str))
    else:
        print(f"build {report.build_id}: {report.seen} items, {report.embedded} embedded "
              f"({report.images_per_s:.1f} img/s), {report.skipped} unchanged, "
              f"{report.metadata_updated} metadata updated, {report.failed} failed "
              f"({report.quarantined} stored items quarantined), "
              f"{report.pruned} pruned; "
              f"{report.total_for_fingerprint} items of model {report.fingerprint} stored; "
              f"{report.seconds:.1f} s")
        if catalog.ignored_files:
            print(f"  {catalog.ignored_files} files without an image extension were ignored")
        for f in report.failures[:50]:
            print(f"  skipped {f['id']} ({f['path']}): {f['error']}")
        if report.failed > 50:
            print(f"  ... and {report.failed - 50} more (see the build record: indexer stats)")
    if settings.index_snapshot_dir and not args.no_snapshot and report.total_for_fingerprint:
        _write_snapshot(store, report.fingerprint, settings)
    return 0


def _write_snapshot(store, fingerprint: str, settings) -> None:
    """Load the finished build as the app will and write its index snapshot, so the app's next
    start (and every replica sharing INDEX_SNAPSHOT_DIR) maps it instead of rebuilding it."""
    from indexer.search import CatalogSearch, settings_config

    try:
        search = CatalogSearch(store, fingerprint, settings_config(settings))
    except IndexerError as exc:  # the build itself succeeded: the app will load from MongoDB
        log.warning("no index snapshot written (%s); the app will load the vectors from the "
                    "database at its next start", exc)
        return
    log.info("index snapshot of %d vectors (%s) under %s", search.size, search.index_kind,
             settings.index_snapshot_dir)


def _stats(args, settings) -> int:
    from indexer.db.store import CatalogStore
    from indexer.stats import catalog_stats

    stats = catalog_stats(CatalogStore.open(settings))
    if args.json:
        print(json.dumps(stats, default=str))
        return 0
    print(f"{stats['collection']}: {stats['total']} items, {stats['builds']} builds")
    if stats["quarantined"]:
        print(f"  {stats['quarantined']} items quarantined: their image changed and no longer "
              "decodes, so search leaves them out (fix the file and build again)")
    for title, key in (("per category", "per_category"), ("per model", "per_fingerprint")):
        print(f"  {title}:")
        for name, n in stats[key].items():
            print(f"    {name:<24} {n:>8}")
    last = stats["last_build"]
    if last:
        counts = last.get("counts", {})
        print(f"  last build: {last['_id']} {last.get('status')} (started {last['started_at']}, "
              f"model {last['fingerprint']}, dim {last['dim']}) {counts}")
        if last.get("error"):
            print(f"    error: {last['error']}")
        for f in (last.get("failures") or [])[:20]:
            print(f"    failed {f['id']}: {f['error']}")
    return 0


def _drop(args, settings) -> int:
    from indexer.db.store import CatalogStore
    from indexer.stats import drop_catalog

    store = CatalogStore.open(settings)
    if not args.yes:
        print(f"refusing to drop {store.items.full_name} without --yes", file=sys.stderr)
        return 2
    items, builds = drop_catalog(store)
    print(f"dropped {store.items.full_name}: {items} items, {builds} build records")
    return 0
