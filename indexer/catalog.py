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

Metadata files come from stores, not from this project, so reading them is forgiving where a
guess is safe and loud where it is not: UTF-8 with or without BOM, else Windows-1252/Latin-1
(logged); CRLF or LF; column names matched without case or surrounding spaces; NUL bytes
dropped; rows without an id, with an impossible id or with a runaway quote skipped and counted;
titles and attribute values capped (``MAX_TITLE_CHARS``, ``MAX_VALUE_CHARS``) so that one
10,000-character cell cannot bloat every document and page. A file without an id column, or
one the csv module cannot parse at all, is refused with its name and line.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dataprep import scan_images

log = logging.getLogger(__name__)

DEFAULT_CATEGORY = "uncategorized"
MAX_TITLE_CHARS = 500  # longer titles are cut (with an ellipsis) when read
MAX_VALUE_CHARS = 200  # same for category and attribute values
MAX_ID_CHARS = 255  # ids are file names: a longer "id" is a broken row
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


def read_text_forgiving(path: Path) -> str:
    """A store's text file as str: UTF-8 (BOM or not), else Windows-1252, else Latin-1."""
    data = path.read_bytes()
    if b"\x00" in data:
        log.warning("%s holds NUL bytes; they were dropped", path)
        data = data.replace(b"\x00", b"")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        for encoding in ("cp1252", "latin-1"):
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError:
                continue
            log.warning("%s is not UTF-8 (%s); read it as %s: save it as UTF-8 to be sure "
                        "accented titles come out right", path, exc.reason, encoding)
            return text
        raise  # latin-1 decodes every byte: not reached


def _cut(value: str | None, limit: int) -> str:
    value = (value or "").strip()
    return value if len(value) <= limit else value[: limit - 1].rstrip() + "…"


def _read_csv(path: Path, category_column: str | None) -> list[MetadataRow]:
    reader = csv.DictReader(io.StringIO(read_text_forgiving(path), newline=""))
    try:
        columns = [(c or "").strip() for c in (reader.fieldnames or [])]
    except csv.Error as exc:
        raise ValueError(f"{path}: not a readable CSV file ({exc})") from None
    reader.fieldnames = columns
    by_lower = {c.lower(): c for c in reversed(columns)}  # first spelling wins
    id_col, title_col = by_lower.get("id"), by_lower.get("title")
    if id_col is None:
        raise ValueError(f"{path}: metadata CSV needs an 'id' column (has {columns[:20]})")
    if category_column is not None and category_column not in columns:
        raise ValueError(f"{path}: --category-column {category_column!r} is not a column "
                         f"(columns: {columns[:20]})")
    cat_col = category_column or by_lower.get("category") or by_lower.get("type")
    attr_cols = [c for c in columns if c and c not in {id_col, title_col, cat_col}]
    rows, broken, runaway = [], 0, []
    try:
        for rec in reader:
            item_id = (rec.get(id_col) or "").strip()
            if not item_id or len(item_id) > MAX_ID_CHARS or any(
                    ch in item_id for ch in "/\\\n\r"):
                has_values = any(isinstance(v, str) and v.strip() for v in rec.values())
                broken += bool(item_id) or has_values
                continue
            title = (rec.get(title_col) or "").strip()
            if "\n" in title or "\r" in title:  # titles are one line: a stray quote, usually
                runaway.append(f"{item_id} (line {reader.line_num})")
                title = title.splitlines()[0]
            rows.append(MetadataRow(
                id=item_id,
                category=_cut(rec.get(cat_col), MAX_VALUE_CHARS) or None if cat_col else None,
                title=_cut(title, MAX_TITLE_CHARS),
                attributes={c: _cut(rec[c], MAX_VALUE_CHARS) for c in attr_cols
                            if isinstance(rec.get(c), str) and rec[c].strip()},
            ))
    except csv.Error as exc:
        raise ValueError(f"{path}, line {reader.line_num}: broken CSV ({exc}); fix that line "
                         "or re-export the file") from None
    if runaway:
        log.warning("%s: the title of %s spans several lines, cut at the first; a stray quote "
                    "there swallows the rows after it: check the quotes of that row", path,
                    ", ".join(runaway[:5]))
    if broken:
        log.warning("%s: %d rows without a usable id (empty, too long, or holding a path or "
                    "line break, e.g. after a stray quote) were skipped", path, broken)
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
