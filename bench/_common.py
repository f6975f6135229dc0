"""Shared bench helpers: a throwaway embedded SecantusDB, the common main(), result writing,
small table printing.

Every result file records the machine, the git commit and the date, and the load average at
the time: on this shared 2-core CPU the load changes numbers by 2x, so a figure without the load
beside it cannot be compared with anything.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import platform
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from indexer import EmbeddedConfig, EmbeddedServer

REPO_ROOT = Path(__file__).resolve().parents[1]

RESULTS = REPO_ROOT / "bench" / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def temporary_server(cache_size: str | None = None) -> Iterator[EmbeddedServer]:
    """A fresh embedded server on a free port with its data in a temp dir (removed after)."""
    with tempfile.TemporaryDirectory(prefix="bench-secantus-") as home:
        extra = {"cache_size": cache_size} if cache_size else {}
        server = EmbeddedServer(EmbeddedConfig(home=Path(home), port=free_port(), **extra))
        server.start()
        try:
            yield server
        finally:
            server.stop()


def git_commit() -> str:
    """HEAD's short hash, with '+dirty' when tracked files differ from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                              check=False).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """What produced a number: hardware, software, commit, date and how busy the CPU was."""
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "hostname": socket.gethostname(), "python": platform.python_version(),
            "torch": torch.__version__, "commit": git_commit(),
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "tcmalloc": "tcmalloc" in os.environ.get("LD_PRELOAD", "")}


def machine_line() -> str:
    m = machine()
    return (f"{m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads), "
            f"commit {m['commit']}, {m['date']}, load average "
            f"{' '.join(f'{x:.2f}' for x in m['load_average'])}"
            f"{'' if m['tcmalloc'] else ', WITHOUT tcmalloc (source scripts/env.sh)'}")


def run_benchmark(name: str, argv: Sequence[str] | None, parse_args: Callable,
                  run: Callable[..., dict], module: str | None = None
                  ) -> tuple[object, dict, Path]:
    """What every ``python -m bench.NAME`` main does: log, run timed, record the exact command
    line (the README quotes it), write ``NAME.json``. ``module`` names the bench when its
    result file is named otherwise. Returns (config, report, path)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s")
    cfg = parse_args(argv)
    started = time.perf_counter()
    report = run(cfg)
    report["command"] = f"python -m bench.{module or name} " + shlex.join(argv)
    report["seconds"] = time.perf_counter() - started
    return cfg, report, write_results(name, report, cfg.out_dir)


def write_results(name: str, payload: dict, out_dir: Path | str = RESULTS) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({**payload, "machine": machine()}, indent=2, default=str) + "\n")
    tmp.replace(path)
    return path


def table(rows: Sequence[Sequence], header: Sequence) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), fmt.format(*("-" * w for w in widths))]
                     + [fmt.format(*r) for r in rows])


def percentiles(samples_s: Sequence[float]) -> dict[str, float]:
    """p50/p95/mean of durations given in seconds, returned in milliseconds."""
    ms = 1e3 * np.asarray(samples_s, dtype=np.float64)
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "mean_ms": float(ms.mean()), "n": int(len(ms))}
