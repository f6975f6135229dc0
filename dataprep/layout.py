"""The on-disk dataset layout every generator writes and every reader finds: one way each.

A dataset folder holds ``captions/cap.{cat}.{split}.json``, ``image_splits/split.{cat}.{split}
.json``, ``metadata.csv`` (``id,category,title,<one column per attribute>``) and ``stats.json``;
its images are files named ``{id}.{extension}``. The writers here are the only code that writes
those files, and :func:`scan_images` is the only code that maps image files to ids (the
FashionIQ reader, the product-triplet builder and the indexer's catalog discovery all use it).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Every extension read as an image, in preference order: when one folder holds both a.jpg and
# a.png, a.jpg is the image of id "a" (FashionIQ ships mixed .jpg/.png downloads).
IMAGE_EXTENSIONS = (".jpg", ".png", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def image_id(path: str | Path) -> str:
    """The one rule mapping an image file to its item id: the file name without extension."""
    return Path(path).stem


@dataclass
class ImageScan:
    """Image files under a folder, by id, plus what could not be used as one."""

    by_id: dict[str, Path] = field(default_factory=dict)
    duplicates: list[tuple[str, Path, Path]] = field(default_factory=list)  # (id, dropped, kept)
    ignored: int = 0  # files without an image extension (e.g. notes.txt)


def scan_images(root: str | Path, *, recursive: bool = True,
                extensions: Sequence[str] = IMAGE_EXTENSIONS) -> ImageScan:
    """Map id -> image file for every file under ``root`` whose extension is in ``extensions``.

    One directory listing per folder (``os.scandir``, no stat per id: FashionIQ has 70k+
    files). Hidden files are skipped. When two files share an id, the earlier extension in
    ``extensions`` wins (then the first path in sorted order) and the other is reported in
    ``duplicates``. Raises FileNotFoundError when ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {str(root)!r} does not exist; check the path.")
    rank = {suffix.lower(): i for i, suffix in enumerate(extensions)}
    scan = ImageScan()
    for path in sorted(_files(root, recursive)):
        suffix = path.suffix.lower()
        if suffix not in rank:
            scan.ignored += 1
            continue
        item_id = image_id(path)
        kept = scan.by_id.get(item_id)
        if kept is None:
            scan.by_id[item_id] = path
        elif rank[suffix] < rank[kept.suffix.lower()]:
            scan.by_id[item_id] = path
            scan.duplicates.append((item_id, kept, path))
        else:
            scan.duplicates.append((item_id, path, kept))
    return scan


def _files(root: Path, recursive: bool, seen: set[tuple[int, int]] | None = None
           ) -> Iterable[Path]:
    """Files under ``root``; symlinked folders are followed once each (a link back to a parent
    folder would otherwise recurse until Python's recursion limit)."""
    seen = set() if seen is None else seen
    st = root.stat()
    if (st.st_dev, st.st_ino) in seen:
        return
    seen.add((st.st_dev, st.st_ino))
    with os.scandir(root) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_file():
                    yield Path(entry.path)
                elif recursive and entry.is_dir():
                    yield from _files(Path(entry.path), recursive, seen)
            except OSError:  # a dangling link or an unreadable entry is not an image
                continue


def write_json(path: Path, data, indent: int | None = None) -> None:
    """Annotation files are written one way everywhere (UTF-8, trailing newline)."""
    path.write_text(json.dumps(data, indent=indent) + "\n", encoding="utf-8")


def write_split(out: Path, category: str, split: str, entries: list[dict],
                gallery: Sequence[str]) -> None:
    """One category's split in the official FashionIQ layout: its triplets and its gallery."""
    (out / "captions").mkdir(parents=True, exist_ok=True)
    (out / "image_splits").mkdir(parents=True, exist_ok=True)
    write_json(out / "captions" / f"cap.{category}.{split}.json", entries)
    write_json(out / "image_splits" / f"split.{category}.{split}.json", list(gallery))


def read_metadata_column(root: str | Path, columns: Sequence[str]) -> dict[str, str]:
    """id -> value of the first of ``columns`` that the dataset's ``metadata.csv`` has; empty
    when the folder has no metadata.csv or none of those columns."""
    fields, rows = _metadata_table(root)
    column = next((c for c in columns if c in fields), None)
    return {r["id"]: r[column] for r in rows} if column else {}


# Columns of metadata.csv that name an item rather than describe what it looks like.
NOT_LOOK_COLUMNS = ("id", "title", "description")


def read_looks(root: str | Path) -> dict[str, tuple[str, ...]]:
    """id -> every attribute ``metadata.csv`` gives the item (category, type, colour, sleeve,
    ...; not its id, title or free text): two items with one look satisfy the same attribute
    captions. Empty when the folder has no metadata.csv."""
    fields, rows = _metadata_table(root)
    columns = [c for c in fields if c not in NOT_LOOK_COLUMNS]
    return {r["id"]: tuple(r[c] for c in columns) for r in rows}


def _metadata_table(root: str | Path) -> tuple[list[str], list[dict[str, str]]]:
    """(columns, rows) of the dataset's ``metadata.csv``; nothing when the folder has none."""
    path = Path(root) / "metadata.csv"
    if not path.is_file():
        return [], []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or ()), list(reader)


def write_metadata(path: Path, attributes: Sequence[str],
                   rows: Iterable[tuple[str, str, str, Sequence[str]]]) -> None:
    """``metadata.csv``: ``id,category,title,<attributes>``, one row per (id, category, title,
    attribute values) - the file the indexer reads titles and attributes from."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "category", "title", *attributes])
        for item_id, category, title, values in rows:
            writer.writerow([item_id, category, title, *values])
