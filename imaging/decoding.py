"""Decoding image files in DataLoader workers, with per-item error capture: the one decoder.

Decode -> preprocess (-> thumbnail) happens in worker processes, so the main process only runs
the model (the expensive part) and writes results. Why per-item error capture: one corrupt file
must not kill a worker (and with it the run); the failure travels back with the batch and is
counted and listed by the caller.

Why the workers watch their parent: a DataLoader worker blocked on a full result queue never
notices that the main process died, so every SIGKILLed or crashed build used to leave its
decoding workers behind, blocked forever (~380 MB each). Each worker now asks the kernel to
SIGKILL it when its parent dies (``prctl(PR_SET_PDEATHSIG)``, Linux) and also runs a small
thread that exits the worker once its parent process id changes (any POSIX system, and the
fallback if the kernel call is unavailable).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from imaging.loading import ImageLoadError, load_image
from imaging.thumbnails import make_thumbnail

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # linux/prctl.h
PARENT_CHECK_S = 0.5  # how often the fallback watchdog looks at the parent pid


@dataclass
class DecodedBatch:
    """A decoded batch: tensors of the items that worked, errors of those that did not."""

    ok: list[int]  # positions (into the list of paths) of decoded items
    tensors: torch.Tensor | None  # (len(ok), 3, H, W)
    thumbnails: list[bytes]  # one per ok item (empty when thumbnails were not asked for)
    failed: list[tuple[int, str]]  # (position, reason)


class ImageFiles(Dataset):
    """Image files -> (position, preprocessed tensor, thumbnail, error) in a worker."""

    def __init__(self, paths: Sequence[Path], preprocess: Callable[[Image.Image], torch.Tensor],
                 thumbnails: bool = True):
        self.paths = list(paths)
        self.preprocess = preprocess
        self.thumbnails = thumbnails

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            image = load_image(self.paths[i])
            thumbnail = make_thumbnail(image) if self.thumbnails else b""
            return i, self.preprocess(image), thumbnail, None
        except (ImageLoadError, OSError, ValueError) as exc:
            return i, None, b"", f"{type(exc).__name__}: {exc}"


def collate(samples: list) -> DecodedBatch:
    ok = [s for s in samples if s[3] is None]
    return DecodedBatch(
        ok=[s[0] for s in ok],
        tensors=torch.stack([s[1] for s in ok]) if ok else None,
        thumbnails=[s[2] for s in ok if s[2]],
        failed=[(s[0], s[3]) for s in samples if s[3] is not None],
    )


def die_with_parent(parent_pid: int) -> None:
    """Make the calling process end when ``parent_pid`` (its parent) dies, however it dies.

    Called first thing in every decoding worker (DataLoader ``worker_init_fn``)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
                log.debug("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
        except OSError:
            log.debug("prctl unavailable; relying on the parent watchdog")
    if os.getppid() != parent_pid:  # the parent died before the kernel was asked to watch
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="parent-watchdog",
                     daemon=True).start()


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(PARENT_CHECK_S)
    os._exit(1)  # orphaned: re-parented to init or a subreaper


def _init_worker(parent_pid: int, worker_id: int) -> None:
    die_with_parent(parent_pid)


def decode_batches(paths: Sequence[Path], preprocess: Callable[[Image.Image], torch.Tensor],
                   batch_size: int, workers: int, thumbnails: bool = True) -> DataLoader:
    """Ordered batches (:class:`DecodedBatch`) of decoded images; DataLoader keeps the order."""
    return DataLoader(
        ImageFiles(paths, preprocess, thumbnails), batch_size=batch_size, shuffle=False,
        num_workers=workers, collate_fn=collate, persistent_workers=False,
        prefetch_factor=4 if workers else None,
        worker_init_fn=functools.partial(_init_worker, os.getpid()) if workers else None,
    )
