"""Shared bench helpers: a throwaway embedded SecantusDB, the common main(), result writing,
small table printing.

Every result file records the machine, the git commit and the date, and the load average at
the time: on this shared 2-core CPU the load changes numbers by 2x, so a figure without the load
beside it cannot be compared with anything.

Results are filed by what a reader looks up: ``bench/results/<benchmark>/<fingerprint>.json``,
the fingerprint of the checkpoint measured (``no-checkpoint`` when none was). A run on the
shipped checkpoint also updates ``bench/results/shipped.json``, the index of which file holds
each benchmark's figures for that checkpoint (bench/results/README.md).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import platform
import re
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
from project_settings import DEFAULT_CHECKPOINT, REPO_ROOT

RESULTS = REPO_ROOT / "bench" / "results"
SHIPPED = RESULTS / "shipped.json"  # benchmark -> the file with the shipped checkpoint's figures
NO_CHECKPOINT = "no-checkpoint"  # the file name of a run that measured no checkpoint


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


def tcmalloc_library() -> str | None:
    """The libtcmalloc_minimal.so.4 that scripts/env.sh preloads, when this system has it."""
    try:
        listing = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True,
                                 check=False).stdout
    except OSError:
        return None
    found = re.search(r"(/\S*libtcmalloc_minimal\.so\.4)$", listing, re.MULTILINE)
    return found.group(1) if found and Path(found.group(1)).is_file() else None


def under_project_allocator(module: str, argv: Sequence[str]) -> None:
    """Run this command as the project runs: re-executes ``python -m module argv`` with
    tcmalloc preloaded when the system has it and this process lacks it (scripts/env.sh does the
    same for every PyTorch entry point). Why: glibc malloc slows a plain PyTorch forward 1.3-2.8x
    here while ONNX Runtime barely notices, so a yardstick timed without tcmalloc flattered the
    indexer 2.8x (bench.index_throughput: 2.56x without, 0.92x with tcmalloc on both sides).
    Call it from ``if __name__ == "__main__"`` only: it replaces the running process."""
    library = tcmalloc_library()
    preload = os.environ.get("LD_PRELOAD", "")
    if library is None or "tcmalloc" in preload:
        return
    logging.getLogger(__name__).warning("re-running under %s, as scripts/env.sh runs the project",
                                        library)
    env = {**os.environ, "LD_PRELOAD": ":".join(x for x in (library, preload) if x)}
    os.execve(sys.executable, [sys.executable, "-m", module, *argv], env)


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
    line (the README quotes it), write ``<out_dir>/NAME/<fingerprint>.json``. ``module`` is the
    command's module (``bench.NAME`` by default) when the result is named otherwise. The
    fingerprint is the report's own, else the one stored with ``cfg.checkpoint``. Returns
    (config, report, path)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s")
    cfg = parse_args(argv)
    started = time.perf_counter()
    report = run(cfg)
    report["command"] = f"python -m {module or 'bench.' + name} " + shlex.join(argv)
    report["seconds"] = time.perf_counter() - started
    fingerprint = report.get("fingerprint") or stored_fingerprint(getattr(cfg, "checkpoint", None))
    return cfg, report, write_results(name, report, cfg.out_dir, fingerprint)


def stored_fingerprint(checkpoint: str | Path | None) -> str | None:
    """The fingerprint a checkpoint's config.json names (no weights loaded); None without one."""
    if checkpoint is None:
        return None
    path = Path(checkpoint)
    config = path / "config.json" if path.is_dir() else path.with_name("config.json")
    try:
        return json.loads(config.read_text())["fingerprint"]
    except (OSError, ValueError, KeyError):
        return None


def result_path(name: str, fingerprint: str | None, out_dir: Path | str = RESULTS) -> Path:
    """Where a run of benchmark ``name`` on the checkpoint ``fingerprint`` is filed."""
    return Path(out_dir) / name / f"{fingerprint or NO_CHECKPOINT}.json"


def write_results(name: str, payload: dict, out_dir: Path | str = RESULTS,
                  fingerprint: str | None = None) -> Path:
    """Write ``payload`` (plus the machine record) to ``result_path``; a run of the shipped
    checkpoint into bench/results also becomes that benchmark's entry in shipped.json."""
    path = result_path(name, fingerprint, out_dir)
    _write_json(path, {**payload, "machine": machine()})
    shipped = stored_fingerprint(REPO_ROOT / DEFAULT_CHECKPOINT)
    if fingerprint and fingerprint == shipped and Path(out_dir).resolve() == RESULTS.resolve():
        index = json.loads(SHIPPED.read_text()) if SHIPPED.is_file() else {}
        if index.get("fingerprint") == shipped:  # the index describes this checkpoint
            index.setdefault("results", {})[name] = {"file": path.relative_to(RESULTS).as_posix()}
            _write_json(SHIPPED, index)
        else:
            logging.getLogger(__name__).warning(
                "%s describes checkpoint %s, not the shipped %s: update its fingerprint and "
                "entries by hand", SHIPPED, index.get("fingerprint"), shipped)
    return path


def shipped_result(name: str) -> Path:
    """The committed result file holding benchmark ``name``'s figures for the shipped
    checkpoint (or, where noted in shipped.json, for the last checkpoint it was measured on)."""
    return RESULTS / json.loads(SHIPPED.read_text())["results"][name]["file"]


def _write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    tmp.replace(path)


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
