"""Security rules the README promises, checked from the source: weights are loaded only from
safetensors or with ``torch.load(..., weights_only=True)`` (no pickle can run code), the page
never renders raw HTML, and the app listens on 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.test_layout import project_modules

REPO = Path(__file__).resolve().parents[1]


def calls(name: str) -> list[tuple[str, ast.Call]]:
    """Every call of ``name`` (e.g. "torch.load") in the project's modules."""
    found = []
    for module, path in project_modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == name:
                found.append((module, node))
    return found


def keyword(call: ast.Call, name: str):
    kw = next((k for k in call.keywords if k.arg == name), None)
    return None if kw is None else ast.literal_eval(kw.value)


def test_torch_load_is_always_weights_only():
    loads = calls("torch.load")
    assert loads, "the scan sees the project's torch.load calls"
    assert [m for m, c in loads if keyword(c, "weights_only") is not True] == []


def test_no_pickle_anywhere():
    assert [m for m, c in calls("np.load") if keyword(c, "allow_pickle") is True] == []
    for module, path in project_modules().items():
        assert not re.search(r"^\s*(import pickle|from pickle )", path.read_text(), re.M), module
        assert "pickle.load" not in path.read_text(), module


def test_checkpoints_are_safetensors():
    from model.checkpoint import WEIGHTS_FILE

    assert WEIGHTS_FILE.endswith(".safetensors")
    assert calls("load_file"), "checkpoint weights go through safetensors.torch.load_file"


def test_the_page_never_renders_raw_html():
    for module, call in calls("st.markdown") + calls("st.caption") + calls("st.write"):
        assert keyword(call, "unsafe_allow_html") in (None, False), module
    assert "unsafe_allow_html=True" not in (REPO / "app" / "streamlit_app.py").read_text()


def test_the_app_binds_to_loopback_by_default():
    script = (REPO / "run_app.sh").read_text()
    assert 'ADDRESS="$("$PY" -m project_settings APP_ADDRESS 127.0.0.1)"' in script
    assert '--server.address "$ADDRESS"' in script
