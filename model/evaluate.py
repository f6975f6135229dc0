"""FashionIQ-protocol evaluation: per category, rank that category's val gallery for every query.

`evaluate_split` takes the two encoding functions as arguments, so the trained model and every
baseline in bench/ go through the same gallery construction, captions and recall code.

    python -m model.evaluate --checkpoint CKPT --data DIR [--split val] [--json OUT]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from dataprep import FashionIQSplit, eval_caption, load_fashioniq, read_metadata_column
from model.device import DEVICE_CHOICES
from model.feature_cache import FeatureBank, extract_features
from model.metrics import retrieval_metrics, summarise, top_k
from project_settings import DEFAULT_CHECKPOINT, FEATURE_CACHE_DIR

logger = logging.getLogger(__name__)

QueryEncoder = Callable[[Sequence[str], Sequence[str]], np.ndarray]  # (ref ids, texts) -> (Q, D)
GalleryEncoder = Callable[[Sequence[str]], np.ndarray]  # ids -> (N, D)


def remembered_encoders(encode_queries: QueryEncoder, encode_gallery: GalleryEncoder
                        ) -> tuple[QueryEncoder, GalleryEncoder]:
    """The same encoders with every vector computed once: kept@10 and the tag groups rank the
    same queries and gallery items as `evaluate_split` again, and a query costs a transformer
    pass."""
    seen_queries: dict[tuple[str, str], np.ndarray] = {}
    seen_items: dict[str, np.ndarray] = {}

    def queries(refs: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        new = list(dict.fromkeys(k for k in zip(refs, texts, strict=True)
                                 if k not in seen_queries))
        if new:
            vectors = encode_queries([r for r, _ in new], [t for _, t in new])
            seen_queries.update(zip(new, vectors, strict=True))
        return np.stack([seen_queries[k] for k in zip(refs, texts, strict=True)])

    def gallery(ids: Sequence[str]) -> np.ndarray:
        new = [i for i in dict.fromkeys(ids) if i not in seen_items]
        if new:
            seen_items.update(zip(new, encode_gallery(new), strict=True))
        return np.stack([seen_items[i] for i in ids])

    return queries, gallery


def evaluate_split(split: FashionIQSplit, encode_queries: QueryEncoder,
                   encode_gallery: GalleryEncoder, max_queries: int | None = None,
                   ) -> dict[str, dict[str, float]]:
    """Metrics per category plus "average" (unweighted over categories, as papers report)."""
    results: dict[str, dict[str, float]] = {}
    for category in split.categories:
        gallery_ids = split.gallery[category]
        in_gallery = set(gallery_ids)
        triplets = [t for t in split.triplets if t.category == category]
        usable = [t for t in triplets if t.target in in_gallery]
        if len(usable) < len(triplets):
            logger.warning("%s: %d queries skipped, their target is not in the gallery",
                           category, len(triplets) - len(usable))
        usable = usable[:max_queries] if max_queries else usable
        if not usable:
            continue
        queries = encode_queries([t.candidate for t in usable],
                                 [eval_caption(t.captions) for t in usable])
        relevant = [t.relevant for t in usable] if all(t.relevant for t in usable) else None
        results[category] = retrieval_metrics(queries, encode_gallery(gallery_ids), gallery_ids,
                                              [t.target for t in usable], relevant)
        results[category]["queries"] = len(usable)
    if results:
        results["average"] = summarise({c: {k: v for k, v in m.items() if k != "queries"}
                                        for c, m in results.items()})
    return results


def evaluate_tags(split: FashionIQSplit, encode_queries: QueryEncoder,
                  encode_gallery: GalleryEncoder, groups: dict[str, Sequence[str]],
                  max_queries: int | None = None) -> dict[str, dict[str, float]]:
    """Metrics of the queries tagged with any of ``groups[name]`` (e.g. "colourway", or the
    changed attributes "pattern", "material"), pooled over categories (query-weighted: a tag
    can be rare in one category), with each category's full gallery as usual."""
    out: dict[str, dict[str, float]] = {}
    for name, tags in groups.items():
        subset = dataclasses.replace(split, triplets=[t for t in split.triplets
                                                      if set(tags) & set(t.tags)])
        per_category = evaluate_split(subset, encode_queries, encode_gallery, max_queries)
        per_category.pop("average", None)
        n = sum(m["queries"] for m in per_category.values())
        if n:
            keys = sorted({k for m in per_category.values() for k in m} - {"queries"})
            out[name] = {k: sum(m[k] * m["queries"] for m in per_category.values()) / n
                         for k in keys} | {"queries": n}
    return out


def evaluate_kept(split: FashionIQSplit, encode_queries: QueryEncoder,
                  encode_gallery: GalleryEncoder, kinds: dict[str, str], k: int = 10,
                  max_queries: int | None = None) -> dict[str, float]:
    """kept@k: the share (%) of the top k that has the reference's kind, when every category's
    gallery is searched at once; the reference itself is left out of its own ranking."""
    gallery_ids = list(dict.fromkeys(i for ids in split.gallery.values() for i in ids))
    triplets = split.triplets
    if max_queries:  # the first max_queries of each category, as evaluate_split does
        triplets = [t for c in split.categories
                    for t in [x for x in split.triplets if x.category == c][:max_queries]]
    triplets = [t for t in triplets if t.candidate in kinds]
    if not triplets or not gallery_ids:
        return {}
    gallery = encode_gallery(gallery_ids)
    queries = encode_queries([t.candidate for t in triplets],
                             [eval_caption(t.captions) for t in triplets])
    ranked = top_k(queries, gallery, k + 1)
    gallery_kinds = np.array([kinds.get(i, "") for i in gallery_ids], dtype=object)
    kept = []
    for t, row in zip(triplets, ranked, strict=True):
        row = [r for r in row if gallery_ids[r] != t.candidate][:k]
        kept.append(float(np.mean(gallery_kinds[row] == kinds[t.candidate])))
    return {f"kept@{k}": 100.0 * float(np.mean(kept)), "queries": len(triplets)}


def item_kinds(annotations: Path | str, split: FashionIQSplit) -> dict[str, str]:
    """id -> garment kind for kept@k: the ``product_type`` column of the dataset's
    metadata.csv where it has one (H&M), else the item's category (demo catalog, products)."""
    kinds = {i: c for c, ids in split.gallery.items() for i in ids}
    types = read_metadata_column(annotations, ("product_type",))
    kinds.update({i: t for i, t in types.items() if i in kinds})
    return kinds


def restrict_to_bank(split: FashionIQSplit, bank: FeatureBank) -> FashionIQSplit:
    """Drop ids whose image failed to decode during feature extraction (and their triplets)."""
    if not any(i in bank.failed for i in split.image_paths):
        return split
    ok = bank.index.__contains__
    return dataclasses.replace(
        split, gallery={c: [i for i in ids if ok(i)] for c, ids in split.gallery.items()},
        triplets=[t for t in split.triplets if ok(t.candidate) and ok(t.target)])


def model_encoders(retriever, bank: FeatureBank, batch_size: int = 128
                   ) -> tuple[QueryEncoder, GalleryEncoder]:
    """Encoding functions of a trained retriever over precomputed backbone features (a
    FeatureBank, or a training run's TrunkBank, whose lookup runs the backbone's tail)."""

    @torch.no_grad()
    def queries(ref_ids: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        out = []
        for i in range(0, len(ref_ids), batch_size):
            whole, crop = bank.lookup(ref_ids[i:i + batch_size])
            out.append(retriever.encode_reference_features(whole, crop, texts[i:i + batch_size]))
        return np.concatenate([o.float().cpu().numpy() for o in out])

    @torch.no_grad()
    def gallery(ids: Sequence[str]) -> np.ndarray:
        out = [retriever.encode_target_features(*bank.lookup(ids[i:i + batch_size]))
               for i in range(0, len(ids), batch_size)]
        return np.concatenate([o.float().cpu().numpy() for o in out])

    return queries, gallery


def format_table(results: dict[str, dict[str, float]]) -> str:
    """Paper-style table: one row per category and the average."""
    metric_names = [k for k in ("R@10", "R@50", "hit@10", "P@10") if any(
        k in m for m in results.values())]
    header = f"{'category':<12}" + "".join(f"{m:>9}" for m in metric_names) + f"{'queries':>9}"
    lines = [header, "-" * len(header)]
    for name, m in results.items():
        cells = "".join(f"{m[k]:>9.2f}" if k in m else f"{'':>9}" for k in metric_names)
        count = f"{int(m['queries']):>9d}" if "queries" in m else f"{'':>9}"
        lines.append(f"{name:<12}{cells}{count}")
    if "average" in results and "mean" in results["average"]:
        lines.append(f"(R@10+R@50)/2 = {results['average']['mean']:.2f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m model.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT)
    parser.add_argument("--data", required=True, help="annotations root (FashionIQ layout)")
    parser.add_argument("--images", help="image folder (default: DATA/images)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--categories", nargs="*", help="default: every category present")
    parser.add_argument("--json", help="write {category: {R@10, R@50, ...}} here")
    parser.add_argument("--cache-dir", default=FEATURE_CACHE_DIR,
                        help="backbone feature cache ('' to disable)")
    parser.add_argument("--max-queries", type=int, help="per category (for quick checks)")
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES,
                        help="auto: CUDA when a GPU is present (bf16 autocast), else the CPU")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from model import load_retriever

    retriever = load_retriever(args.checkpoint, device=args.device)
    images = Path(args.images) if args.images else Path(args.data) / "images"
    split = load_fashioniq(args.data, images, args.split, args.categories)
    bank = extract_features(retriever.encoder, split.image_paths, args.cache_dir or None)
    split = restrict_to_bank(split, bank)
    results = evaluate_split(split, *model_encoders(retriever, bank), args.max_queries)
    print(f"checkpoint {args.checkpoint} (fingerprint {retriever.fingerprint}), "
          f"{args.data} split {args.split}")
    print(format_table(results))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
