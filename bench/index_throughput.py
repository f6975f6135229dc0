"""End-to-end indexing throughput (images/s) vs the model's own forward throughput.

    source scripts/env.sh && .venv/bin/python -m bench.index_throughput [--n 512] [--size 256]

Generates N product-like JPEGs of SIZE px, then measures on this CPU: a plain eager timm
``tf_efficientnet_lite0`` forward at the same batch (the yardstick, timed before and after the
builds), the model's backbone alone and its full target encoder (backbone + target block) on
preprocessed tensors with the retriever's engine (model.engines; ``--engine``, default what
``python -m indexer build`` uses), and ``build_index`` end to end, the code the CLI runs
(decode in DataLoader workers, embed, thumbnails, upserts in a writer thread into a fresh
embedded SecantusDB). Prints a table with ratios to the plain Lite0 and writes
bench/results/index_throughput/<fingerprint>.json.

Both sides run in this one process, so under one allocator and one torch thread count (both
recorded). The command re-runs itself under tcmalloc when the system has it and LD_PRELOAD
lacks it, as scripts/env.sh runs ``python -m indexer build``: timed with glibc malloc the plain
PyTorch forward is 1.3-2.8x slower while the ONNX engine is not, which once made the indexer
look 2.56x faster than the yardstick instead of 0.92x.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from pymongo import ReplaceOne

from bench._common import (
    machine_line,
    table,
    temporary_server,
    under_project_allocator,
    write_results,
)
from bench.engines import plain_lite0
from imaging import load_image, make_thumbnail
from indexer import (
    BuildConfig,
    CatalogStore,
    build_index,
    connect,
    discover,
    item_document,
    item_metadata,
)
from model import ModelConfig, build_retriever, load_retriever
from project_settings import DEFAULT_CHECKPOINT


def make_images(folder: Path, n: int, size: int) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        img = Image.new("RGB", (size, size), (245, 245, 245))
        d = ImageDraw.Draw(img)
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        w, top = size * rng.uniform(0.2, 0.35), size * rng.uniform(0.08, 0.2)
        d.polygon([(size / 2 - w / 2, top), (size / 2 + w / 2, top), (size / 2 + w, size * 0.92),
                   (size / 2 - w, size * 0.92)], fill=colour)
        d.rectangle([size / 2 - w, top, size / 2 + w, top + size / 8], fill=colour)
        path = folder / f"img{i:05d}.jpg"
        img.save(path, quality=90)
        paths.append(path)
    return paths


def timed(fn, repeat: int = 1) -> float:
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat


def measure(retriever, n: int = 512, size: int = 256, batch: int = 32,
            workers: tuple[int, ...] = (2, 1)) -> dict:
    """Images/s of each stage and of build_index end to end (see the module docstring)."""
    with tempfile.TemporaryDirectory(prefix="bench-images-") as tmp:
        paths = make_images(Path(tmp), n, size)
        sample = torch.stack([retriever.preprocess(load_image(p)) for p in paths[:batch]])
        lite0 = plain_lite0()
        threads = {"yardstick": torch.get_num_threads()}
        with torch.inference_mode():
            lite0(sample)  # warm-up
            lite0_before = timed(lambda: lite0(sample), 3)
            retriever.engine.grid(sample)  # warm-up
            backbone_s = timed(lambda: retriever.engine.grid(sample), 3)
        retriever.encode_target_tensors(sample)
        encode_s = timed(lambda: retriever.encode_target_tensors(sample), 3)
        torch.set_num_threads(1)  # as in a DataLoader worker
        decode_s = timed(lambda: [(retriever.preprocess(im := load_image(p)), make_thumbnail(im))
                                  for p in paths[:64]])
        torch.set_num_threads(threads["yardstick"])

        runs = []
        with temporary_server() as server:
            client = connect(server.uri, directConnection=True)
            vec = retriever.encode_target_tensors(sample)
            thumb = make_thumbnail(load_image(paths[0]))
            meta = item_metadata("c", "t", {}, paths[0])
            docs = [item_document(f"w{i}", meta, sha256="0" * 64, vector=vec[i % len(vec)],
                                  fingerprint="m", thumbnail=thumb) for i in range(n)]
            wcoll = client["bench"]["writes"]
            write_s = timed(lambda: [wcoll.bulk_write([ReplaceOne({"_id": d["_id"]}, d, upsert=True)
                                                       for d in docs[i:i + batch]])
                                     for i in range(0, len(docs), batch)])
            for w in workers:
                coll = client["bench"][f"items_w{w}"]
                store = CatalogStore.from_collection(coll)
                cfg = BuildConfig(batch_size=batch, workers=w, progress=False)
                threads["build"] = torch.get_num_threads()
                report = build_index(discover(Path(tmp)), retriever, store, cfg)
                rerun = build_index(discover(Path(tmp)), retriever, store, cfg)
                runs.append({"workers": w, "images_per_s": report.images_per_s,
                             "seconds": report.seconds, "embedded": report.embedded,
                             "rerun_seconds": rerun.seconds, "rerun_embedded": rerun.embedded})
            client.close()
        with torch.inference_mode():
            lite0_after = timed(lambda: lite0(sample), 3)
    lite0_ips = batch / ((lite0_before + lite0_after) / 2)
    for r in runs:
        r["vs_plain_lite0"] = r["images_per_s"] / lite0_ips
    return {"n": n, "size": size, "batch": batch, "model": retriever.fingerprint,
            "engine": retriever.engine.name, "torch_threads": threads,
            "allocator": "tcmalloc" if "tcmalloc" in os.environ.get("LD_PRELOAD", "") else
            "glibc malloc",
            "plain_lite0_images_per_s": lite0_ips,
            "plain_lite0_images_per_s_before_after": [batch / lite0_before,
                                                      batch / lite0_after],
            "backbone_images_per_s": batch / backbone_s,
            "target_encoder_images_per_s": batch / encode_s,
            "decode_images_per_s": 64 / decode_s, "db_upsert_images_per_s": n / write_s,
            "load_average_1m": os.getloadavg()[0], "builds": runs}


def rows_of(result: dict) -> list[tuple]:
    batch, lite0 = result["batch"], result.get("plain_lite0_images_per_s")
    rows = [(f"plain eager timm Lite0 forward (batch {batch})", f"{lite0:.1f}",
             "the yardstick (mean of before/after the builds)")] if lite0 else []
    engine = result.get("engine", "eager")
    rows += [(f"backbone forward only (batch {batch}, {engine})",
              f"{result['backbone_images_per_s']:.1f}", "frozen CNN alone"),
             (f"target encoder (backbone + target block, {engine})",
              f"{result['target_encoder_images_per_s']:.1f}", "model ceiling"),
            ("decode+preprocess+thumbnail, 1 worker", f"{result['decode_images_per_s']:.1f}",
             "1 torch thread"),
            ("MongoDB upsert only (SecantusDB)", f"{result['db_upsert_images_per_s']:.1f}",
             f"bulk_write of {batch} docs")]
    for r in result["builds"]:
        ratio = f"{r['vs_plain_lite0']:.2f}x plain Lite0; " if "vs_plain_lite0" in r else ""
        rows.append((f"build_index end to end, {r['workers']} decode workers",
                     f"{r['images_per_s']:.1f}",
                     f"{ratio}{r['seconds']:.1f} s; re-run (nothing to embed) "
                     f"{r['rerun_seconds']:.2f} s"))
    return rows


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.index_throughput", description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=512)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--workers", type=int, nargs="+", default=[2, 1])
    p.add_argument("--checkpoint", type=Path, default=Path(DEFAULT_CHECKPOINT),
                   help="falls back to a freshly built default model when absent")
    p.add_argument("--engine", default=None,
                   help="model.engines engine (default: ENCODER_ENGINE or auto, as the CLI)")
    p.add_argument("--out-dir", type=Path, default=None,
                   help="results root (default bench/results)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    t0 = time.perf_counter()
    if (args.checkpoint / "config.json").is_file():
        retriever = load_retriever(args.checkpoint, engine=args.engine)
        source = str(args.checkpoint)
    else:
        retriever, source = build_retriever(ModelConfig(), seed=0), "build_retriever(ModelConfig())"
    load_s = time.perf_counter() - t0
    result = measure(retriever, args.n, args.size, args.batch, tuple(args.workers))
    print(f"\n{args.n} images of {args.size} px, model {retriever.fingerprint} ({source}), "
          f"loaded in {load_s:.1f} s; {result['allocator']}, torch threads "
          f"{result['torch_threads']}\n{machine_line()}\n")
    print(table(rows_of(result), ("stage", "images/s", "note")))
    best = max(result["builds"], key=lambda r: r["images_per_s"])
    enc = result["target_encoder_images_per_s"]
    print(f"\nend-to-end / target-encoder ceiling: {best['images_per_s'] / enc:.0%}; "
          f"floor >= 1.2x a plain eager Lite0 batch-{args.batch} forward: "
          f"{best['vs_plain_lite0']:.2f}x -> "
          f"{'met' if best['vs_plain_lite0'] >= 1.2 else 'NOT met'}")
    command = "python -m bench.index_throughput " + " ".join(sys.argv[1:] if argv is None
                                                              else argv)
    extra = {"out_dir": args.out_dir} if args.out_dir else {}
    out = write_results("index_throughput", {**result, "model_source": source,
                                             "model_load_s": load_s, "command": command.strip()},
                        fingerprint=retriever.fingerprint, **extra)
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    under_project_allocator("bench.index_throughput", sys.argv[1:])
    main()
