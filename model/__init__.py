"""FashionVLP composed image retrieval: public API (see ../shared/DESIGN.md)."""

from model.config import ModelConfig
from model.retriever import CheckpointError, Retriever, build_retriever, load_retriever

__all__ = ["CheckpointError", "ModelConfig", "Retriever", "build_retriever", "load_retriever"]
