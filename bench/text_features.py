"""Frozen sentence embeddings of feedback text for the baselines (mean-pooled MiniLM).

Why a cache: the baselines train on ~60k distinct caption strings (the four training variants
of every triplet, as dataprep.train_caption draws them); embedding them is a minute of
CPU, so each distinct string is embedded once and kept on disk beside the image features.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from model.pretrained import load_text_model, text_model_is_pretrained
from project_settings import FEATURE_CACHE_DIR

logger = logging.getLogger(__name__)


@dataclass
class TextConfig:
    model: str = "all-MiniLM-L6-v2"  # registry name (model.pretrained); "tiny-bert" for tests
    max_tokens: int = 40  # as ModelConfig.max_text_tokens: same truncation as FashionVLP
    batch_size: int = 256
    cache_dir: str | None = FEATURE_CACHE_DIR  # None: no disk cache


class TextEmbedder:
    """sentence -> (H,) float32 mean of the frozen text model's last layer over real tokens."""

    def __init__(self, cfg: TextConfig | None = None):
        self.cfg = cfg = cfg or TextConfig()
        self.model, self.tokenizer = load_text_model(cfg.model)
        self.model.eval().requires_grad_(False)
        self.dim = int(self.model.config.hidden_size)
        self.table: dict[str, np.ndarray] = {}
        # A randomly initialised test model differs per process: never cache its outputs.
        cacheable = cfg.cache_dir and text_model_is_pretrained(cfg.model)
        self._cache_file = (Path(cfg.cache_dir) / f"text-{_slug(cfg.model)}-mean{cfg.max_tokens}"
                            / "embeddings.npz") if cacheable else None
        self._load_cache()

    def _load_cache(self) -> None:
        if self._cache_file is None or not self._cache_file.is_file():
            return
        try:
            data = np.load(self._cache_file, allow_pickle=False)
            self.table = dict(zip(data["sentences"].tolist(), data["vectors"], strict=True))
        except (ValueError, OSError, KeyError):
            logger.warning("ignoring unreadable text-embedding cache %s", self._cache_file)

    def _save_cache(self) -> None:
        if self._cache_file is None:
            return
        self._cache_file.parent.mkdir(parents=True, exist_ok=True)
        keys = list(self.table)
        tmp = self._cache_file.with_suffix(".tmp.npz")
        np.savez(tmp, sentences=np.array(keys), vectors=np.stack([self.table[k] for k in keys]))
        tmp.replace(self._cache_file)

    @torch.inference_mode()
    def _embed(self, sentences: Sequence[str]) -> np.ndarray:
        enc = self.tokenizer(list(sentences), padding=True, truncation=True,
                             max_length=self.cfg.max_tokens, return_tensors="pt")
        hidden = self.model(**enc).last_hidden_state  # (B, T, H)
        mask = enc["attention_mask"].unsqueeze(-1).float()  # (B, T, 1)
        return ((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).numpy()

    def prepare(self, sentences: Iterable[str]) -> None:
        """Embed every sentence not yet known (sorted by length: little padding per batch)."""
        todo = sorted({s for s in sentences if s not in self.table}, key=len)
        if not todo:
            return
        step = self.cfg.batch_size
        for i in tqdm(range(0, len(todo), step), desc="text embeddings", unit="batch",
                      disable=len(todo) < 4 * step):
            chunk = todo[i:i + step]
            self.table.update(zip(chunk, self._embed(chunk), strict=True))
        self._save_cache()

    def __call__(self, sentences: Sequence[str]) -> torch.Tensor:
        """(N, H) float32 tensor; unknown sentences are embedded (and cached) first."""
        self.prepare(sentences)
        return torch.from_numpy(np.stack([self.table[s] for s in sentences]).astype(np.float32))


def _slug(name: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return safe if len(safe) <= 60 else safe[:40] + hashlib.sha256(name.encode()).hexdigest()[:8]
