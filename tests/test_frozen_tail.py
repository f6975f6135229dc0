"""A checkpoint with a fine-tuned backbone tail trains on at --tail-lr 0 like any frozen
backbone: from the grid cache (no trunk pass), its tail stored unchanged."""

from __future__ import annotations

import dataclasses

import torch

from model import load_retriever
from model.config import ModelConfig
from model.feature_cache import FeatureBank
from model.retriever import build_retriever
from model.train import TrainConfig, Trainer
from tests.tiny_dataset import write_tiny_dataset


def test_a_frozen_tail_trains_the_blocks_from_cached_grids(tmp_path):
    root = write_tiny_dataset(tmp_path / "data")
    start = build_retriever(dataclasses.replace(ModelConfig.tiny(), backbone_tail=True), seed=3)
    start.save(tmp_path / "start")
    cfg = TrainConfig(annotations=[str(root)], images=[str(root / "images")], batch_size=8,
                      epochs=1, steps_per_epoch=3, out=str(tmp_path / "run"),
                      cache_dir=str(tmp_path / "cache"), workers=0, model=ModelConfig.tiny(),
                      warmup=0.0, init_from=str(tmp_path / "start"), tail_lr=0.0)
    trainer = Trainer(cfg)
    assert isinstance(trainer.bank, FeatureBank) and trainer.batches.flip
    tail = set(trainer.retriever.encoder.tail_parameters().values())
    assert not any(p in tail for p in trainer.trained)
    trainer.fit()
    after = load_retriever(tmp_path / "run" / "last", engine="eager")
    assert after.cfg.backbone_tail
    before_state, after_state = start.trained_state(), after.trained_state()
    tail_keys = {f"encoder.{k}" for k in start.encoder.net.tail_keys()}
    assert tail_keys <= after_state.keys()
    assert all(torch.equal(before_state[k], after_state[k]) for k in tail_keys)
    assert any(not torch.equal(before_state[k], after_state[k])
               for k in after_state if k not in tail_keys)
    assert after.encoder.cache_key == start.encoder.cache_key  # the grid cache stays valid
