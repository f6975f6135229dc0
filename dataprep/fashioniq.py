"""FashionIQ-format triplets: reading both layouts and combining the two captions.

Every dataset the project uses (FashionIQ itself, the procedural demo catalog, the real-photo
triplets) is read through :func:`load_fashioniq`, so training, evaluation and benchmarks see the
same triplets, the same galleries and the same handling of missing images: counted, reported once,
their triplets skipped, never a crash halfway through an epoch.

Layouts (``annotations`` is a folder; ``images`` may be a different folder):

* official: ``captions/cap.{cat}.{split}.json`` (list of ``{candidate, target, captions}``) and
  ``image_splits/split.{cat}.{split}.json`` (list of ids, the gallery);
* flat (the seed's form): ``{split}.json``, one list of ``{candidate, target, captions
  [, category][, relevant]}``; the gallery is every id the triplets mention.

Entries may carry ``"relevant": [ids]``, all gallery items that satisfy the target's attributes,
and ``"tags": [str]`` (the H&M triplets: kind, then the changed attributes) for benchmarks.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from dataprep.layout import scan_images

logger = logging.getLogger(__name__)

FASHIONIQ_CATEGORIES = ("dress", "shirt", "toptee")
IMAGE_SUFFIXES = (".jpg", ".png", ".jpeg")  # preference order when several exist
FLAT_DEFAULT_CATEGORY = "all"  # category of flat-form entries that name none
_STRIP = ".?, "

ImageCheck = Literal["exists", "header", "decode"]


class _Rng(Protocol):
    def random(self) -> float: ...


@dataclass(frozen=True)
class Triplet:
    """One query: reference image id, target image id, the (usually two) relative captions."""

    candidate: str
    target: str
    captions: list[str]
    category: str
    relevant: list[str] | None = None  # all gallery ids that satisfy the target's attributes
    tags: tuple[str, ...] = ()  # optional labels (kind, changed attributes) for benchmarks
    # Hard negatives named by the data builder (e.g. items that still have what the words
    # remove, other kinds in the target's colour); training may add some to the batch.
    negatives: tuple[str, ...] = ()


@dataclass
class FashionIQSplit:
    """Usable triplets and galleries of one split; ids without a usable image are left out."""

    split: str
    triplets: list[Triplet]
    gallery: dict[str, list[str]]  # category -> ids, in file order
    image_paths: dict[str, Path]  # id -> image file, for every usable id
    missing: set[str] = field(default_factory=set)  # absent or unreadable ids
    unreadable: set[str] = field(default_factory=set)  # the subset that exists but is broken
    skipped_triplets: int = 0

    @property
    def categories(self) -> list[str]:
        return list(self.gallery)


def eval_caption(captions: Sequence[str]) -> str:
    """The evaluation query text, exactly as CLIP4Cir/SPRC build it (numbers stay comparable)."""
    if not captions:
        raise ValueError("a triplet needs at least one caption")
    if len(captions) == 1:
        return captions[0].strip(_STRIP).capitalize()
    c1, c2 = captions[0], captions[1]
    return c1.strip(_STRIP).capitalize() + " and " + c2.strip(_STRIP)


def train_caption(captions: Sequence[str], rng: _Rng) -> str:
    """A random training text: c1-and-c2, c2-and-c1, c1 or c2 with equal probability.

    ``rng`` is anything with ``random()`` (``random.Random`` or ``numpy.random.Generator``), so
    each DataLoader worker can own a seeded generator.
    """
    if not captions:
        raise ValueError("a triplet needs at least one caption")
    if len(captions) == 1:
        return captions[0].strip(_STRIP).capitalize()
    c1, c2 = captions[0], captions[1]
    choice = int(rng.random() * 4)
    if choice == 0:
        return eval_caption([c1, c2])
    if choice == 1:
        return eval_caption([c2, c1])
    return (c1 if choice == 2 else c2).strip(_STRIP).capitalize()


def _index_images(images: Path) -> dict[str, Path]:
    """id -> path of every image in ``images`` (one directory listing, not a stat per id)."""
    return scan_images(images, recursive=False, extensions=IMAGE_SUFFIXES).by_id


def _is_readable(path: Path, check: ImageCheck) -> bool:
    """Cheap validity check: 'exists' trusts the listing, 'header' parses the header,
    'decode' decodes every pixel (catches truncated files; slow on large datasets)."""
    if check == "exists":
        return True
    try:
        if path.stat().st_size == 0:
            return False
        with Image.open(path) as img:
            if check == "decode":
                img.load()
        return True
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError, Image.DecompressionBombError):
        return False


def _read_json_list(path: Path) -> list:
    with path.open(encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, list):
        raise ValueError(f"{str(path)!r} must hold a JSON list, found {type(data).__name__}")
    return data


def _official_categories(annotations: Path, split: str) -> list[str]:
    prefix, suffix = "cap.", f".{split}.json"
    names = sorted(p.name for p in (annotations / "captions").glob(f"cap.*.{split}.json"))
    return [n[len(prefix) : -len(suffix)] for n in names]


def _raw_official(
    annotations: Path, split: str, categories: Sequence[str] | None
) -> tuple[list[dict], dict[str, list[str]]]:
    cats = list(categories) if categories else _official_categories(annotations, split)
    if not cats:
        raise FileNotFoundError(
            f"no captions/cap.*.{split}.json under {str(annotations)!r}; check the split name."
        )
    entries: list[dict] = []
    gallery: dict[str, list[str]] = {}
    for cat in cats:
        cap_path = annotations / "captions" / f"cap.{cat}.{split}.json"
        if not cap_path.is_file():
            raise FileNotFoundError(f"{str(cap_path)!r} does not exist; check the category list.")
        for entry in _read_json_list(cap_path):
            entries.append({**entry, "category": cat})
        split_path = annotations / "image_splits" / f"split.{cat}.{split}.json"
        if split_path.is_file():
            gallery[cat] = [str(i) for i in _read_json_list(split_path)]
        else:  # FashionIQ's test captions ship without some splits: fall back to mentioned ids
            logger.info("%s absent: gallery of %r = ids the triplets mention", split_path, cat)
            gallery[cat] = _mentioned_ids(e for e in entries if e["category"] == cat)
    return entries, gallery


def _raw_flat(
    path: Path, categories: Sequence[str] | None
) -> tuple[list[dict], dict[str, list[str]]]:
    entries = [
        {**entry, "category": str(entry.get("category") or FLAT_DEFAULT_CATEGORY)}
        for entry in _read_json_list(path)
    ]
    if categories:
        wanted = set(categories)
        entries = [e for e in entries if e["category"] in wanted]
    gallery: dict[str, list[str]] = {}
    for cat in dict.fromkeys(e["category"] for e in entries):
        gallery[cat] = _mentioned_ids(e for e in entries if e["category"] == cat)
    return entries, gallery


def _mentioned_ids(entries: Iterable[dict]) -> list[str]:
    ids: dict[str, None] = {}
    for e in entries:
        ids[str(e["candidate"])] = None
        ids[str(e["target"])] = None
    return list(ids)


def _find_flat_file(annotations: Path, split: str) -> Path | None:
    if annotations.is_file():
        return annotations
    for candidate in (annotations / f"{split}.json", annotations / "captions" / f"{split}.json"):
        if candidate.is_file():
            return candidate
    return None


def dataset_paths(text: str) -> tuple[Path, Path]:
    """The folders of a dataset named ``ANNOTATIONS[:IMAGES]`` on a command line (the form
    every benchmark and head-training command takes); images default to ANNOTATIONS/images."""
    annotations, _, images = text.partition(":")
    return Path(annotations), Path(images) if images else Path(annotations) / "images"


def load_fashioniq(
    annotations: Path | str,
    images: Path | str,
    split: str,
    categories: Sequence[str] | None = None,
    *,
    check: ImageCheck = "header",
) -> FashionIQSplit:
    """Read one split of a FashionIQ-format dataset in either layout.

    ``categories=None`` means every category present. Ids whose image is absent from ``images``
    (as .jpg, .png or .jpeg) or fails ``check`` are collected in ``.missing``, dropped from the
    galleries, and their triplets skipped; one warning summarises them.
    """
    annotations, images = Path(annotations), Path(images)
    if (annotations / "captions").is_dir() and any(
        (annotations / "captions").glob(f"cap.*.{split}.json")
    ):
        entries, raw_gallery = _raw_official(annotations, split, categories)
    else:
        flat = _find_flat_file(annotations, split)
        if flat is None:
            raise FileNotFoundError(
                f"no FashionIQ annotations for split {split!r} under {str(annotations)!r}: "
                f"expected captions/cap.{{category}}.{split}.json or {split}.json"
            )
        entries, raw_gallery = _raw_flat(flat, categories)

    on_disk = _index_images(images)
    needed = dict.fromkeys(i for ids in raw_gallery.values() for i in ids)
    for e in entries:
        needed[str(e["candidate"])] = None
        needed[str(e["target"])] = None
    image_paths: dict[str, Path] = {}
    missing: set[str] = set()
    unreadable: set[str] = set()
    to_check = [i for i in needed if i in on_disk]
    missing.update(i for i in needed if i not in on_disk)
    for image_id in tqdm(
        to_check, desc=f"checking {split} images", unit="img", disable=len(to_check) < 5000
    ):
        if _is_readable(on_disk[image_id], check):
            image_paths[image_id] = on_disk[image_id]
        else:
            unreadable.add(image_id)
    missing |= unreadable

    gallery = {cat: [i for i in ids if i not in missing] for cat, ids in raw_gallery.items()}
    triplets: list[Triplet] = []
    for e in entries:
        candidate, target = str(e["candidate"]), str(e["target"])
        if candidate in missing or target in missing:
            continue
        relevant = e.get("relevant")
        triplets.append(
            Triplet(
                candidate=candidate,
                target=target,
                captions=[str(c) for c in e["captions"]],
                category=e["category"],
                relevant=None
                if relevant is None
                else [str(r) for r in relevant if str(r) not in missing],
                tags=tuple(str(x) for x in e.get("tags", ())),
                negatives=tuple(str(n) for n in e.get("negatives", ()) if str(n) not in missing),
            )
        )
    result = FashionIQSplit(
        split=split,
        triplets=triplets,
        gallery=gallery,
        image_paths=image_paths,
        missing=missing,
        unreadable=unreadable,
        skipped_triplets=len(entries) - len(triplets),
    )
    _report(result, total_images=len(needed))
    return result


def _report(result: FashionIQSplit, total_images: int) -> None:
    """One summary line, never one line per image (FashionIQ has thousands of dead URLs)."""
    if result.missing:
        examples = ", ".join(sorted(result.missing)[:5])
        logger.warning(
            "FashionIQ %s: %d of %d images missing or unreadable (%d unreadable; e.g. %s); "
            "skipped %d of %d triplets",
            result.split,
            len(result.missing),
            total_images,
            len(result.unreadable),
            examples,
            result.skipped_triplets,
            result.skipped_triplets + len(result.triplets),
        )
    logger.info(
        "FashionIQ %s: %d triplets, galleries %s",
        result.split,
        len(result.triplets),
        {cat: len(ids) for cat, ids in result.gallery.items()},
    )
