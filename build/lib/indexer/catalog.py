"""What to index: catalog items (id, category, title, attributes, image path) from a folder of
images plus optional metadata.

Metadata sources (``--metadata``, repeatable):
- a CSV with an ``id`` column (``metadata.csv`` of generated catalogs: ``id,category,title,
  <attributes>``; the real products.csv: ``id,gender,type,color,pattern,title``). The category
  column is ``category_column`` if given, else ``category``, else ``type``; every other non-empty
  column except id/title becomes an attribute.
- FashionIQ ``image_splits/split.{category}.{split}.json`` files (a JSON list of ASINs), or a
  folder holding them; the category comes from the file name.
Images are matched by id (``dataprep.image_id``: ``{id}.jpg|png|...`` anywhere under the images
folder, found by ``dataprep.scan_images``).
Without metadata every image file is an item (id = file stem, category = ``category`` or
"uncategorized").
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dataprep import scan_images

log = logging.getLogger(__name__)

DEFAULT_CATEGORY = "uncategorized"
_SPLIT_FILE = re.compile(r"^split\.(?P<cat>[^.]+)\.(?P<split>[^.]+)\.json$")


@dataclass(frozen=True)
class CatalogItem:
    id: str
    category: str
    image_path: Path
    title: str = ""
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass
class Catalog:
    """Items to index plus what could not become an item (reported, never fatal)."""

    items: list[CatalogItem]
    problems: list[tuple[str, str, str]] = field(default_factory=list)  # (id, path, reason)
    ignored_files: int = 0  # files without an image extension (e.g. notes.txt)
    category: str | None = None  # the --category filter this catalog was read with
    shard: tuple[int, int] | None = None  # the --shard it was read with

    def in_scope(self, item_id: str, category: str | None) -> bool:
        """Whether a stored item belongs to the part of the catalog this run covers, so that
        pruning one shard or one category never touches the others."""
        if self.category is not None and category != self.category:
            return False
        return self.shard is None or shard_of(item_id, self.shard[1]) == self.shard[0]

    def present_ids(self) -> set[str]:
        """Ids that still have an image file (readable or not): what pruning keeps."""
        return {it.id for it in self.items} | {i for i, path, _ in self.problems if path}


@dataclass(frozen=True)
class MetadataRow:
    id: str
    category: str | None
    title: str
    attributes: dict[str, str]


def parse_shard(text: str) -> tuple[int, int]:
    """'i/n' -> (i, n) with 0 <= i < n."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or not 0 <= int(m.group(1)) < int(m.group(2)):
        raise ValueError(f"--shard must be i/n with 0 <= i < n (e.g. 0/4), got {text!r}")
    return int(m.group(1)), int(m.group(2))


def shard_of(item_id: str, n: int) -> int:
    """Stable shard of an id (same on every machine and Python run, unlike hash())."""
    return int.from_bytes(hashlib.sha1(item_id.encode()).digest()[:8], "big") % n


def scan_catalog_images(root: Path) -> tuple[dict[str, Path], list[tuple[str, str, str]], int]:
    """id -> path for every image file under root, duplicates as problems, ignored-file count."""
    scan = scan_images(root)
    problems = [(item_id, str(dropped), f"duplicate id: also {kept}")
                for item_id, dropped, kept in scan.duplicates]
    return scan.by_id, problems, scan.ignored


def read_metadata(paths: Sequence[Path], category_column: str | None = None) -> list[MetadataRow]:
    """Read every metadata source; the first row for an id wins (duplicates are logged)."""
    rows: dict[str, MetadataRow] = {}
    duplicates = 0
    for source in _expand(paths):
        new = _read_split(source) if source.suffix == ".json" else _read_csv(source,
                                                                             category_column)
        for row in new:
            if row.id in rows:
                duplicates += 1
                continue
            rows[row.id] = row
    if duplicates:
        log.warning("%d duplicate ids in the metadata were ignored (first occurrence kept)",
                    duplicates)
    return list(rows.values())


def _expand(paths: Sequence[Path]) -> Iterable[Path]:
    for p in paths:
        if p.is_dir():
            splits = sorted(q for q in p.glob("split.*.json") if _SPLIT_FILE.match(q.name))
            if not splits:
                raise ValueError(
                    f"--metadata folder {p} holds no split.{{category}}.{{split}}.json files")
            yield from splits
        elif p.is_file():
            yield p
        else:
            raise ValueError(f"--metadata {p} does not exist")


def _read_split(path: Path) -> list[MetadataRow]:
    m = _SPLIT_FILE.match(path.name)
    if not m:
        raise ValueError(
            f"{path}: FashionIQ split files are named split.{{category}}.{{split}}.json")
    ids = json.loads(path.read_text())
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ValueError(f"{path}: expected a JSON list of image ids")
    return [MetadataRow(i, m.group("cat"), "", {}) for i in ids]


def _read_csv(path: Path, category_column: str | None) -> list[MetadataRow]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns = reader.fieldnames or []
        if "id" not in columns:
            raise ValueError(f"{path}: metadata CSV needs an 'id' column (has {columns})")
        if category_column is not None and category_column not in columns:
            raise ValueError(f"{path}: --category-column {category_column!r} is not a column "
                             f"(columns: {columns})")
        cat_col = category_column or next((c for c in ("category", "type") if c in columns), None)
        attr_cols = [c for c in columns if c not in {"id", "title", cat_col}]
        rows = []
        for rec in reader:
            item_id = (rec.get("id") or "").strip()
            if not item_id:
                continue
            rows.append(MetadataRow(
                id=item_id,
                category=(rec.get(cat_col) or "").strip() or None if cat_col else None,
                title=(rec.get("title") or "").strip(),
                attributes={c: rec[c].strip() for c in attr_cols if (rec.get(c) or "").strip()},
            ))
        return rows


def discover(
    images: Path,
    metadata: Sequence[Path] = (),
    category: str | None = None,
    category_column: str | None = None,
    shard: tuple[int, int] | None = None,
) -> Catalog:
    """Build the list of items to index (filtered by category and shard)."""
    if not images.is_dir():
        raise ValueError(f"--images {images} is not a folder")
    by_stem, problems, ignored = scan_catalog_images(images)
    if not metadata:
        # generated catalogs: DIR/metadata.csv beside DIR/images/
        candidates = [images / "metadata.csv"]
        if images.name == "images":
            candidates.append(images.parent / "metadata.csv")
        found = next((c for c in candidates if c.is_file()), None)
        if found is not None:
            metadata = [found]
            log.info("using %s as metadata", found)
    items: list[CatalogItem] = []
    if metadata:
        for row in read_metadata(metadata, category_column):
            cat = row.category or category or DEFAULT_CATEGORY
            if category is not None and cat != category:
                continue
            path = by_stem.get(row.id)
            if path is None:
                problems.append((row.id, "", f"no image file {row.id}.* under {images}"))
                continue
            items.append(CatalogItem(row.id, cat, path, row.title, row.attributes))
    else:
        items = [CatalogItem(stem, category or DEFAULT_CATEGORY, path)
                 for stem, path in by_stem.items()]
    if shard is not None:
        i, n = shard
        items = [it for it in items if shard_of(it.id, n) == i]
        problems = [p for p in problems if shard_of(p[0], n) == i]
    return Catalog(items, problems, ignored, category, shard)
