"""FashionVLP composed image retrieval: public API (see ../shared/DESIGN.md).

The exports are resolved lazily, so torch-free submodules (`model.config`,
`model.pretrained`, ...) do not pay PyTorch's import time.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__all__ = ["CheckpointError", "ModelConfig", "Retriever", "build_retriever", "load_retriever"]
_HOME = {"ModelConfig": "model.config", "CheckpointError": "model.checkpoint",
         "Retriever": "model.retriever", "build_retriever": "model.retriever",
         "load_retriever": "model.retriever"}

if TYPE_CHECKING:
    from model.checkpoint import CheckpointError
    from model.config import ModelConfig
    from model.retriever import Retriever, build_retriever, load_retriever


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(import_module(_HOME[name]), name)
    raise AttributeError(f"module 'model' has no attribute {name!r}")
