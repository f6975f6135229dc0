"""Training, evaluation CLIs and the feature cache, end to end on a tiny hand-made dataset."""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dataprep import eval_caption, load_fashioniq
from model import ModelConfig, build_retriever, load_retriever
from model.distillation import distillation_loss
from model.evaluate import evaluate_split, model_encoders
from model.evaluate import main as evaluate_main
from model.feature_cache import extract_features
from model.loss import make_loss
from model.retriever import with_residual_paths
from model.token_memo import memo_key
from model.train import TrainConfig, Trainer, flip_grid, parse_args
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


@pytest.mark.slow
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
    assert val["average"]["kept@10"] == 100.0  # one category: every result keeps its kind
    best = load_retriever(run / "best")
    assert best.meta["metrics"]["score"] == max(json.loads(x)["score"] for x in lines)
    # Asking for 3 epochs now resumes after epoch 2 and trains exactly one more.
    train_main(args[:7] + ["3"] + args[8:])
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3]
    assert load_retriever(run / "last").meta["epoch"] == 3
    # The resumed run knew the best score so far: best/ holds the best of all three epochs.
    scores = [json.loads(x)["score"] for x in lines]
    assert load_retriever(run / "best").meta["metrics"]["score"] == max(scores)
    state = torch.load(run / "last" / "train_state.pt", weights_only=True)
    assert state["best"] == max(scores)


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


def _two_category_data(root):
    """The tiny dataset with its triplets split into two categories by shape."""
    data = write_tiny_dataset(root)
    for split in ("train", "val"):
        entries = json.loads((data / f"{split}.json").read_text())
        for e in entries:
            e["category"] = "round" if e["candidate"].startswith("circle") else "angular"
        (data / f"{split}.json").write_text(json.dumps(entries))
    return data


def test_mixed_batches_mix_categories_and_group_batches_do_not(tmp_path):
    data = _two_category_data(tmp_path / "d")
    for share, expect_mixed in ((0.0, False), (1.0, True)):
        trainer = Trainer(tiny_train_config(data, tmp_path / f"run{share}", mixed_share=share,
                                            batch_size=16))
        rng = random.Random(0)
        cats = [{t.category for t in trainer.batches.draw(rng)} for _ in range(20)]
        assert any(len(c) == 2 for c in cats) == expect_mixed
        assert all(len(trainer.batches.draw(rng)) == 16 for _ in range(5))


def test_group_batches_by_kind_share_the_targets_product_type(tmp_path):
    # One category ("shapes") holding three product types (the shape), as H&M's "upper" holds
    # T-shirts, blouses and hoodies: grouping by kind gives batches of one product type.
    data = write_tiny_dataset(tmp_path / "d")
    ids = [p.stem for p in (data / "images").glob("*.png")]
    (data / "metadata.csv").write_text(
        "id,category,title,product_type\n"
        + "".join(f"{i},shapes,{i},{i.split('_')[0]}\n" for i in ids))
    for group_by, expect_one_type in (("category", False), ("kind", True)):
        trainer = Trainer(tiny_train_config(data, tmp_path / group_by, group_by=group_by,
                                            mixed_share=0.0))
        rng = random.Random(0)
        types = [{t.target.split("_")[0] for t in trainer.batches.draw(rng)} for _ in range(20)]
        assert all(len(t) == 1 for t in types) == expect_one_type
    with pytest.raises(ValueError, match="group_by"):
        Trainer(tiny_train_config(data, tmp_path / "bad", group_by="colour"))


def test_dataset_scales_give_each_datasets_queries_their_own_temperature(tiny_data, tmp_path):
    other = _two_category_data(tmp_path / "other")  # a second dataset with its own ids
    for split in ("train", "val"):
        entries = json.loads((other / f"{split}.json").read_text())
        (other / f"{split}.json").write_text(json.dumps(
            [e | {"candidate": f"o{e['candidate']}", "target": f"o{e['target']}"}
             for e in entries]))
    for image in (other / "images").glob("*.png"):
        image.rename(image.with_name(f"o{image.name}"))
    cfg = tiny_train_config(tiny_data, tmp_path / "run", dataset_scales=True,
                            annotations=[str(tiny_data), str(other)],
                            images=[str(tiny_data / "images"), str(other / "images")])
    trainer = Trainer(cfg)
    assert trainer.loss.scales() == pytest.approx([ModelConfig.tiny().init_logit_scale] * 2)
    triplets = trainer.batches.triplets
    batch = trainer.batches.batch(triplets[:4] + triplets[-4:])
    assert batch["query_datasets"].tolist() == [0] * 4 + [1] * 4
    only_first = trainer.batches.batch(triplets[:8])
    before = trainer.loss.log_scale.detach().clone()
    trainer.step(only_first)
    moved = trainer.loss.log_scale.detach() != before
    assert moved.tolist() == [True, False]  # a batch of one dataset moves only its temperature
    with pytest.raises(ValueError, match="grounding"):
        Trainer(dataclasses.replace(cfg, out=str(tmp_path / "g"), grounding=0.5))


def test_logit_scale_sets_the_losss_initial_temperature(tiny_data, tmp_path):
    default = Trainer(tiny_train_config(tiny_data, tmp_path / "default"))
    assert default.loss.log_scale.exp().item() == pytest.approx(ModelConfig.tiny().init_logit_scale)
    sharp = Trainer(tiny_train_config(tiny_data, tmp_path / "sharp", logit_scale=30.0))
    assert sharp.loss.log_scale.exp().item() == pytest.approx(30.0)


def test_dataset_weights_must_match_the_datasets(tiny_data, tmp_path):
    with pytest.raises(ValueError, match="dataset weights"):
        Trainer(tiny_train_config(tiny_data, tmp_path, dataset_weights=[0.5, 0.5]))


def test_flat_file_validates_on_its_sibling_or_a_held_out_share(tiny_data, tmp_path):
    # The seed's command names one flat file; with val.json beside it, that is the val split.
    t = Trainer(tiny_train_config(tiny_data, tmp_path / "a",
                                  annotations=[str(tiny_data / "train.json")]))
    (d,) = t.datasets
    assert {x.candidate for x in d.val.triplets}.isdisjoint({x.candidate for x in d.train.triplets})
    assert len(d.val.triplets) == len(json.loads((tiny_data / "val.json").read_text()))
    # Alone, a fixed share of reference images is held out: never selected on its own triplets.
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "train.json").write_text((tiny_data / "train.json").read_text())
    t = Trainer(tiny_train_config(tiny_data, tmp_path / "b", holdout=0.3,
                                  annotations=[str(alone / "train.json")]))
    (d,) = t.datasets
    train_refs = {x.candidate for x in d.train.triplets}
    val_refs = {x.candidate for x in d.val.triplets}
    assert val_refs and train_refs and train_refs.isdisjoint(val_refs)
    assert all(x.target in d.val.gallery[x.category] for x in d.val.triplets)


def test_init_from_fine_tunes_a_checkpoint(tiny_data, tmp_path):
    start = build_retriever(ModelConfig.tiny(), seed=3)
    start.save(tmp_path / "start")
    t = Trainer(tiny_train_config(tiny_data, tmp_path / "run", init_from=str(tmp_path / "start")))
    assert t.retriever.fingerprint == load_retriever(tmp_path / "start").fingerprint
    assert t.retriever.meta["init_from"]["checkpoint"] == str(tmp_path / "start")


@pytest.mark.slow
def test_init_from_with_sentence_path_adds_it_at_zero_with_its_own_rate(tiny_data, tmp_path):
    start = build_retriever(ModelConfig.tiny(), seed=4)
    start.save(tmp_path / "start")
    cfg = tiny_train_config(tiny_data, tmp_path / "run", init_from=str(tmp_path / "start"),
                            lr=1e-3, text_lr=1e-4, path_lr=1e-2)
    cfg.model.sentence_path = True
    t = Trainer(cfg)
    assert t.retriever.cfg.sentence_path and t.retriever.net.sentence_path is not None
    rate = {id(p): g["initial_lr"] for g in t.optimizer.param_groups for p in g["params"]}
    named = dict(t.retriever.net.named_parameters())
    assert {rate[id(p)] for n, p in named.items() if n.startswith("sentence_path.")} == {1e-2}
    assert {rate[id(p)] for n, p in named.items()
            if n.startswith("reference.text.") and p.requires_grad} == {1e-4}
    assert {rate[id(p)] for n, p in named.items() if n.startswith("target.")} == {1e-3}
    whole = torch.randn(2, 9, start.encoder.channels)
    crop = torch.randn(2, 4, start.encoder.channels)
    texts = ["is blue", "has no sleeves"]
    assert torch.equal(t.retriever.encode_reference_features(whole, crop, texts),
                       start.encode_reference_features(whole, crop, texts))
    t.fit()  # trains and saves with the new path
    assert load_retriever(tmp_path / "run" / "best").cfg.sentence_path
    frozen = Trainer(dataclasses.replace(cfg, out=str(tmp_path / "frozen"), path_lr=0.0))
    path = list(frozen.retriever.net.sentence_path.parameters())  # rate 0: not even a gradient
    assert not any(p.requires_grad for p in path)
    assert not any(p is q for g in frozen.optimizer.param_groups for p in g["params"]
                   for q in path)


def _paths_only_config(tiny_data, tmp_path):
    start = build_retriever(ModelConfig.tiny(), seed=6)
    start.save(tmp_path / "start")
    cfg = tiny_train_config(tiny_data, tmp_path / "run", init_from=str(tmp_path / "start"),
                            paths_only=True, path_lr=1e-2)
    cfg.model = dataclasses.replace(cfg.model, sentence_path=True, sentence_hidden=8,
                                    phrase_path=True)
    return start, cfg


TRAINED_PATHS = ("net.sentence_path.", "net.global_path.", "net.phrase_path.combiner.")


def test_paths_only_memo_gives_the_networks_own_encodings(tiny_data, tmp_path):
    """The memoised token outputs composed with the live paths are the network's f_ref and
    f_tar, and a batch drawn again costs no new token-block pass."""
    _, cfg = _paths_only_config(tiny_data, tmp_path)
    t = Trainer(cfg)
    net = t.retriever.net.eval()
    for name, p in net.named_parameters():
        if name.startswith(("sentence_path.", "global_path.", "phrase_path.combiner.")):
            torch.nn.init.normal_(p, std=0.1)
    triplets = t.batches.triplets[:8]
    batch = t.batches.batch(triplets + triplets[:2])  # a query twice in one batch
    assert batch["query_rows"][8] == batch["query_rows"][0]
    with torch.no_grad():
        got, want = t.memo(batch), net(batch)
        passes = t.memo.computed
        assert passes == 8 + len(set(batch["target_ids"].tolist()))
        again = t.memo(t.batches.batch(triplets))
    for g, w in zip(got, want, strict=True):
        assert torch.allclose(g, w, atol=1e-5)
    assert t.memo.computed == passes and torch.allclose(again[0], want[0][:8], atol=1e-5)


def test_paths_only_memo_is_kept_on_disk_for_the_next_run(tiny_data, tmp_path):
    """A later run from the same checkpoint starts with the token outputs an earlier one
    wrote after its epochs; the file is named by the frozen weights, not the trained paths;
    a corrupt file is computed again."""
    _, cfg = _paths_only_config(tiny_data, tmp_path)
    first = Trainer(cfg)
    first.fit()
    files = list((Path(cfg.cache_dir) / "token_memo").glob("*.pt"))
    assert len(files) == 1
    written = files[0].stat().st_mtime_ns
    first.memo.save(files[0], first.batches.query_rows, first.batches.target_codes)
    assert files[0].stat().st_mtime_ns == written  # no new pass since: not written again
    second = Trainer(dataclasses.replace(cfg, out=str(tmp_path / "second")))
    assert second.memo_file == files[0]
    known = int(first.memo.query_known.sum())
    assert int(second.memo.query_known.sum()) == known > 0
    rows, targets = second.batches.query_rows, second.batches.target_codes
    triplets = [t for t in second.batches.triplets
                if (t.candidate, eval_caption(t.captions)) in rows
                and second.memo.target_known[targets[t.target]]][:4]
    net = second.retriever.net.eval()
    batch = second.batches.batch(triplets)
    with torch.no_grad():
        got, want = second.memo(batch), net(batch)
    assert len(triplets) == 4 and second.memo.computed == 0
    for g, w in zip(got, want, strict=True):
        assert torch.allclose(g, w, atol=1e-5)

    key = memo_key(net, second.retriever.cfg, "features")
    with torch.no_grad():
        next(net.global_path.parameters()).add_(1.0)
        assert memo_key(net, second.retriever.cfg, "features") == key
        next(net.target.parameters()).add_(1.0)
        assert memo_key(net, second.retriever.cfg, "features") != key
    files[0].write_bytes(b"not a memo")
    third = Trainer(dataclasses.replace(cfg, out=str(tmp_path / "third")))
    assert int(third.memo.query_known.sum()) == 0


@pytest.mark.slow
def test_paths_only_trains_the_residual_paths_and_nothing_else(tiny_data, tmp_path):
    start, cfg = _paths_only_config(tiny_data, tmp_path)
    trainer = Trainer(dataclasses.replace(cfg, epochs=2, freeze_scale=True))
    scale = trainer.loss.log_scale.item()
    encoder = {k: v.clone() for k, v in trainer.retriever.trained_state().items()
               if k.startswith("net.phrase_path.encoder.")}  # a random test model: stored
    trainer.fit()
    assert trainer.loss.log_scale.item() == scale  # --freeze-scale
    trained = load_retriever(tmp_path / "run" / "best")
    before, after = {**start.trained_state(), **encoder}, trained.trained_state()
    moved = {k for k in after if k not in before or not torch.equal(before[k], after[k])}
    assert moved and all(k.startswith(TRAINED_PATHS) for k in moved)
    assert all(any(k.startswith(path) for k in moved) for path in TRAINED_PATHS)
    with pytest.raises(ValueError, match="paths-only"):
        Trainer(dataclasses.replace(cfg, out=str(tmp_path / "g"), grounding=0.5))


def test_init_from_a_checkpoint_without_global_path_adds_it_at_zero(tiny_data, tmp_path):
    start = build_retriever(dataclasses.replace(ModelConfig.tiny(), global_path=False), seed=3)
    start.save(tmp_path / "start")
    t = Trainer(tiny_train_config(tiny_data, tmp_path / "run", init_from=str(tmp_path / "start")))
    assert t.retriever.cfg.global_path
    whole = torch.randn(2, 9, start.encoder.channels)
    crop = torch.randn(2, 4, start.encoder.channels)
    assert torch.equal(t.retriever.encode_target_features(whole, crop),
                       start.encode_target_features(whole, crop))


def test_batches_carry_garment_kinds_from_the_product_type_column(tiny_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    rows = [f"{p.stem},shapes,{p.stem.split('_')[0]},{p.stem}"
            for p in sorted((data / "images").glob("*.png"))]
    (data / "metadata.csv").write_text("id,category,product_type,title\n" + "\n".join(rows))
    trainer = Trainer(tiny_train_config(data, tmp_path / "run"))
    triplets = trainer.batches.triplets
    batch = trainer.batches.batch(triplets[:16])
    codes = {}
    for t, ref, tar in zip(triplets, batch["ref_kinds"].tolist(), batch["tar_kinds"].tolist(),
                           strict=False):
        shape = t.candidate.split("_")[0]  # each triplet changes the colour, keeps the shape
        assert codes.setdefault(shape, ref) == ref == tar
    assert len(set(codes.values())) == len(codes) > 1
    assert trainer.step(batch) > 0


def test_an_image_in_two_datasets_keeps_each_datasets_kind_and_dataset_code(tiny_data, tmp_path):
    """The same photos in a folder without product types (kinds = its category) and, listed
    after it, one with them: a batch of the first folder's triplets carries the first folder's
    kinds and counts as its queries (for distillation and temperatures), not the last lister's."""
    coarse, fine = tmp_path / "coarse", tmp_path / "fine"
    shutil.copytree(tiny_data, coarse)
    shutil.copytree(tiny_data, fine)
    rows = [f"{p.stem},shapes,{p.stem.split('_')[0]},{p.stem}"
            for p in sorted((fine / "images").glob("*.png"))]
    (fine / "metadata.csv").write_text("id,category,product_type,title\n" + "\n".join(rows))
    for split in ("train", "val"):  # the same photos, other requests
        entries = json.loads((fine / f"{split}.json").read_text())
        (fine / f"{split}.json").write_text(json.dumps(
            [e | {"captions": [f"{c}, please" for c in e["captions"]]} for e in entries]))
    trainer = Trainer(tiny_train_config(
        coarse, tmp_path / "run", annotations=[str(coarse), str(fine)],
        images=[str(coarse / "images"), str(fine / "images")]))
    triplets = trainer.batches.triplets
    half = len(triplets) // 2  # the coarse folder's triplets come first
    first = trainer.batches.batch(triplets[:8])
    assert first["query_datasets"].tolist() == [0] * 8
    assert len(set(first["ref_kinds"].tolist() + first["tar_kinds"].tolist())) == 1
    second = trainer.batches.batch(triplets[half:half + 8])
    assert second["query_datasets"].tolist() == [1] * 8
    shapes = {t.candidate.split("_")[0] for t in triplets[half:half + 8]}
    assert len(set(second["ref_kinds"].tolist())) == len(shapes) > 1


def test_device_choice():
    from model.device import resolve_device

    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_grounding_loss_ties_images_to_their_descriptions(tmp_path):
    data = write_tiny_dataset(tmp_path / "d")
    with open(data / "metadata.csv", "w", encoding="utf-8") as f:
        f.write("id,category,title,description\n")
        for p in sorted((data / "images").glob("*.png")):
            shape, colour, _ = p.stem.split("_")
            f.write(f"{p.stem},shapes,{p.stem},a {colour} {shape}\n")
    trainer = Trainer(tiny_train_config(data, tmp_path / "run", grounding=0.5, text_lr=1e-3))
    assert trainer.grounding and all(t.startswith("a ") for _, t in trainer.grounding.pairs)

    def loss_on_the_same_pairs() -> float:
        trainer.retriever.net.eval()
        trainer.grounding.rng = random.Random(1)
        with torch.no_grad():
            return trainer.grounding(trainer.retriever, trainer.bank, trainer.loss,
                                     trainer.device).item()

    first = loss_on_the_same_pairs()
    trainer.retriever.net.train()
    for _ in range(15):
        trainer.step(trainer.batches.batch(trainer.batches.triplets[:8]))
    assert loss_on_the_same_pairs() < first


def _distill_config(tiny_data, tmp_path):
    teacher = build_retriever(dataclasses.replace(ModelConfig.tiny(), sentence_path=True,
                                                  sentence_hidden=8), seed=7)
    teacher.save(tmp_path / "teacher")
    cfg = tiny_train_config(tiny_data, tmp_path / "run", init_from=str(tmp_path / "teacher"),
                            distill=1.0, epochs=2, text_lr=1e-3)
    cfg.model = dataclasses.replace(cfg.model, reference_grid=2, text_layers=1)
    return teacher, cfg


@pytest.mark.slow
def test_distill_trains_a_pooled_reference_side_and_keeps_the_teachers_targets(tiny_data,
                                                                               tmp_path):
    """A cheaper reference block learns from the teacher while every target vector (and so
    every catalog indexed with the teacher) stays exactly the teacher's."""
    teacher, cfg = _distill_config(tiny_data, tmp_path)
    trainer = Trainer(cfg)
    assert trainer.retriever.cfg.reference_grid == 2 and trainer.retriever.cfg.text_layers == 1
    assert not any(p.requires_grad for p in trainer.memo.net.parameters())
    trainer.fit()
    student = load_retriever(tmp_path / "run" / "last", engine="eager")
    assert student.cfg.reference_grid == 2 and student.fingerprint != teacher.fingerprint
    before, after = teacher.trained_state(), student.trained_state()
    assert set(before) - set(after) == {k for k in before
                                        if k.startswith("net.reference.text.encoder.layer.1.")}
    moved = {k for k in after if not torch.equal(before[k], after[k])}
    assert moved and all(k.startswith(("net.reference.", "net.sentence_path.")) for k in moved)
    whole = torch.randn(3, 9, teacher.encoder.channels)
    crop = torch.randn(3, 4, teacher.encoder.channels)
    with torch.no_grad():
        assert torch.equal(student.net.encode_target(whole, crop),
                           teacher.net.encode_target(whole, crop))
    with pytest.raises(ValueError, match="--distill needs --init-from"):
        Trainer(dataclasses.replace(cfg, out=str(tmp_path / "g"), grounding=0.5))
    with pytest.raises(ValueError, match="--distill needs --init-from"):
        Trainer(dataclasses.replace(cfg, out=str(tmp_path / "i"), init_from=None))
    with pytest.raises(ValueError, match="set --distill"):
        Trainer(dataclasses.replace(cfg, out=str(tmp_path / "d"), distill=0.0,
                                    distill_datasets=["tiny"]))


def _unit_rows(n: int, dim: int = 8) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.randn(n, dim), dim=-1)


def test_distillation_term_is_zero_only_for_the_teachers_own_ranking():
    loss = make_loss(ModelConfig.tiny())
    f_tar, teacher = _unit_rows(6), _unit_rows(6)
    ids = torch.tensor([0, 1, 2, 3, 4, 0])  # a duplicate target is masked for both
    assert distillation_loss(loss, teacher, f_tar, teacher, f_tar, ids).abs().item() < 1e-6
    other = torch.nn.functional.normalize(teacher + 0.5 * torch.randn(6, 8), dim=-1)
    assert distillation_loss(loss, other, f_tar, teacher, f_tar, ids).item() > 1e-3
    moved_targets = torch.nn.functional.normalize(f_tar + 0.5 * torch.randn(6, 8), dim=-1)
    assert distillation_loss(loss, teacher, moved_targets, teacher, f_tar, ids).item() > 1e-3
    assert distillation_loss(loss, teacher, f_tar, teacher, f_tar, ids, temperature=4.0
                             ).abs().item() < 1e-6


def test_a_warmer_distillation_teaches_the_ranks_after_the_first():
    """A student that keeps the teacher's first choice but swaps the next two pays little at
    the loss's temperature and more at a warmer one (scaled back by its square)."""
    loss = make_loss(ModelConfig.tiny(), init_scale=40.0)
    f_tar = torch.eye(4)
    teacher = torch.nn.functional.normalize(torch.tensor([[1.0, 0.5, 0.3, 0.0]]), dim=-1)
    student = torch.nn.functional.normalize(torch.tensor([[1.0, 0.3, 0.5, 0.0]]), dim=-1)
    cold = distillation_loss(loss, student, f_tar, teacher, f_tar)
    warm = distillation_loss(loss, student, f_tar, teacher, f_tar, temperature=4.0)
    assert warm.item() > 2 * cold.item() > 0


def test_distillation_term_teaches_only_the_picked_queries_against_every_target():
    """Queries outside ``rows`` may rank as they like; a picked query's softmax still runs
    over every target of the batch (extra negatives included), its own found again."""
    loss = make_loss(ModelConfig.tiny())
    f_tar, teacher_ref = _unit_rows(7), _unit_rows(5)  # 5 queries, 2 extra negatives
    ids = torch.tensor([0, 1, 2, 3, 4, 5, 6])
    rows = torch.tensor([False, True, False, True, False])
    student = teacher_ref.clone()
    student[~rows] = _unit_rows(3)
    assert distillation_loss(loss, student, f_tar, teacher_ref, f_tar, ids, rows=rows
                             ).abs().item() < 1e-6
    assert distillation_loss(loss, student, f_tar, teacher_ref, f_tar, ids).item() > 1e-3
    assert distillation_loss(loss, student, f_tar, teacher_ref, f_tar, ids,
                             rows=torch.zeros(5, dtype=torch.bool)).item() == 0
    # the picked queries' rows are what the unmasked term gives them
    whole = loss.get_logits(student, f_tar, ids)[rows]
    order = [1, 3, 0, 2, 4, 5, 6]
    picked = loss.get_logits(student[rows], f_tar[order], ids[order])
    assert torch.allclose(whole.sort(dim=-1).values, picked.sort(dim=-1).values)


@pytest.mark.slow
def test_paths_only_distillation_keeps_the_starts_paths_as_teacher(tiny_data, tmp_path):
    """With --paths-only, --distill's teacher is a frozen copy of the paths the run starts
    from: at the start the term is zero, after training the copy has not moved while the
    trained paths have; a dataset it should teach that does not exist is refused."""
    start, cfg = _paths_only_config(tiny_data, tmp_path)
    cfg = dataclasses.replace(cfg, distill=1.0, epochs=2)
    t = Trainer(cfg)
    assert t.distilled is None and t.teacher_paths is not None
    assert not any(p.requires_grad for p in t.teacher_paths.parameters())
    batch = t.batches.batch(t.batches.triplets[:8])
    with torch.no_grad():
        f_ref, f_tar, teacher = t.forward(batch)
        term = distillation_loss(t.loss, f_ref, f_tar, *teacher, batch["target_ids"])
    assert term.abs().item() < 1e-5
    frozen = {k: v.clone() for k, v in t.teacher_paths.state_dict().items()}
    t.fit()
    assert all(torch.equal(v, frozen[k]) for k, v in t.teacher_paths.state_dict().items())
    resumed = Trainer(dataclasses.replace(cfg, epochs=3))  # from OUT/last: the start still teaches
    assert resumed.resuming and all(torch.equal(v, frozen[k]) for k, v in
                                    resumed.teacher_paths.state_dict().items())
    trained = load_retriever(tmp_path / "run" / "last", engine="eager").trained_state()
    before = start.trained_state()  # no sentence or phrase path: its teacher neither
    moved = {k for k, v in trained.items() if not k.startswith("net.phrase_path.encoder.")
             and (k not in before or not torch.equal(v, before[k]))}
    assert moved and all(k.startswith(TRAINED_PATHS) for k in moved)
    named = Trainer(dataclasses.replace(cfg, out=str(tmp_path / "named"),
                                        distill_datasets=[t.batches.names[0]]))
    assert named.distilled.tolist() == [0]
    with pytest.raises(ValueError, match="not among the training datasets"):
        Trainer(dataclasses.replace(cfg, out=str(tmp_path / "unknown"),
                                    distill_datasets=["no_such_dataset"]))


def test_a_headed_start_trains_its_paths_and_leaves_the_head_as_attached(tiny_data, tmp_path):
    """A checkpoint with a combiner head fine-tunes its paths on the fused score over the
    token memo of the same start without the head; the head stays as attached."""
    from model.combiner_head import with_combiner_head
    from tests.test_combiner_head import combiner_of

    plain = build_retriever(ModelConfig.tiny(), seed=6)
    start = with_residual_paths(plain, dataclasses.replace(plain.cfg, phrase_path=True))
    headed = with_combiner_head(start, combiner_of(start))
    headed.save(tmp_path / "headed")
    cfg = tiny_train_config(tiny_data, tmp_path / "run", init_from=str(tmp_path / "headed"),
                            paths_only=True, path_lr=1e-2, distill=1.0)
    cfg.model = headed.cfg
    t = Trainer(cfg)
    key = t.retriever.encoder.cache_key
    assert memo_key(t.retriever.net, t.retriever.cfg, key) == memo_key(start.net, start.cfg, key)
    head = {k: v.clone() for k, v in t.retriever.net.combiner_head.state_dict().items()}
    t.fit()
    trained = load_retriever(tmp_path / "run" / "last", engine="eager")
    assert trained.dim == headed.dim
    assert all(torch.equal(v, head[k]) for k, v in
               trained.net.combiner_head.state_dict().items())
    assert not torch.equal(trained.net.phrase_path.combiner.text.weight,
                           headed.net.phrase_path.combiner.text.weight.float())


def test_teacher_vectors_teach_their_ranking_found_by_reference_and_caption(tiny_data,
                                                                          tmp_path):
    """A teacher file (its queries numbered differently from the run's) teaches a student
    that ranks wrongly; a query it has no vector of, whose own target it does not rank first,
    or whose own target the student already ranks first is not taught; a batch with a target
    it has no vector of is not either; the term needs fixed captions."""
    _, cfg = _paths_only_config(tiny_data, tmp_path)
    first = Trainer(cfg)
    triplets = first.batches.triplets[:8]
    batch = first.batches.batch(triplets)
    with torch.no_grad():
        _, f_tar, _ = first.forward(batch)
    n = len(triplets)
    keys = {row: key for key, row in first.batches.query_rows.items()}
    images = {code: i for i, code in first.batches.target_codes.items()}
    right = f_tar[:n].clone()  # a teacher that ranks every query's own target first
    teacher = {"keys": [keys[int(r)] for r in batch["query_rows"]], "queries": right,
               "images": [images[int(c)] for c in batch["target_ids"]], "targets": f_tar,
               "temperature": first.loss.scales()[0], "datasets": first.batches.names}

    def trainer(out: str, **file) -> Trainer:
        torch.save(teacher | file, tmp_path / f"{out}.pt")
        return Trainer(dataclasses.replace(cfg, out=str(tmp_path / out),
                                           teacher_vectors=str(tmp_path / f"{out}.pt")))

    taught = trainer("taught")
    taught.batches.batch(taught.batches.triplets[8:12])  # other rows numbered first
    again = taught.batches.batch(triplets)
    with torch.no_grad():
        _, f_tar, _ = taught.forward(again)
        other = _unit_rows(*right.shape)
        assert taught._teacher_term(again, right, f_tar).item() == 0  # already right
        assert taught._teacher_term(again, other, f_tar).item() > 1e-3
        wrong = trainer("wrong", queries=right.roll(1, dims=0))  # first place always wrong
        assert wrong._teacher_term(wrong.batches.batch(triplets), other, f_tar).item() == 0
        unknown = trainer("unknown", keys=[(r, c + " (another caption)")
                                           for r, c in teacher["keys"]])
        assert unknown._teacher_term(unknown.batches.batch(triplets), other, f_tar).item() == 0
        outside = [t for t in taught.batches.triplets if t.target not in teacher["images"]]
        batch = taught.batches.batch(triplets[:7] + outside[:1])
        assert taught._teacher_term(batch, other, f_tar).item() == 0
        assert taught.teacher.skipped == 1
    with pytest.raises(ValueError, match="fixed captions"):
        Trainer(dataclasses.replace(taught.cfg, out=str(tmp_path / "p"), paths_only=False))
    with pytest.raises(FileNotFoundError, match="--teacher-vectors .*nope.pt: no such file"):
        Trainer(dataclasses.replace(taught.cfg, out=str(tmp_path / "n"),
                                    teacher_vectors=str(tmp_path / "nope.pt")))
    with pytest.raises(ValueError, match="--teacher-datasets"):
        Trainer(dataclasses.replace(taught.cfg, out=str(tmp_path / "d"), teacher_vectors=None,
                                    teacher_datasets=["tiny"]))


def test_train_backbone_tail_trains_that_stage_alone_from_cached_trunk_features(tiny_data,
                                                                                tmp_path):
    """With every other rate at 0, a run moves the backbone's last stage and nothing else; its
    tokens come from the cached trunk through the tail, and the checkpoint it writes encodes
    images with the trained tail."""
    start = build_retriever(ModelConfig.tiny(), seed=5)
    start.save(tmp_path / "start")
    cfg = tiny_train_config(tiny_data, tmp_path / "run", init_from=str(tmp_path / "start"),
                            lr=0.0, text_lr=0.0, tail_lr=1e-2, freeze_scale=True, epochs=2)
    cfg.model = dataclasses.replace(cfg.model, backbone_tail=True)
    trainer = Trainer(cfg)
    assert trainer.retriever.cfg.backbone_tail and not trainer.batches.flip
    ids = list(trainer.bank.index)[:4]
    frozen = extract_features(start.encoder, {i: tiny_data / "images" / f"{i}.png" for i in ids},
                              None, workers=0)
    with torch.no_grad():
        for got, want in zip(trainer.bank.lookup(ids), frozen.lookup(ids), strict=True):
            assert torch.allclose(got, want, atol=2e-2)  # fp16 cache on both sides
    assert {id(p) for p in trainer.trained} == {
        id(p) for p in trainer.retriever.encoder.tail_parameters().values()}
    trainer.fit()
    after = load_retriever(tmp_path / "run" / "last", engine="eager")
    assert after.cfg.backbone_tail
    before_state, after_state = start.trained_state(), after.trained_state()
    moved = {k for k in after_state if not torch.equal(before_state[k], after_state[k])}
    assert moved and moved <= {f"encoder.{k}" for k in start.encoder.net.tail_keys()}
    image = Image.open(tiny_data / "images" / f"{ids[0]}.png")
    assert not np.allclose(after.encode_targets([image]), start.encode_targets([image]),
                           atol=1e-4)
    with pytest.raises(ValueError, match="--train-backbone-tail"):
        Trainer(dataclasses.replace(cfg, out=str(tmp_path / "p"), paths_only=True))


def test_flags_come_from_the_config_fields(tiny_data):
    """One source of defaults: a bare command line gives TrainConfig's and ModelConfig's
    defaults; each flag lands in its field."""
    where = ["--annotations", str(tiny_data), "--images", str(tiny_data / "images")]
    assert parse_args(where) == TrainConfig(annotations=[str(tiny_data)],
                                            images=[str(tiny_data / "images")])
    cfg = parse_args([*where, "--dataset-weights", "0.25,0.75", "--no-flip", "--stop-after",
                      "2", "--text-layers", "0", "--train-backbone-tail", "--group-by", "kind",
                      "--categories", "dress", "shirt", "--path-lr", "1e-3"])
    assert (cfg.dataset_weights, cfg.flip, cfg.stop_after, cfg.group_by) == (
        [0.25, 0.75], False, 2, "kind")
    assert (cfg.categories, cfg.path_lr) == (["dress", "shirt"], 1e-3)
    assert cfg.model.text_layers is None and cfg.model.backbone_tail
    tiny = parse_args([*where, "--tiny", "--sentence-path", "--no-global-path"]).model
    assert tiny == dataclasses.replace(ModelConfig.tiny(), sentence_path=True, global_path=False)
    with pytest.raises(SystemExit):
        parse_args([*where, "--group-by", "colour"])


@pytest.mark.slow
def test_stop_after_pauses_the_schedule_and_the_same_command_resumes(tiny_data, tmp_path):
    cfg = tiny_train_config(tiny_data, tmp_path / "run", epochs=3, stop_after=1)
    first = Trainer(cfg)
    first.fit()
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1]
    total = first.scheduler.lr_lambdas[0]  # laid out over all 3 epochs, not 1
    assert total(3 * first.steps_per_epoch - 1) < total(first.steps_per_epoch) < 1.0
    Trainer(dataclasses.replace(cfg, stop_after=None)).fit()
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3]


def test_negative_miners_add_extra_targets_to_every_batch(tiny_data, tmp_path):
    """The hard-negative extension point: a miner names extra targets per batch; ids the
    feature bank does not hold are dropped, the loop is unchanged."""
    calls = []

    def same_shape_other_colour(triplets, rng):
        calls.append(len(triplets))
        shapes = {t.target.split("_")[0] for t in triplets}
        return [rng.choice(sorted(i for i in ids if i.split("_")[0] in shapes)), "no-such-image"]

    trainer = Trainer(tiny_train_config(tiny_data, tmp_path / "run", mixed_share=0.0),
                      miners=[same_shape_other_colour])
    ids = list(trainer.bank.index)
    batch = trainer.batches.batch(trainer.batches.triplets[:8])
    assert len(batch["target_ids"]) == len(batch["tar_whole"]) == 9  # 8 targets + 1 mined
    assert len(batch["ref_kinds"]) == len(batch["tar_kinds"]) == 8
    assert 0 < trainer.step(batch) < float("inf") and calls == [8]


def test_a_registered_source_trains_beside_the_others_without_a_val_split(tiny_data, tmp_path):
    """The training-data extension point: an annotation root ``PREFIX:PATH`` is read by the
    source registered under PREFIX; a source without val triplets trains but is not scored."""
    from model.data import SOURCES, Dataset, load_dataset, register_source

    def tagged(path, images, categories, holdout):
        base = load_dataset(path, images, categories, holdout)
        train = dataclasses.replace(base.train, triplets=[
            dataclasses.replace(t, tags=("negation",)) for t in base.train.triplets])
        return Dataset("negations", train, dataclasses.replace(base.val, triplets=[]), path)

    register_source("negations", tagged)
    try:
        cfg = tiny_train_config(tiny_data, tmp_path / "run",
                                annotations=[str(tiny_data), f"negations:{tiny_data}"],
                                images=[str(tiny_data / "images")] * 2)
        trainer = Trainer(cfg)
        assert [d.name for d in trainer.datasets] == [tiny_data.name, "negations"]
        assert trainer.batches.names == [tiny_data.name, "negations"]
        trainer.fit()
    finally:
        del SOURCES["negations"]
    (line,) = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert list(json.loads(line)["val"]) == [tiny_data.name]


def test_drop_paths_starts_without_a_path_and_its_teacher_keeps_it(tiny_data, tmp_path):
    """--drop-paths sentence_path with --phrase-path: the student starts without the sentence
    path; the --distill teacher (the start, which has it) still gets its sentence embedding
    from the shared memo, so its encodings there are its own."""
    start, cfg = _paths_only_config(tiny_data, tmp_path)
    grown = with_residual_paths(start, dataclasses.replace(start.cfg, sentence_path=True,
                                                          sentence_hidden=8))
    for p in grown.net.sentence_path.parameters():
        torch.nn.init.normal_(p, std=0.1)
    grown.invalidate_fingerprint()
    grown.save(tmp_path / "start")
    cfg = dataclasses.replace(cfg, distill=1.0, drop_paths=["sentence_path"],
                              model=dataclasses.replace(cfg.model, sentence_path=False))
    t = Trainer(cfg)
    assert t.retriever.net.sentence_path is None and t.retriever.net.phrase_path is not None
    assert t.teacher_paths.sentence_path is not None
    batch = t.batches.batch(t.batches.triplets[:6])
    teacher = load_retriever(tmp_path / "start", engine="eager").net.eval()
    with torch.no_grad():
        _, _, (teacher_ref, teacher_tar) = t.forward(batch)
        want_ref, want_tar = teacher(batch)
    assert torch.allclose(teacher_ref, want_ref, atol=1e-5)
    assert torch.allclose(teacher_tar, want_tar, atol=1e-5)
    assert set(t.memo.query_out) == {"fused", "sentence", "phrase"}
    with pytest.raises(ValueError, match="the residual paths are"):
        Trainer(dataclasses.replace(cfg, out=str(tmp_path / "x"), drop_paths=["no_path"]))
    with pytest.raises(ValueError, match="--drop-paths removes paths of the --init-from"):
        dataclasses.replace(cfg, init_from=None, distill=0.0).check(backbone_tail=False)
