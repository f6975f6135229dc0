"""Shared bench helpers: a throwaway embedded SecantusDB and result writing."""

from __future__ import annotations

import json
import platform
import socket
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from indexer.embedded_db import EmbeddedConfig, EmbeddedServer  # noqa: E402

RESULTS = REPO_ROOT / "bench" / "results"


@contextmanager
def temporary_server():
    """A fresh embedded server on a free port with its data in a temp dir (removed after)."""
    with tempfile.TemporaryDirectory(prefix="bench-secantus-") as home, socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        server = EmbeddedServer(EmbeddedConfig(home=Path(home), port=port))
        server.start()
        try:
            yield server
        finally:
            server.stop()


def machine() -> dict:
    return {"cpu": platform.processor() or platform.machine(), "cores": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__}


def write_results(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({**payload, "machine": machine()}, indent=2, default=str) + "\n")
    return path


def table(rows: list[tuple], header: tuple) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), fmt.format(*("-" * w for w in widths))]
                     + [fmt.format(*r) for r in rows])
