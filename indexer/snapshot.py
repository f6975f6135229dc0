"""The loaded search index on disk: written once per build, memory-mapped by every app start.

Why: loading a million vectors from MongoDB into FAISS took 84 s (exact) and 160 s (HNSW graph
build) here, paid again by every restart and every app replica. A snapshot holds exactly what
:class:`indexer.search.CatalogSearch` keeps in memory (the FAISS index, the ids sorted by
category, the category ranges, the HNSW label map and, unless the index stores them as float32
itself, the sorted vectors), so a start maps the files instead of rebuilding anything; replicas
sharing one volume share the page cache too.

Keyed by what makes it valid: the collection, the model fingerprint, the build record it was
loaded at (its ``_id``) and the index parameters. MongoDB stays the source of truth: a snapshot
that is missing, stale (another build), truncated or corrupt (sizes and CRC32 checked against
its manifest) is ignored with one log line saying which, and the caller reloads from the
database and writes a fresh one.

Atomic by construction: every file is written into a temporary folder beside the final one,
the manifest last, and the folder is renamed into place (rename is atomic on one file system),
so a reader sees a complete snapshot or none, even with several replicas writing at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
import uuid
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np

log = logging.getLogger(__name__)

FP16_SIMD_WIDTH = 8  # the half-precision scan's vectors are padded to a multiple of this


def fp16_scan_dim(dim: int) -> int:
    """``dim`` rounded up to FAISS's half-precision SIMD width, the width of the exact scan's
    copies: its fp16 scan of vectors whose length is not a multiple of 8 takes a scalar path
    (the demo checkpoint's 654 dimensions, 100k vectors: search p50 57.1 ms unpadded, 4.9 ms
    padded; bench/latency.py, bench/results/latency/e867741d9c89f4f5{-unpadded,}.json)."""
    return -(-dim // FP16_SIMD_WIDTH) * FP16_SIMD_WIDTH


FORMAT = 1  # bump when the files or their meaning change
MANIFEST = "manifest.json"
CRC_CHUNK = 1 << 24  # bytes per zlib.crc32 call (2.4 GB/s here: ~0.4 s per million vectors)
TMP_PREFIX = ".tmp-"
STALE_TMP_S = 3600.0  # temporary folders older than this are leftovers of a killed writer


@dataclass(frozen=True)
class SnapshotKey:
    """What a snapshot must match to be used."""

    collection: str  # db.collection of the items
    fingerprint: str  # model fingerprint of the vectors
    build_id: str  # _id of the finished build record the vectors were loaded at
    kind: str  # SearchConfig.index: auto | flat | hnsw
    params: str  # index parameters that shape the stored index (HNSW M, efConstruction)

    @property
    def folder(self) -> str:
        params = hashlib.sha256(self.params.encode()).hexdigest()[:8]
        return f"{self.fingerprint}-{self.build_id}-{self.kind}-{params}"


@dataclass
class Snapshot:
    """A loaded snapshot: the arrays are memory-mapped views, valid while ``index`` lives."""

    ids: np.ndarray  # (N,) str, sorted by category
    vectors: np.ndarray  # (N, D) float32, same order
    ranges: dict[str, tuple[int, int]]
    index: faiss.Index
    labels: np.ndarray | None  # HNSW label -> position; None for flat
    seconds: float = 0.0


class _Pinned(np.ndarray):
    """An array over memory another object owns (the FAISS index's mapping): it keeps that
    owner alive, and so do its slices and views (their ``base`` chain reaches it)."""

    owner: object = None


class SnapshotError(RuntimeError):
    """A snapshot on disk cannot be used: ``reason`` is missing, stale, truncated or corrupt."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(CRC_CHUNK):
            crc = zlib.crc32(chunk, crc)
    return crc


class SnapshotStore:
    """Snapshots under ``root``: one folder per collection, one sub-folder per key."""

    def __init__(self, root: str | Path, verify: str = "full"):
        if verify not in ("full", "size"):
            raise ValueError(f"verify must be 'full' (sizes + CRC32) or 'size', got {verify!r}")
        self.root = Path(root)
        self.verify = verify

    def folder(self, key: SnapshotKey) -> Path:
        return self.root / _safe(key.collection) / key.folder

    # ---- reading ---------------------------------------------------------------------------
    def load(self, key: SnapshotKey) -> Snapshot:
        """The snapshot of ``key``, memory-mapped; raises SnapshotError saying why not."""
        t0 = time.perf_counter()
        folder = self.folder(key)
        if not folder.is_dir():
            others = self._others(key)
            if others:
                raise SnapshotError("stale", f"{folder.parent} holds {others[0].name}, not "
                                    f"{folder.name} (another build or model)")
            raise SnapshotError("missing", f"no snapshot at {folder}")
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
        except (OSError, ValueError) as exc:
            raise SnapshotError("corrupt", f"{folder / MANIFEST} unreadable: {exc}") from exc
        if manifest.get("format") != FORMAT or manifest.get("key") != asdict(key):
            raise SnapshotError("stale", f"{folder} was written for {manifest.get('key')} "
                                f"(format {manifest.get('format')})")
        self._check_files(folder, manifest)
        try:
            snap = self._read(folder, manifest)
        except (RuntimeError, OSError, ValueError) as exc:  # FAISS raises RuntimeError
            raise SnapshotError("corrupt", f"{folder}: {exc}") from exc
        snap.seconds = time.perf_counter() - t0
        return snap

    def _check_files(self, folder: Path, manifest: dict) -> None:
        for name, want in manifest["files"].items():
            path = folder / name
            size = path.stat().st_size if path.is_file() else -1
            if size != want["size"]:
                raise SnapshotError("truncated", f"{path} has {size} bytes, the manifest says "
                                    f"{want['size']}")
            if self.verify == "full" and _crc32(path) != want["crc32"]:
                raise SnapshotError("corrupt", f"{path} does not match its CRC32")

    @staticmethod
    def _read(folder: Path, manifest: dict) -> Snapshot:
        index = faiss.read_index(str(folder / "index.faiss"),
                                 faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
        ids = np.load(folder / "ids.npy", mmap_mode="r")
        n, dim = manifest["count"], manifest["dim"]
        # the half-precision scan's copies are padded (fp16_scan_dim), the float32 index is not
        width = fp16_scan_dim(dim) if isinstance(index, faiss.IndexScalarQuantizer) else dim
        if index.ntotal != n or len(ids) != n or index.d != width:
            raise ValueError(f"index holds {index.ntotal} x {index.d}, ids {len(ids)}, manifest "
                             f"{n} x {dim}")
        files = manifest["files"]  # HNSW: labels, whatever an older manifest's kind says
        labels = np.load(folder / "labels.npy", mmap_mode="r") if "labels.npy" in files else None
        if "vectors.npy" in files:  # HNSW, half-precision exact scan
            vectors = np.load(folder / "vectors.npy", mmap_mode="r")
        else:  # a float32 flat index's own storage, viewed without a copy (sorted order)
            flat = faiss.downcast_index(index)
            codes = faiss.rev_swig_ptr(flat.codes.data(), flat.codes.size())
            vectors = codes.view(np.float32).reshape(n, dim).view(_Pinned)
            vectors.owner = index  # the mapping lives as long as any view of these vectors
        ranges = {c: (int(lo), int(hi)) for c, (lo, hi) in manifest["ranges"].items()}
        return Snapshot(ids, vectors, ranges, index, labels)

    def _others(self, key: SnapshotKey) -> list[Path]:
        parent = self.folder(key).parent
        if not parent.is_dir():
            return []
        return sorted(p for p in parent.iterdir() if p.is_dir()
                      and p.name.startswith(f"{key.fingerprint}-"))

    # ---- writing ---------------------------------------------------------------------------
    def save(self, key: SnapshotKey, ids: np.ndarray, vectors: np.ndarray,
             ranges: dict[str, tuple[int, int]], index: faiss.Index,
             labels: np.ndarray | None) -> Path:
        """Write the snapshot of ``key`` atomically and delete this fingerprint's older ones.

        When another process wrote the same key first, its snapshot is kept and ours dropped."""
        final = self.folder(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        self._remove_leftovers(final.parent)
        tmp = final.parent / f"{TMP_PREFIX}{uuid.uuid4().hex[:12]}"
        tmp.mkdir()
        try:
            faiss.write_index(index, str(tmp / "index.faiss"))
            np.save(tmp / "ids.npy", np.asarray(ids, dtype=str))
            if labels is not None:
                np.save(tmp / "labels.npy", np.asarray(labels, dtype=np.int64))
            if not isinstance(index, faiss.IndexFlat):  # its storage is not the float32 vectors
                np.save(tmp / "vectors.npy", np.ascontiguousarray(vectors, dtype=np.float32))
            files = {p.name: {"size": p.stat().st_size, "crc32": _crc32(p)}
                     for p in sorted(tmp.iterdir())}
            kind = "flat" if labels is None else "hnsw"  # what was built, not the setting
            manifest = {"format": FORMAT, "key": asdict(key), "kind": kind,
                        "count": int(len(ids)), "dim": int(vectors.shape[1]),
                        "ranges": {c: list(r) for c, r in ranges.items()}, "files": files,
                        "written_at": time.time(), "pid": os.getpid()}
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
            for p in tmp.iterdir():
                with open(p, "rb") as f:
                    os.fsync(f.fileno())
            if final.is_dir():  # a damaged (or concurrently written) one: replace it
                old = final.parent / f"{TMP_PREFIX}old-{uuid.uuid4().hex[:12]}"
                try:
                    final.rename(old)
                    shutil.rmtree(old, ignore_errors=True)
                except OSError:
                    pass
            try:
                tmp.rename(final)
            except OSError:  # another writer won meanwhile: its snapshot is as good as ours
                shutil.rmtree(tmp, ignore_errors=True)
                if not final.is_dir():
                    raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        for old in self._others(key):
            if old != final:  # an open mapping of it stays valid after the unlink (POSIX)
                shutil.rmtree(old, ignore_errors=True)
        return final

    @staticmethod
    def _remove_leftovers(parent: Path) -> None:
        now = time.time()
        for p in parent.glob(f"{TMP_PREFIX}*"):
            try:
                if now - p.stat().st_mtime > STALE_TMP_S:
                    shutil.rmtree(p, ignore_errors=True)
            except OSError:
                pass
