"""Training, evaluation CLIs and the feature cache, end to end on a tiny hand-made dataset."""

from __future__ import annotations

import json

import pytest
import torch

from dataprep import load_fashioniq
from model import ModelConfig, build_retriever, load_retriever
from model.evaluate import evaluate_split, model_encoders
from model.evaluate import main as evaluate_main
from model.feature_cache import extract_features
from model.train import TrainConfig, Trainer, flip_grid
from model.train import main as train_main
from tests.tiny_dataset import write_tiny_dataset


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny"))


def tiny_train_config(data, out, **overrides) -> TrainConfig:
    values = dict(annotations=[str(data)], images=[str(data / "images")], batch_size=8,
                  epochs=1, out=str(out), cache_dir=str(out / "cache"), workers=0,
                  model=ModelConfig.tiny(), lr=1e-3, warmup=0.0)
    values.update(overrides)
    return TrainConfig(**values)


def test_a_few_steps_lower_the_loss(tiny_data, tmp_path):
    trainer = Trainer(tiny_train_config(tiny_data, tmp_path, text_lr=1e-3))
    batch = trainer.batches.batch(trainer.batches.triplets[:16])
    trainer.retriever.net.eval()

    def loss_now() -> float:
        with torch.no_grad():
            return trainer.loss(*trainer.retriever.net(batch), batch["target_ids"]).item()

    before = loss_now()
    trainer.retriever.net.train()
    for _ in range(50):
        loss = trainer.loss(*trainer.retriever.net(batch), batch["target_ids"])
        trainer.optimizer.zero_grad()
        loss.backward()
        trainer.optimizer.step()
    trainer.retriever.net.eval()
    assert loss_now() < 0.8 * before


def test_pretrained_lower_text_layers_stay_frozen(tiny_data, tmp_path):
    cfg = ModelConfig.tiny()
    r = build_retriever(cfg)
    trainable = r.set_trainable()
    assert len(trainable) == sum(1 for p in r.net.parameters() if p.requires_grad) > 0
    assert r.frozen_keys() == set()  # tiny-bert is random: nothing comes from a package


def test_flip_grid_mirrors_columns_only_where_asked():
    x = torch.arange(2 * 4 * 1, dtype=torch.float32).view(2, 4, 1)  # two 2x2 grids
    out = flip_grid(x, torch.tensor([True, False]))
    assert out[0, :, 0].tolist() == [1, 0, 3, 2]
    assert out[1, :, 0].tolist() == [4, 5, 6, 7]


def test_train_cli_writes_best_and_last_and_resumes(tiny_data, tmp_path, capsys):
    args = ["--annotations", str(tiny_data), "--images", str(tiny_data / "images"),
            "--batch-size", "8", "--epochs", "2", "--out", str(tmp_path / "run"),
            "--cache-dir", str(tmp_path / "cache"), "--workers", "0", "--tiny"]
    train_main(args)
    run = tmp_path / "run"
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2
    epoch2 = json.loads(lines[1])
    (val,) = epoch2["val"].values()  # one dataset, named after its folder
    assert set(val["shapes"]) >= {"R@10", "R@50", "queries"}
    best = load_retriever(run / "best")
    assert best.meta["metrics"]["score"] == max(json.loads(x)["score"] for x in lines)
    # Asking for 3 epochs now resumes after epoch 2 and trains exactly one more.
    train_main(args[:7] + ["3"] + args[8:])
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3]
    assert load_retriever(run / "last").meta["epoch"] == 3


def test_evaluate_cli_prints_table_and_writes_json(tiny_data, tmp_path, capsys):
    build_retriever(ModelConfig.tiny()).save(tmp_path / "ck")
    (tmp_path / "data").symlink_to(tiny_data)
    out = tmp_path / "eval.json"
    evaluate_main(["--checkpoint", str(tmp_path / "ck"), "--data", str(tmp_path / "data"),
                   "--json", str(out), "--cache-dir", ""])
    printed = capsys.readouterr().out
    assert "R@10" in printed and "R@50" in printed and "(R@10+R@50)/2" in printed
    results = json.loads(out.read_text())
    assert set(results) == {"shapes", "average"}
    for metrics in results.values():
        assert 0 <= metrics["R@10"] <= metrics["R@50"] <= 100


def test_evaluation_is_identical_from_cache_and_from_images(tiny_data, tmp_path):
    r = build_retriever(ModelConfig.tiny())
    split = load_fashioniq(tiny_data, tiny_data / "images", "val")
    fresh = extract_features(r.encoder, split.image_paths, tmp_path / "cache", workers=0)
    cached = extract_features(r.encoder, split.image_paths, tmp_path / "cache", workers=0)
    assert torch.equal(fresh.whole, cached.whole)
    a = evaluate_split(split, *model_encoders(r, fresh))
    b = evaluate_split(split, *model_encoders(r, cached))
    assert a == b
    # The cached path and the public image path give the same target vectors (fp16 cache).
    from PIL import Image

    ids = split.gallery["shapes"][:4]
    direct = r.encode_targets([Image.open(split.image_paths[i]) for i in ids])
    _, gallery = model_encoders(r, cached)
    assert abs(direct - gallery(ids)).max() < 2e-2


def test_unreadable_image_is_reported_and_skipped_by_the_cache(tmp_path):
    r = build_retriever(ModelConfig.tiny())
    good = tmp_path / "good.png"
    from tests.tiny_dataset import draw

    draw("red", "square").save(good)
    bad = tmp_path / "bad.png"
    bad.write_bytes(good.read_bytes()[:100])
    bank = extract_features(r.encoder, {"good": good, "bad": bad}, None, workers=0)
    assert list(bank.index) == ["good"] and "bad" in bank.failed
