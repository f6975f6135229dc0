"""The CUDA path, checked on a tiny random model: a few training steps on the GPU, then the same
queries and targets encoded on CUDA (bf16 autocast) and on the CPU, compared.

    python -m tests.system.cuda_check [--steps 5] [--tolerance 0.05]

Without a GPU it says so, writes that to bench/results/cuda_check/no-checkpoint.json and exits 0:
the project builds and passes its tests on the CPU; this script is what a GPU machine runs once
(tests/test_cuda_check.py runs the same code with the CPU standing in for the GPU).
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench._common import RESULTS, run_benchmark, table
from model import ModelConfig, build_retriever, load_retriever
from model.device import autocast
from model.loss import make_loss
from model.optim import adamw


@dataclass
class CudaCheckConfig:
    steps: int = 5  # training steps on the GPU
    batch: int = 8
    tolerance: float = 0.05  # max |CPU - CUDA| per vector component (bf16 has ~3 digits)
    seed: int = 0
    device: str = "cuda"  # the device compared with the CPU ("cpu" runs the same code: tests)
    out_dir: str = str(RESULTS)


def _images(n: int, rng: np.random.Generator) -> list[Image.Image]:
    """Plain-background images with one coloured block each (a product photo in miniature)."""
    out = []
    for _ in range(n):
        pixels = np.full((96, 96, 3), 245, np.uint8)
        x, y = rng.integers(8, 40, 2)
        pixels[y:y + 48, x:x + 40] = rng.integers(0, 255, 3)
        out.append(Image.fromarray(pixels))
    return out


def run(cfg: CudaCheckConfig) -> dict:
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        return {"cuda": False, "verdict": "no CUDA GPU visible: the CUDA path was not checked "
                "(training, evaluation, indexing and the app run on the CPU here)"}
    rng = np.random.default_rng(cfg.seed)
    device = torch.device(cfg.device)
    retriever = build_retriever(ModelConfig.tiny(), cfg.seed).to(device)
    retriever.set_trainable()
    loss_fn = make_loss(retriever.cfg).to(device)
    optimizer = adamw(retriever.net.named_parameters(), 1e-3, 0.01, extra=loss_fn.parameters())
    words = ["red", "blue", "long sleeves", "v-neck", "striped"]
    losses = []
    retriever.net.train()
    for _ in range(cfg.steps):
        refs, targets = _images(cfg.batch, rng), _images(cfg.batch, rng)
        texts = [f"is {words[int(i)]}" for i in rng.integers(0, len(words), cfg.batch)]
        pixels = [torch.stack([retriever.preprocess(im) for im in ims]).to(device)
                  for ims in (refs, targets)]
        (rw, rc), (tw, tc) = (retriever.encoder(p) for p in pixels)
        tokens = {k: v.to(device) for k, v in retriever.tokenize(texts).items()}
        with autocast(device):
            f_ref = retriever.net.encode_reference(rw, rc, **tokens)
            f_tar = retriever.net.encode_target(tw, tc)
        loss = loss_fn(f_ref.float(), f_tar.float())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    retriever.net.eval()
    retriever.invalidate_fingerprint()
    with tempfile.TemporaryDirectory(prefix="cuda-check-") as tmp:
        retriever.save(Path(tmp) / "ck")
        on_cpu = load_retriever(Path(tmp) / "ck", device="cpu")
        on_gpu = load_retriever(Path(tmp) / "ck", device=cfg.device)
    images, texts = _images(16, rng), [f"is {w}" for w in words * 4][:16]
    diffs = {}
    for name, encode in (("queries", lambda r: r.encode_queries(images, texts)),
                         ("targets", lambda r: r.encode_targets(images))):
        a, b = encode(on_cpu), encode(on_gpu)
        diffs[name] = {"max_abs_diff": float(np.abs(a - b).max()),
                       "min_cosine": float((a * b).sum(axis=1).min())}
    ok = all(d["max_abs_diff"] <= cfg.tolerance for d in diffs.values())
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else str(device)
    return {"cuda": True, "gpu": gpu, "train_losses": losses,
            "fingerprints_equal": on_cpu.fingerprint == on_gpu.fingerprint,
            "diffs": diffs, "within_tolerance": ok and on_cpu.fingerprint == on_gpu.fingerprint,
            "verdict": "CUDA and CPU agree within tolerance" if ok else "CUDA and CPU DIFFER"}


def parse_args(argv: Sequence[str] | None) -> CudaCheckConfig:
    d = CudaCheckConfig()
    p = argparse.ArgumentParser(prog="python -m tests.system.cuda_check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--tolerance", type=float, default=d.tolerance)
    p.add_argument("--device", default=d.device, help="cuda, cuda:N (cpu: a dry run)")
    p.add_argument("--out-dir", default=d.out_dir)
    a = p.parse_args(argv)
    return CudaCheckConfig(steps=a.steps, tolerance=a.tolerance, device=a.device,
                           out_dir=a.out_dir)


def main(argv: Sequence[str] | None = None) -> dict:
    cfg, report, path = run_benchmark("cuda_check", argv, parse_args, run,
                                      module="tests.system.cuda_check")
    if report["cuda"]:
        print(table([(n, f"{d['max_abs_diff']:.4f}", f"{d['min_cosine']:.4f}")
                     for n, d in report["diffs"].items()], ("vectors", "max |cpu-cuda|",
                                                            "min cosine")))
        print(f"{report['gpu']}: {len(report['train_losses'])} training steps, losses "
              + ", ".join(f"{x:.3f}" for x in report["train_losses"]))
    print(report["verdict"])
    print(f"wrote {path}")
    if report["cuda"] and not report["within_tolerance"]:
        raise SystemExit(1)
    return report


if __name__ == "__main__":
    main()
