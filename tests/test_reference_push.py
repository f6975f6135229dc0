"""Queries pushed from their reference photo (model.reference_push): the unit query loses the
push times the fused-space block of the photo's own catalog vector, the heads' blocks and
every catalog vector stay as they were; the command writes it without training, and the
ONNX export and a push of 0 agree with the checkpoint it came from."""

from __future__ import annotations

import numpy as np
import pytest

from model import load_retriever
from model.combiner_head import with_combiner_head
from model.reference_push import main as push_main
from model.reference_push import with_reference_push
from tests.test_combiner_head import (  # noqa: F401 (phrased: a fixture)
    IMAGES,
    TEXTS,
    combiner_of,
    phrased,
    saved_and_exported,
)


def test_a_query_loses_the_push_times_its_photos_fused_block(phrased):  # noqa: F811
    headed = with_combiner_head(phrased, combiner_of(phrased), weight=0.5)
    push = 0.3
    pushed = with_reference_push(headed, push)
    q, t = headed.encode_queries(IMAGES, TEXTS), headed.encode_targets(IMAGES)
    own = np.zeros_like(t)
    own[:, :headed.cfg.embed_dim] = t[:, :headed.cfg.embed_dim]  # the fused block only
    want = q - push * own
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(pushed.encode_queries(IMAGES, TEXTS), want, atol=1e-5)
    np.testing.assert_allclose(pushed.encode_targets(IMAGES), t, atol=1e-6)
    # each item's score, up to the query's scale, loses push times its likeness to the photo
    scale = np.linalg.norm(q - push * own, axis=1, keepdims=True)
    np.testing.assert_allclose(pushed.encode_queries(IMAGES, TEXTS) @ t.T * scale,
                               q @ t.T - push * own @ t.T, atol=1e-5)


def test_the_command_writes_it_without_training(phrased, tmp_path):  # noqa: F811
    pytest.importorskip("onnxruntime")
    ck = phrased.save(tmp_path / "plain")
    push_main(["--checkpoint", str(ck), "--out", str(tmp_path / "pushed"), "--weight", "0.2"])
    pushed = saved_and_exported(load_retriever(tmp_path / "pushed", engine="eager"),
                                tmp_path / "exported")
    assert pushed.cfg.reference_push == 0.2 and pushed.fingerprint != phrased.fingerprint
    assert pushed.meta["reference_push"] == {"weight": 0.2,
                                             "from_checkpoint": phrased.fingerprint}
    np.testing.assert_allclose(pushed.encode_targets(IMAGES), phrased.encode_targets(IMAGES),
                               atol=1e-3)  # float16 weights, the same ones
    assert not np.allclose(pushed.encode_queries(IMAGES, TEXTS),
                           phrased.encode_queries(IMAGES, TEXTS), atol=1e-2)


def test_no_push_is_the_checkpoint_it_came_from(phrased, capsys):  # noqa: F811
    same = with_reference_push(phrased, 0.0)
    assert same.fingerprint == phrased.fingerprint
    np.testing.assert_allclose(same.encode_queries(IMAGES, TEXTS),
                               phrased.encode_queries(IMAGES, TEXTS), atol=1e-6)
    with pytest.raises(ValueError, match="weight >= 0"):
        with_reference_push(phrased, -0.1)
    with pytest.raises(SystemExit):
        push_main(["--checkpoint", "nowhere", "--out", "nowhere", "--weight", "-1"])
    assert "--weight must be >= 0" in capsys.readouterr().err
