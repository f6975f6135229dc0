"""A checkpoint with a kind head (model.kind_head): one inner product adds the chance that an
item is of the kind the query asks for, beside FashionVLP's cosine and a combiner head's; the
head survives a save and the ONNX export, training leaves it alone, and the command trains it
on a feedback folder's kinds end to end, and its item side learns kinds that photos show."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from model import load_retriever
from model.combiner_head import with_combiner_head
from model.kind_head import (
    ATTRIBUTES,
    NOT_APPLICABLE,
    KindData,
    KindHeadConfig,
    attribute_value,
    read_kind_data,
    train_kind_head,
    with_kind_head,
)
from model.kind_head import main as kind_main
from model.network import KindHead
from tests.test_combiner_head import (  # noqa: F401 (phrased: a fixture)
    IMAGES,
    TEXTS,
    combiner_of,
    head_vectors,
    phrased,
    saved_and_exported,
)
from tests.test_feedback_bench import feedback_data  # noqa: F401 (a fixture)

KINDS = ["bags", "lower", "shoes", "upper"]
ATTRIBUTE_VALUES = {"pattern": ["patterned", "plain", "texture"], "fit": ["fitted", "loose"]}


def kind_head_of(r, seed: int = 0, sizes: list[int] | None = None) -> KindHead:
    torch.manual_seed(seed)
    head = KindHead(r.encoder.channels - r.encoder.net.side_channels,
                    r.net.phrase_path.encoder.config.hidden_size, sizes or len(KINDS))
    for p in head.parameters():
        torch.nn.init.normal_(p, std=0.2)  # confident enough to move a ranking
    return head.eval()


def kind_vectors(r, head: KindHead, sizes: list[int] | None = None):
    """sqrt of the kind asked for by IMAGES x TEXTS and of each image's kind, computed apart
    (with ``sizes``: per part, each its own softmax)."""
    pixels = torch.stack([r.preprocess(i) for i in IMAGES])
    with torch.no_grad():
        whole, _ = r.image_tokens(pixels)
        phrase = r.net.phrase_path.embed(**r.tokenize(TEXTS))
        pooled = head.pooled(whole)
        asked, item = head.asked_logits(pooled, phrase), head.item_logits(pooled)
    if sizes:
        return ([p.softmax(-1).sqrt().numpy() for p in asked.split(sizes, -1)],
                [p.softmax(-1).sqrt().numpy() for p in item.split(sizes, -1)])
    return asked.softmax(-1).sqrt().numpy(), item.softmax(-1).sqrt().numpy()


def test_the_kind_head_adds_the_chance_of_the_asked_kind(phrased):  # noqa: F811
    head, w = kind_head_of(phrased), 0.3
    headed = with_kind_head(phrased, head, KINDS, w)
    assert headed.dim == phrased.dim + len(KINDS) and headed.meta["kind_head"]["kinds"] == KINDS
    q, t = headed.encode_queries(IMAGES, TEXTS), headed.encode_targets(IMAGES)
    q0, t0 = phrased.encode_queries(IMAGES, TEXTS), phrased.encode_targets(IMAGES)
    asked, item = kind_vectors(phrased, head)
    bhattacharyya = asked @ item.T
    assert ((0 <= bhattacharyya) & (bhattacharyya <= 1 + 1e-6)).all()
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(q @ t.T, (q0 @ t0.T + w * bhattacharyya) / (1 + w), atol=1e-5)


def test_a_kind_head_beside_a_combiner_head_fuses_all_three(phrased):  # noqa: F811
    combiner, wc, wk = combiner_of(phrased), 0.25, 0.3
    combined = with_combiner_head(phrased, combiner, weight=wc)
    head = kind_head_of(phrased)
    both = with_kind_head(combined, head, KINDS, wk)
    q, t = both.encode_queries(IMAGES, TEXTS), both.encode_targets(IMAGES)
    q0, t0 = phrased.encode_queries(IMAGES, TEXTS), phrased.encode_targets(IMAGES)
    qc, tc = (v.numpy() for v in head_vectors(phrased, combiner))
    asked, item = kind_vectors(phrased, head)
    np.testing.assert_allclose(q @ t.T, (q0 @ t0.T + wc * qc @ tc.T + wk * asked @ item.T)
                               / (1 + wc + wk), atol=1e-5)
    again = with_kind_head(both, kind_head_of(phrased, seed=1), KINDS, wk)  # replaced, not added
    assert again.dim == both.dim and not torch.equal(again.net.kind_head.item[0].weight,
                                                     both.net.kind_head.item[0].weight)


@pytest.mark.parametrize("attributes", [{}, ATTRIBUTE_VALUES])
def test_a_kind_headed_checkpoint_round_trips_and_exports(phrased, tmp_path,  # noqa: F811
                                                          attributes):
    pytest.importorskip("onnxruntime")
    sizes = [len(KINDS), *(len(v) for v in attributes.values())]
    headed = with_kind_head(phrased, kind_head_of(phrased, sizes=sizes), KINDS, 0.3,
                            attributes, [0.2, 0.1] if attributes else ())
    eager = saved_and_exported(headed, tmp_path / "ck")
    assert eager.cfg.kind_head == len(KINDS) and eager.meta["kind_head"]["kinds"] == KINDS
    assert eager.cfg.kind_attributes == sizes[1:]


def test_training_leaves_the_kind_head_as_attached(phrased):  # noqa: F811
    headed = with_kind_head(phrased, kind_head_of(phrased), KINDS, 0.3)
    trained = set(headed.set_trainable())
    assert not any(p in trained for p in headed.net.kind_head.parameters())
    headed.net.train()
    assert not headed.net.kind_head.training


def test_the_command_attaches_a_head_of_the_folders_kinds(feedback_data, phrased,  # noqa: F811
                                                          tmp_path):
    data = read_kind_data([feedback_data])
    assert len(data.kinds) >= 2 and data.requests
    ck = phrased.save(tmp_path / "phrased")
    kind_main(["--checkpoint", str(ck), "--datasets", feedback_data, "--cache-dir", "",
               "--weight", "0.5", "--item-epochs", "2", "--query-epochs", "2", "--threads", "1",
               "--out", str(tmp_path / "headed")])
    headed = load_retriever(tmp_path / "headed", engine="eager")
    assert headed.cfg.kind_weight == 0.5 and headed.meta["kind_head"]["kinds"] == data.kinds
    assert headed.encode_queries(IMAGES, TEXTS).shape == (3, headed.dim)


def test_the_item_side_learns_kinds_the_photos_show(phrased, tmp_path):  # noqa: F811
    """Three kinds, each photographed in its own colour: the trained item side names each."""
    paths, ids, kinds = {}, [], []
    for kind, colour in enumerate(("white", "navy", (200, 40, 40))):
        for k in range(4):
            paths[f"{kind}-{k}"] = tmp_path / f"{kind}-{k}.png"
            shade = Image.new("RGB", (120, 90), colour)
            shade.paste((k * 20, k * 20, k * 20), (0, 0, 10, 10))  # not four equal photos
            shade.save(paths[f"{kind}-{k}"])
            ids.append(f"{kind}-{k}")
            kinds.append(kind)
    data = KindData(["a", "b", "c"], ids, kinds, [(ids[0], "is lighter", 0)], paths)
    head = train_kind_head(phrased, data, KindHeadConfig(item_epochs=200, query_epochs=1,
                                                         cache_dir=""))
    with torch.no_grad():
        whole, _ = phrased.image_tokens(torch.stack([phrased.preprocess(i) for i in IMAGES]))
        assert head.item_logits(head.pooled(whole)).argmax(-1).tolist() == [0, 1, 2]


def test_bad_inputs_are_refused_with_their_reason(phrased, tmp_path):  # noqa: F811
    from model import ModelConfig, build_retriever
    from tests.tiny_dataset import write_tiny_dataset

    plain = build_retriever(ModelConfig.tiny(), seed=3)
    data = KindData(KINDS[:2], ["a", "b"], [0, 1], [], {})
    with pytest.raises(ValueError, match="no phrase path"):
        train_kind_head(plain, data, KindHeadConfig(cache_dir=""))
    folder = write_tiny_dataset(tmp_path / "no-kinds", seed=0)  # no product_group column
    with pytest.raises(ValueError, match="fewer than two kinds"):
        read_kind_data([f"{folder}:{folder / 'images'}"])
    other = KindHead(7, phrased.net.phrase_path.encoder.config.hidden_size, len(KINDS))
    with pytest.raises(ValueError, match="do not fit this checkpoint"):
        with_kind_head(phrased, other, KINDS, 0.3)
    sizes = [len(KINDS), *(len(v) for v in ATTRIBUTE_VALUES.values())]
    with pytest.raises(ValueError, match="2 attributes but 3 weights"):
        with_kind_head(phrased, kind_head_of(phrased, sizes=sizes), KINDS, 0.3,
                       ATTRIBUTE_VALUES, [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="3 parts but 2 shares"):
        KindHead(7, 5, sizes, shares=[0.15, 0.1])


def test_each_attribute_part_adds_its_coefficient_at_its_weight(phrased):  # noqa: F811
    """A head with two attributes beside the kinds: the score adds w_k BC_kind + w_1 BC_1 +
    w_2 BC_2, and the vectors stay unit."""
    sizes = [len(KINDS), *(len(v) for v in ATTRIBUTE_VALUES.values())]
    head = kind_head_of(phrased, sizes=sizes)
    wk, w1, w2 = 0.15, 0.25, 0.1
    headed = with_kind_head(phrased, head, KINDS, wk, ATTRIBUTE_VALUES, [w1, w2])
    assert headed.dim == phrased.dim + sum(sizes) and headed.cfg.kind_attributes == [3, 2]
    q, t = headed.encode_queries(IMAGES, TEXTS), headed.encode_targets(IMAGES)
    q0, t0 = phrased.encode_queries(IMAGES, TEXTS), phrased.encode_targets(IMAGES)
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    asked, item = kind_vectors(phrased, head, sizes)
    parts = [a @ i.T for a, i in zip(asked, item, strict=True)]
    expected = ((q0 @ t0.T + wk * parts[0] + w1 * parts[1] + w2 * parts[2])
                / (1 + wk + w1 + w2))
    np.testing.assert_allclose(q @ t.T, expected, atol=1e-5)


def test_attributes_are_read_as_a_change_names_them(feedback_data):  # noqa: F811
    """Patterns as plain / patterned / texture; "n/a" for a product type no item of which
    names the attribute; unknown (-1) for an item whose own row is silent."""
    import csv

    data = read_kind_data([feedback_data], ATTRIBUTES)
    assert set(data.attributes["pattern"]) <= {"plain", "patterned", "texture", NOT_APPLICABLE}
    annotations = feedback_data.split(":")[0]
    with open(f"{annotations}/metadata.csv", newline="") as f:
        rows = {r["id"]: r for r in csv.DictReader(f)}
    for name, values in data.attributes.items():
        named = {rows[i]["product_type"] for i in rows if rows[i][name]}
        for item, labels in zip(data.item_ids, data.item_attributes, strict=True):
            label = labels[list(data.attributes).index(name)]
            row = rows[item]
            if row[name]:
                assert values[label] == attribute_value(name, row[name])
            elif row["product_type"] in named:
                assert label == -1
            else:
                assert values[label] == NOT_APPLICABLE
    assert any(NOT_APPLICABLE in v for v in data.attributes.values())
    assert len(data.request_attributes) == len(data.requests)
    with pytest.raises(ValueError, match="an attribute without two values"):
        read_kind_data([feedback_data], ["no_such_column"])  # no dataset records it


def test_the_command_attaches_attributes(feedback_data, phrased, tmp_path,  # noqa: F811
                                         capsys):
    ck = phrased.save(tmp_path / "phrased")
    with pytest.raises(SystemExit):
        kind_main(["--checkpoint", str(ck), "--out", str(tmp_path / "no"),
                   "--attributes", "colour"])
    assert "invalid choice: 'colour'" in capsys.readouterr().err
    kind_main(["--checkpoint", str(ck), "--datasets", feedback_data, "--cache-dir", "",
               "--attributes", "pattern", "sleeve", "--attribute-weights", "0.2",
               "--item-epochs", "2", "--query-epochs", "2", "--threads", "1",
               "--out", str(tmp_path / "headed")])
    headed = load_retriever(tmp_path / "headed", engine="eager")
    meta = headed.meta["kind_head"]
    assert list(meta["attributes"]) == ["pattern", "sleeve"]
    assert meta["attribute_weights"] == headed.cfg.attribute_weights == [0.2, 0.2]
    assert headed.cfg.kind_attributes == [len(v) for v in meta["attributes"].values()]
    assert headed.encode_queries(IMAGES, TEXTS).shape == (3, headed.dim)


def test_an_attribute_read_as_a_change_is_pushed_from_the_photos_value(phrased,  # noqa: F811
                                                                        tmp_path):
    """With a change alpha on one attribute, that part of the query is a + alpha (1 - BC(a, r))
    (a - r) (r: the reference photo's own value), the other parts and every target as before;
    the command writes it without training, the weights kept, and the ONNX export agrees."""
    pytest.importorskip("onnxruntime")
    sizes = [len(KINDS), *(len(v) for v in ATTRIBUTE_VALUES.values())]
    headed = with_kind_head(phrased, kind_head_of(phrased, sizes=sizes), KINDS, 0.15,
                            ATTRIBUTE_VALUES, [0.25, 0.1])
    ck = headed.save(tmp_path / "headed")
    alpha = 2.0
    kind_main(["--checkpoint", str(ck), "--out", str(tmp_path / "changed"), "--keep-head",
               "--attribute-changes", str(alpha), "0", "--threads", "1"])
    changed = saved_and_exported(load_retriever(tmp_path / "changed", engine="eager"),
                                 tmp_path / "exported")
    assert changed.cfg.attribute_changes == [alpha, 0.0]
    assert changed.fingerprint != headed.fingerprint
    assert changed.meta["kind_head"]["kinds"] == KINDS
    np.testing.assert_allclose(changed.encode_targets(IMAGES),
                               load_retriever(ck, engine="eager").encode_targets(IMAGES),
                               atol=1e-6)
    head = changed.net.kind_head
    asked, item = kind_vectors(phrased, head, sizes)
    root = head.roots[1]
    a, r = asked[1] * root, item[1] * root  # the pattern part as the vector holds it
    kept = (a * r).sum(-1, keepdims=True) / root ** 2
    pushed = a + alpha * (1 - kept) * (a - r)
    with torch.no_grad():
        pixels = torch.stack([phrased.preprocess(i) for i in IMAGES])
        whole, _ = phrased.image_tokens(pixels)
        phrase = phrased.net.phrase_path.embed(**phrased.tokenize(TEXTS))
        query = head.query(head.pooled(whole), phrase).numpy()
    offsets = np.cumsum([0, *sizes])
    np.testing.assert_allclose(query[:, offsets[1]:offsets[2]], pushed, atol=1e-5)
    for k in (0, 2):  # the kinds and the fit, as asked
        np.testing.assert_allclose(query[:, offsets[k]:offsets[k + 1]],
                                   asked[k] * head.roots[k], atol=1e-5)
    with pytest.raises(ValueError, match="2 attributes but 1 changes"):
        kind_main(["--checkpoint", str(ck), "--out", str(tmp_path / "no"), "--keep-head",
                   "--attribute-changes", "1"])


def test_attribute_changes_are_refused_without_their_head_or_flag(phrased, tmp_path,  # noqa: F811
                                                                  capsys):
    """--keep-head needs --attribute-changes and the reverse; a checkpoint whose kind head reads
    no attributes (or that has none) has nothing to read as a change."""
    ck = phrased.save(tmp_path / "phrased")
    for argv, message in ((["--keep-head"], "--keep-head needs --attribute-changes"),
                          (["--attribute-changes", "2"],
                           "--attribute-changes goes with --keep-head")):
        with pytest.raises(SystemExit):
            kind_main(["--checkpoint", str(ck), "--out", str(tmp_path / "no"), *argv])
        assert message in capsys.readouterr().err
    kinds_only = with_kind_head(phrased, kind_head_of(phrased), KINDS, 0.3).save(tmp_path / "k")
    for checkpoint in (ck, kinds_only):
        with pytest.raises(ValueError, match="no kind head with attributes"):
            kind_main(["--checkpoint", str(checkpoint), "--out", str(tmp_path / "no"),
                       "--keep-head", "--attribute-changes", "2"])
