"""Architecture configuration: plain data, stored in every checkpoint's config.json.

The config names *which* pretrained parts to use (registry names in `model.pretrained`), never
their weights, so a checkpoint stays small and a user with internet can point the same
architecture at another backbone or text model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

# Optional zero-initialised parts added after the first checkpoints: off in a checkpoint from
# before them and addable to a trained model (model.retriever.with_residual_paths).
RESIDUAL_PATHS = ("global_path", "sentence_path", "phrase_path")
RESIDUAL_PREFIXES = tuple(f"{name}." for name in RESIDUAL_PATHS)  # their parameters' names
# Heads trained apart (bench.teacher_vectors, model.kind_head, model.type_head), never by
# model.train.
HEAD_PREFIXES = ("combiner_head.", "kind_head.", "type_head.", "colour_head.")
# Every field added after the first checkpoints, with the value that reproduces the architecture
# from before it: a config.json without the field gets that value, and a fingerprint hashes the
# field only when it differs (so older checkpoints keep their ids).
LATER_FIELDS = {"global_path": False, "sentence_path": False, "sentence_hidden": 256,
                "reference_grid": None, "backbone_tail": False, "phrase_path": False,
                "combiner_head": 0, "combiner_weight": 1.0, "kind_head": 0, "kind_weight": 1.0,
                "kind_attributes": [], "attribute_weights": [], "attribute_changes": [],
                "kind_hidden": 128,
                "type_head": 0, "type_weight": 0.1, "type_hidden": 24,
                "colour_head": 0, "colour_weight": 0.2, "colour_hidden": 48}
# A field that shapes only these paths: hashed only when one of them is on.
PATH_OF_FIELD = {"sentence_hidden": ("sentence_path", "phrase_path"),
                 "combiner_weight": ("combiner_head",), "kind_weight": ("kind_head",),
                 "kind_attributes": ("kind_head",), "attribute_weights": ("kind_attributes",),
                 "attribute_changes": ("kind_attributes",),
                 "kind_hidden": ("kind_head",), "type_weight": ("type_head",),
                 "type_hidden": ("type_head",), "colour_weight": ("colour_head",),
                 "colour_hidden": ("colour_head",)}
# Fields of experiments that lost, removed from the code: (the value that meant what the code
# does now, the git tag that keeps the code). A stored config with that value still loads
# (phrase_layers: a phrase path over the first N layers, stages 39-41, lost to all six in 42;
# kind_*: a kind vector appended to both sides, stages 48-50).
REMOVED_FIELDS = {"phrase_layers": (None, "phrase-layers"),
                  "kind_path": (False, "kind-path-groups"), "kind_dim": (32, "kind-path-groups"),
                  "kind_share": (0.2, "kind-path-groups")}


def fingerprinted_fields(cfg: ModelConfig) -> dict[str, Any]:
    """The config as a fingerprint hashes it: a later field only where it changes the
    architecture from the one before it."""
    arch = cfg.to_dict()
    for name, legacy in LATER_FIELDS.items():
        if arch[name] == legacy or not any(getattr(cfg, path)
                                           for path in PATH_OF_FIELD.get(name, (name,))):
            del arch[name]
    return arch


def _all_if_zero(value: str) -> int | None:
    return int(value) or None


def cli(default: Any, help: str, **extra: Any) -> Any:
    """A field that `python -m model.train` exposes as a flag (model.dataclass_cli)."""
    return field(default=default, metadata={"help": help, **extra})


@dataclass
class ModelConfig:
    # Fields made with `cli` are also flags of `python -m model.train` (help from metadata).
    backbone: str = cli("efficientnet_lite0", "registry name (model/pretrained.py) of the "
                        "frozen CNN")
    backbone_weights: str | None = cli(None, "optional local weights file of the backbone "
                                       "(e.g. a ResNet-50 .pth)")
    image_size: int = 224  # square input side; grid = image_size / 32 (7x7 at 224)
    text_model: str = cli("all-MiniLM-L6-v2", "text model: registry name, local Hugging Face "
                          "folder, or cached hub name")
    text_layers: int | None = cli(4, "keep the first N layers of the text model (0: all)",
                                  type=_all_if_zero)
    max_text_tokens: int = 40  # feedback longer than this is truncated by the tokenizer
    embed_dim: int = 256  # size of f_ref / f_tar
    crop_grid: int = 3  # garment-region tokens: crop_grid x crop_grid RoI-pooled cells
    num_landmarks: int = 8  # learned landmark queries (stand-in for a landmark detector)
    attn_heads: int = 4  # heads of the small attention modules outside the text transformer
    fusion_layers: int = 1  # contextual-fusion transformer layers in the target block
    dropout: float = 0.1
    train_text_layers: int = cli(4, "top-N text layers fine-tuned; lower ones stay as shipped")
    # dtype of stored weights (model.checkpoint.SAVE_DTYPES: "float32" for bit-exact round
    # trips, "int8" for weight matrices at one scale per row)
    save_dtype: str = "float16"
    init_logit_scale: float = 10.0  # initial inverse temperature of the batch loss
    global_path: bool = cli(True, "residual pooled-feature term on both sides (GlobalPath); "
                            "--no-global-path: the architecture before it (stages 1-2)")
    sentence_path: bool = cli(False, "add a residual combiner of the pooled reference image "
                              "and the feedback's sentence embedding to f_ref "
                              "(SentencePath, zero-initialised)")
    phrase_path: bool = cli(False, "add a sentence path whose sentence embedding comes from "
                            "the frozen pretrained text model (PhrasePath, zero-initialised; "
                            "its encoder is loaded from the package, not stored)")
    sentence_hidden: int = cli(128, "width of the sentence (and phrase) path's MLP (128 "
                               "keeps both paths <= 25 MB; the demo checkpoint's phrase path "
                               "alone: 512)")
    # Side of the whole-image grid the reference block fuses with the words (None: the
    # backbone's grid, 7x7 at 224 px); a smaller side average-pools the grid first. The fused
    # pass costs in proportion to its tokens, so this is the query-time lever (README, Query
    # latency); the target block always reads the full grid.
    reference_grid: int | None = cli(None, "side of the pooled whole-image grid the reference "
                                     "block reads (default: the backbone's full grid)")
    # The backbone's last stage was fine-tuned (model.train --train-backbone-tail): the
    # checkpoint then stores that stage's weights, which replace the package's.
    backbone_tail: bool = cli(False, "fine-tune the backbone's last stage too, from cached "
                              "features of the stages before it (no flips)",
                              flag="train-backbone-tail")
    # A combiner head (model.network.CombinerHead, trained apart by bench.teacher_vectors and
    # attached by model.combiner_head): the size of its space, appended to f_ref and f_tar (0:
    # none), and the weight of its cosine in the score (cos_f + w cos_head).
    combiner_head: int = 0
    combiner_weight: float = 1.0
    # A kind head (model.network.KindHead, trained apart and attached by model.kind_head): the
    # number of kinds it tells apart, appended to f_ref and f_tar (0: none), and the weight of
    # its Bhattacharyya coefficient in the score.
    kind_head: int = 0
    kind_weight: float = 1.0
    # Attributes the kind head also reads (pattern, sleeve, length, fit): the number of values
    # of each, appended to its kinds, and the weight of each one's coefficient in the score.
    kind_attributes: list[int] = field(default_factory=list)
    attribute_weights: list[float] = field(default_factory=list)
    # How far each attribute's asked value is read as a change from the reference photo's
    # (model.network.KindHead.query; empty or 0: as asked).
    attribute_changes: list[float] = field(default_factory=list)
    kind_hidden: int = 128  # the width of the kind head's two MLPs
    # A type head (model.network.ChangeHead, trained apart and attached by model.type_head):
    # the number of product types it tells apart, appended to f_ref and f_tar (0: none), the
    # weight of its term (the change of type the words ask for) and the width of its two MLPs.
    type_head: int = 0
    type_weight: float = 0.1
    type_hidden: int = 24
    # A colour head (the same kind of head over colour families, attached by model.type_head
    # --column colour): the number of families, its term's weight and its MLPs' width.
    colour_head: int = 0
    colour_weight: float = 0.2
    colour_hidden: int = 48

    @classmethod
    def tiny(cls) -> ModelConfig:
        """A small, randomly initialised model for tests: real code paths, seconds to build."""
        return cls(
            backbone="tiny_cnn",
            image_size=96,
            text_model="tiny-bert",
            text_layers=None,
            max_text_tokens=24,
            embed_dim=32,
            crop_grid=2,
            num_landmarks=3,
            attn_heads=2,
            train_text_layers=2,
            save_dtype="float32",
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        data = {**LATER_FIELDS, **data}  # a checkpoint from before a field
        for name, (now, tag) in REMOVED_FIELDS.items():
            if name in data and data.pop(name) != now:
                raise ValueError(f"model config field {name} was removed (git tag {tag}); "
                                 "this checkpoint needs that code")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys {sorted(unknown)}; is this checkpoint "
                             "from a newer version of the project?")
        return cls(**data)
