"""Every speed figure of the README (Query latency, Indexing throughput, Start-up) in one go.

    source scripts/env.sh && .venv/bin/python -m bench.speed --checkpoint checkpoints/demo

Why one command: the figures must be re-measured whenever the checkpoint changes (a new
network exports and runs differently). Runs, one after another so they never share the CPU:
``bench.engines`` (engine speed per part and recall from pixels), ``bench.index_throughput``
(indexing vs a plain Lite0), ``bench.throughput --parts cold`` (cold start at 100k and 1M
vectors, with and without snapshots) and ``bench.latency`` (query p50/p95 at 100k exact and 1M
HNSW). Each writes its own JSON in bench/results/ (engines_speed, engines_accuracy,
index_throughput, throughput_cold, latency). About 30 minutes on the 2-core machine;
``--quick`` drops the 1M sizes and the accuracy part (about 6 minutes).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence

from bench._common import REPO_ROOT
from project_settings import DEFAULT_CHECKPOINT


def commands(checkpoint: str, quick: bool) -> list[list[str]]:
    py = [sys.executable, "-m"]
    sizes = ["100000"] if quick else ["100000", "1000000"]
    return [
        [*py, "bench.engines", "--checkpoint", checkpoint, "--parts", "speed"],
        *([] if quick else [[*py, "bench.engines", "--checkpoint", checkpoint, "--parts",
                             "accuracy"]]),
        [*py, "bench.index_throughput", "--n", "512", "--checkpoint", checkpoint],
        [*py, "bench.throughput", "--checkpoint", checkpoint, "--parts", "cold",
         "--cold-vectors", *sizes, "--cold-runs", "3"],
        [*py, "bench.latency", "--checkpoint", checkpoint, "--sizes", *sizes,
         "--kinds", "flat", "hnsw", "--flat-up-to", "100000"],
    ]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.speed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT)
    p.add_argument("--quick", action="store_true", help="100k only, no accuracy part")
    a = p.parse_args(argv)
    for cmd in commands(a.checkpoint, a.quick):
        shown = " ".join(["python", *cmd[1:]])
        print(f"\n=== {shown}", flush=True)
        t0 = time.perf_counter()
        code = subprocess.run(cmd, cwd=REPO_ROOT, check=False).returncode
        print(f"=== {time.perf_counter() - t0:.0f} s, exit {code}", flush=True)
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
