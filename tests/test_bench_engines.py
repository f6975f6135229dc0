"""bench.engines end to end with a tiny model and dataset: every engine is timed per part,
recall from pixels is computed per engine, and the fp32 ONNX engine matches eager's recall."""

from __future__ import annotations

import json

import pytest

from bench import engines
from tests.tiny_dataset import write_tiny_dataset

pytest.importorskip("onnxruntime")


@pytest.mark.slow
def test_engines_script_writes_json(tiny_retriever, tmp_path):
    checkpoint = tiny_retriever.save(tmp_path / "ck")
    data = write_tiny_dataset(tmp_path / "tiny")
    report = engines.main(["--checkpoint", str(checkpoint), "--catalog", str(data),
                  "--engines", "eager", "onnx", "onnx-int8", "--queries", "3",
                  "--batch", "4", "--batch-rounds", "1", "--datasets", f"tiny:{data}",
                  "--out-dir", str(tmp_path / "out")])
    saved = json.loads((tmp_path / "out" / "engines" / f"{report['fingerprint']}.json")
                       .read_text())
    assert saved["single"]["plain"]["lite0_forward"]["n"] == 3
    for name in ("eager", "onnx", "onnx-int8"):
        assert saved["single"][name]["encode_query"]["p50_ms"] > 0
        assert saved["batch"][name]["target_encoder"]["images_per_s"] > 0
        assert saved["summary"]["engines"][name]["encode_query_vs_lite0"] > 0
    acc = saved["accuracy"]["tiny"]
    assert acc["eager"]["queries"] > 0 and acc["eager"]["images"] > 0
    one_query = 100 / acc["eager"]["queries"]  # a near tie may flip at float precision
    assert acc["onnx"]["R@10"] == pytest.approx(acc["eager"]["R@10"], abs=one_query)
    written = saved["exports_written"]  # the first start exports; the second finds them all
    assert any("-int8" in f for f in written["empty_cache"]) and len(written["empty_cache"]) > 3
    assert written["cached"] == []
