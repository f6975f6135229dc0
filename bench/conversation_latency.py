"""What a conversation turn costs: encode_conversation against one encode_query.

    source scripts/env.sh && .venv/bin/python -m bench.conversation_latency

As the app calls them: the checkpoint loaded by ``app.resources.load_model`` (its engine, one
torch thread, warmed up). Each of ``--conversations`` conversations has five turns, each turn a
new H&M photo and a new held-out sentence of the shared feedback generator, so no input of a
timed call was seen before. Turns 1-4 are encoded first (untimed, as the app encoded them when
they were said); then the fifth turn is timed (``encode_conversation`` of all five), and beside
it one ``encode_query`` of another unseen photo and sentence. A "cold" figure times the fifth
turn with the memos emptied, so all five sentences are parsed again and the four earlier
references encoded as targets (the first search of a session restored after an app restart).
Reports p50/p95 of each and the ratio of the p50s; issue 36's floor is 1.5. Writes
bench/results/conversation_latency/<fingerprint>.json.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from bench._common import RESULTS, machine_line, percentiles, run_benchmark, table
from project_settings import DEFAULT_CHECKPOINT

TURNS = 5


@dataclass
class LatencyConfig:
    checkpoint: str = DEFAULT_CHECKPOINT
    data: str = "data/hm"  # its val articles' photos are the turns' images
    images: str = "../shared/data/hm/images"
    articles: str = "../shared/data/hm"  # articles.csv: the attribute values sentences name
    conversations: int = 40
    threads: int = 1  # as the app (app.settings.DEFAULT_TORCH_THREADS)
    seed: int = 0
    out_dir: str = str(RESULTS)


def unseen_inputs(cfg: LatencyConfig, n: int) -> tuple[list, list[str]]:
    """``n`` distinct photos (decoded up front: decoding is not what is compared) and ``n``
    distinct held-out sentences."""
    from bench.multiturn import MultiturnConfig, look, read_garments
    from dataprep import Change, load_fashioniq, phrase
    from imaging import load_image

    val = load_fashioniq(cfg.data, cfg.images, "val")
    ids = sorted(val.image_paths)
    rng = np.random.default_rng(cfg.seed)
    picked = [ids[int(k)] for k in rng.permutation(len(ids))[:n]]
    if len(picked) < n:
        raise ValueError(f"{cfg.data} has {len(picked)} val photos; {n} are needed")
    garments = read_garments(MultiturnConfig(data=cfg.data, images=cfg.images,
                                             articles=cfg.articles), ids)
    values = sorted({(a, v) for item in garments.values() for a, v in look(item).items()})
    sentences: dict[str, None] = {}
    while len(sentences) < n:
        a, v = values[int(rng.integers(len(values)))]
        sentences[phrase(Change(a, "absolute", v), rng, "heldout")] = None
    return [load_image(val.image_paths[i]) for i in picked], list(sentences)


def run(cfg: LatencyConfig) -> dict:
    from app.resources import load_model
    from model.conversation import default_classifier

    retriever = load_model(cfg.checkpoint, threads=cfg.threads, device="cpu")
    n = cfg.conversations
    images, sentences = unseen_inputs(cfg, n * (TURNS + 2))
    # The classifier's text model loads on the first clause the lexicon does not know: the
    # app's warm-up pays that, so does this one (with inputs outside the timed ones).
    retriever.encode_conversation([(images[-1], "warm up"), (images[-2], "something similar")])
    single, turn, cold = [], [], []
    for c in range(n):
        k = c * (TURNS + 2)
        turns = list(zip(images[k:k + TURNS], sentences[k:k + TURNS], strict=True))
        for t in range(1, TURNS):
            retriever.encode_conversation(turns[:t])
        calls = [("turn", lambda turns=turns: retriever.encode_conversation(turns)),
                 ("single", lambda k=k: retriever.encode_query(images[k + TURNS],
                                                                sentences[k + TURNS]))]
        for name, call in calls if c % 2 else calls[::-1]:  # alternate which goes first
            t0 = time.perf_counter()
            call()
            (turn if name == "turn" else single).append(time.perf_counter() - t0)
        default_classifier()._memo.clear()
        retriever.targets_seen.clear()
        cold_turns = [(im, s) for im, s in zip(images[k + 1:k + TURNS + 1],
                                                sentences[k + 1:k + TURNS + 1], strict=True)]
        t0 = time.perf_counter()
        retriever.encode_conversation(cold_turns[:-1] + [(images[k + TURNS + 1],
                                                          sentences[k + TURNS + 1])])
        cold.append(time.perf_counter() - t0)
    stats = {"encode_query": percentiles(single), "encode_conversation (5th turn)":
             percentiles(turn), "encode_conversation (5th turn, cold memo)": percentiles(cold)}
    p50 = stats["encode_query"]["p50_ms"]
    return {"checkpoint": cfg.checkpoint, "fingerprint": retriever.fingerprint,
            "engine": retriever.engine.name, "config": asdict(cfg), "timings": stats,
            "ratio_p50": stats["encode_conversation (5th turn)"]["p50_ms"] / p50,
            "ratio_p50_cold": stats["encode_conversation (5th turn, cold memo)"]["p50_ms"] / p50}


def parse_args(argv: Sequence[str] | None) -> LatencyConfig:
    d = LatencyConfig()
    p = argparse.ArgumentParser(prog="python -m bench.conversation_latency", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("checkpoint", "data", "images", "articles", "out_dir"):
        p.add_argument(f"--{name.replace('_', '-')}", default=getattr(d, name))
    for name in ("conversations", "threads", "seed"):
        p.add_argument(f"--{name}", type=int, default=getattr(d, name))
    return LatencyConfig(**vars(p.parse_args(argv)))


def main(argv: Sequence[str] | None = None) -> dict:
    _, report, path = run_benchmark("conversation_latency", argv, parse_args, run)
    rows = [(k, f"{v['p50_ms']:.1f}", f"{v['p95_ms']:.1f}", v["n"])
            for k, v in report["timings"].items()]
    print(f"\n$ {report['command']}\n{machine_line()}\nengine {report['engine']}\n")
    print(table(rows, ("call", "p50 ms", "p95 ms", "n")))
    print(f"\nratio of p50s: {report['ratio_p50']:.2f} (cold memo: "
          f"{report['ratio_p50_cold']:.2f}); floor 1.5\nwrote {path}")
    return report


if __name__ == "__main__":
    main()
