"""The public face of the model: build or load a Retriever, and encode queries and targets.

Loading re-creates the pretrained parts from their packages and fills in the checkpoint's
weights (`model.checkpoint` owns the file format and its checks), refusing anything that does
not fit exactly, so a broken checkpoint can never become a silently random model.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from model.checkpoint import (
    CheckpointError,
    check_fits,
    fingerprint,
    pack_weights,
    read_checkpoint,
    unpack_weights,
    write_checkpoint,
)
from model.config import HEAD_PREFIXES, PATH_OF_FIELD, RESIDUAL_PATHS, ModelConfig
from model.conversation import TargetMemo, away_from, conversation_text
from model.courtesy import without_courtesy
from model.device import resolve_device
from model.engines import (
    EagerEngine,
    OnnxEngine,
    cache_dir_for,
    make_engine,
    resolve_engine_name,
)
from model.image_features import ImageEncoder, grid_tokens, preprocess_image
from model.network import FashionVLP
from model.pretrained import (
    backbone_spec,
    load_text_model,
    load_tokenizer,
    text_model_is_pretrained,
)
from model.spelling import SpellingCorrector, corrector_for

logger = logging.getLogger(__name__)

__all__ = ["CheckpointError", "Retriever", "build_retriever", "load_retriever",
           "with_residual_paths", "without_paths"]


Modules = tuple[ImageEncoder, FashionVLP]
PHRASE_ENCODER = "phrase_path.encoder."  # the phrase path's frozen text model: never trained


class Retriever:
    """FashionVLP ready for inference: f_ref for (image, text), f_tar for catalog images.

    The PyTorch modules (``encoder``, ``net``) may be deferred: a retriever loaded with cached
    exported engines answers without them, and builds them (``build``) on first access only,
    e.g. for training or the feature cache. That saves an app start about two seconds here
    (building the CNN and the transformer from their packages, importing transformers)."""

    def __init__(self, cfg: ModelConfig, encoder: ImageEncoder | None, net: FashionVLP | None,
                 tokenizer, meta: dict[str, Any] | None = None,
                 build: Callable[[], Modules] | None = None):
        if (encoder is None or net is None) and build is None:
            raise ValueError("give the encoder and the network, or a build function")
        self.cfg = cfg
        self._encoder, self._net = encoder, (net.eval() if net is not None else None)
        self._build = build
        self.tokenizer = tokenizer
        self.meta = meta or {}
        self._fingerprint: str | None = None
        self.device = torch.device("cpu")
        self.engine = EagerEngine(self)  # load_retriever picks a faster one (model.engines)
        self.targets_seen = TargetMemo()  # encode_conversation's earlier references
        # Mends typos in query words (model.spelling); load_retriever sets it where the
        # checkpoint's meta lists its training captions' words.
        self.spelling: SpellingCorrector | None = None
        self._catalog_words: Iterable[str] = frozenset()  # what use_catalog_words was given
        self.drop_courtesy = True  # "hi", "thanks!" taken out of query words (model.courtesy)

    # ------------------------------------------------------------------ modules
    def _modules(self) -> Modules:
        if self._encoder is None or self._net is None:
            logger.info("building the PyTorch modules of %s", self._fingerprint or "the model")
            encoder, net = self._build()
            self._encoder, self._net = encoder.to(self.device), net.eval().to(self.device)
            self._build = None
        return self._encoder, self._net

    @property
    def encoder(self) -> ImageEncoder:
        return self._modules()[0]

    @property
    def net(self) -> FashionVLP:
        return self._modules()[1]

    @property
    def modules_built(self) -> bool:
        """False while the PyTorch modules are deferred (an exported engine answers)."""
        return self._net is not None

    def to(self, device: str | torch.device) -> Retriever:
        """Move the image encoder and the blocks ('auto' picks CUDA when present)."""
        self.device = resolve_device(device) if isinstance(device, str) else torch.device(device)
        if self.modules_built:
            self._encoder.to(self.device)
            self._net.to(self.device)
        if self.device.type != "cpu" and self.engine.name != "eager":
            self.engine = EagerEngine(self)
        return self

    def use_engine(self, name: str | None = None, cache_dir: str | Path | None = None
                   ) -> Retriever:
        """Run inference with engine ``name`` (model.engines.ENGINES; None: ENCODER_ENGINE or
        auto); falls back to eager, with one log line, when it cannot run here."""
        self.engine = make_engine(self, name, cache_dir)
        return self

    # ------------------------------------------------------------------ identity
    @property
    def dim(self) -> int:
        return (self.cfg.embed_dim + self.cfg.combiner_head + self.cfg.kind_head
                + sum(self.cfg.kind_attributes) + self.cfg.type_head + self.cfg.colour_head)

    @property
    def fingerprint(self) -> str:
        """Hash of the architecture and every weight not shipped by a package."""
        if self._fingerprint is None:
            self._fingerprint = fingerprint(self.cfg, self.trained_state())
        return self._fingerprint

    def frozen_keys(self) -> set[str]:
        """Parameter names that come unchanged from the pretrained packages."""
        if not text_model_is_pretrained(self.cfg.text_model):
            return set()
        layers = len(self.net.reference.text.encoder.layer)
        frozen_layers = range(layers - min(self.cfg.train_text_layers, layers))
        prefixes = ["reference.text.embeddings.", PHRASE_ENCODER]
        prefixes += [f"reference.text.encoder.layer.{i}." for i in frozen_layers]
        return {k for k in self.net.state_dict() if k.startswith(tuple(prefixes))}

    def trained_state(self) -> dict[str, torch.Tensor]:
        """Everything a checkpoint must store, as the configured storage dtype stores it."""
        frozen = self.frozen_keys()
        state = {f"net.{k}": v.cpu() for k, v in self.net.state_dict().items() if k not in frozen}
        encoder = self.encoder.net.state_dict()
        if not backbone_spec(self.cfg.backbone).pretrained:
            state.update({f"encoder.{k}": v.cpu() for k, v in encoder.items()})
        elif self.cfg.backbone_tail:
            tail = self.encoder.net.tail_keys()
            state.update({f"encoder.{k}": v.cpu() for k, v in encoder.items() if k in tail})
        return pack_weights(state, self.cfg.save_dtype)

    def set_trainable(self) -> list[torch.nn.Parameter]:
        """Freeze the pretrained lower text layers (and the backbone, but for its tail when
        ``cfg.backbone_tail``); return the parameters to optimise."""
        frozen = self.frozen_keys()
        for name, param in self.net.named_parameters():  # the phrase encoder, even a random
            param.requires_grad_(name not in frozen
                                 and not name.startswith((PHRASE_ENCODER, *HEAD_PREFIXES)))
        for param in self.encoder.tail_parameters().values():
            param.requires_grad_(self.cfg.backbone_tail)
        self._fingerprint = None
        self.engine = EagerEngine(self)  # an exported copy would not follow the training
        return [p for p in self.net.parameters() if p.requires_grad] + [
            p for p in self.encoder.tail_parameters().values() if p.requires_grad]

    def invalidate_fingerprint(self) -> None:
        """Call after the weights changed (training), so the fingerprint is recomputed."""
        self._fingerprint = None
        self.engine = EagerEngine(self)
        self.targets_seen.clear()

    # ------------------------------------------------------------------ inputs
    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """PIL image -> (3, S, S) tensor; safe to run in DataLoader workers."""
        return preprocess_image(image, self.cfg)

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(list(texts), padding=True, truncation=True,
                             max_length=self.cfg.max_text_tokens, return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    # ------------------------------------------------------------------ encoding
    def mend(self, texts: Sequence[str]) -> list[str]:
        """``texts`` as the query encoders read them: typos mended (model.spelling), then
        greetings and thanks taken out (model.courtesy)."""
        read = [self.spelling(t) for t in texts] if self.spelling else list(texts)
        return [without_courtesy(t) for t in read] if self.drop_courtesy else read

    def use_catalog_words(self, words: Iterable[str]) -> None:
        """Let the mender know the served catalog's words (``CatalogSearch.words``): they are
        never changed and are what a typo of one becomes ("hanes" stays, not "hands"). Cheap
        to call again with the same frozenset; a checkpoint without a mender ignores it."""
        if self.spelling is not None and words is not self._catalog_words:
            self.spelling = self.spelling.with_catalog(words)
            self._catalog_words = words

    def encode_reference_features(self, whole: torch.Tensor, crop: torch.Tensor,
                                  texts: Sequence[str]) -> torch.Tensor:
        return self._reference(whole, crop, self.mend(texts))

    @torch.inference_mode()
    def _reference(self, whole: torch.Tensor, crop: torch.Tensor, texts: Sequence[str]
                   ) -> torch.Tensor:
        text = {k: v.to(self.device) for k, v in self.tokenize(texts).items()}
        out = self.engine.reference(whole.to(self.device), crop.to(self.device), **text)
        return out.float().cpu()

    @torch.inference_mode()
    def encode_target_features(self, whole: torch.Tensor, crop: torch.Tensor) -> torch.Tensor:
        out = self.engine.target(whole.to(self.device), crop.to(self.device))
        return out.float().cpu()

    @torch.inference_mode()
    def image_tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, S, S) preprocessed batch -> (whole, crop) tokens, backbone on the engine."""
        x = x.to(self.device)
        return grid_tokens(x, self.engine.grid(x), self.cfg)

    def encode_target_tensors(self, x: torch.Tensor) -> np.ndarray:
        """(N, 3, S, S) preprocessed batch -> (N, D) float32, L2-normalised."""
        whole, crop = self.image_tokens(x)
        return self.encode_target_features(whole, crop).float().numpy()

    def encode_targets(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        out = [self.encode_target_tensors(torch.stack([self.preprocess(im) for im in
                                                       images[i:i + batch_size]]))
               for i in range(0, len(images), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def encode_queries(self, images: Sequence[Image.Image], texts: Sequence[str],
                       batch_size: int = 32) -> np.ndarray:
        if len(images) != len(texts):
            raise ValueError(f"{len(images)} images but {len(texts)} texts")
        out = []
        for i in range(0, len(images), batch_size):
            x = torch.stack([self.preprocess(im) for im in images[i:i + batch_size]])
            whole, crop = self.image_tokens(x)
            out.append(self.encode_reference_features(whole, crop, texts[i:i + batch_size])
                       .float().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def encode_query(self, image: Image.Image, text: str) -> np.ndarray:
        return self.encode_queries([image], [text])[0]

    def encode_conversation(self, turns: Sequence[tuple[Image.Image, str]],
                            removed: Sequence[str] = (), avoid_earlier: bool = True
                            ) -> np.ndarray:
        """(D,) query of a conversation: ``turns`` are (reference image, feedback) pairs, oldest
        first. The last image is encoded with its feedback plus the earlier requests that still
        apply (model.conversation; ``removed`` drops remembered requests); the query is then
        moved away from the earlier references' target vectors (``away_from``: garments the
        shopper moved on from), unless ``avoid_earlier`` is off (the app turns it off once the
        shopper clicked "More / Less like this": explicit feedback replaces the implicit one).
        One turn gives exactly encode_query(image, text).

        Each call keeps its reference's target vector, computed from the backbone tokens the
        query already needed (a tenth of a query's cost), so a later turn finds its earlier
        references there; an image not seen before (a session restored after a restart) is
        encoded then, all such images in one batch."""
        if not turns:
            raise ValueError("a conversation needs at least one turn")
        image = turns[-1][0]
        whole, crop = self.image_tokens(self.preprocess(image)[None])
        mended = self.mend([words for _, words in turns])
        text = conversation_text([(im, w) for (im, _), w in zip(turns, mended, strict=True)],
                                 self.mend(removed))
        query = self._reference(whole, crop, [text]).numpy()[0]
        if self.targets_seen.get(image) is None:
            self.targets_seen.put(image, self.encode_target_features(whole, crop).numpy()[0])
        earlier = list({id(im): im for im, _ in turns[:-1]}.values())
        if not avoid_earlier or not earlier:
            return query
        return away_from(query, self._target_vectors(earlier))

    def _target_vectors(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(len(images), D) target vectors, from the memo where it has them."""
        found = {id(im): self.targets_seen.get(im) for im in images}
        missing = [im for im in images if found[id(im)] is None]
        for im, vector in zip(missing, self.encode_targets(missing) if missing else (),
                              strict=True):
            self.targets_seen.put(im, vector)
            found[id(im)] = vector
        return np.stack([found[id(im)] for im in images])

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path, meta: dict[str, Any] | None = None) -> Path:
        self.meta = {**self.meta, **(meta or {})}
        write_checkpoint(directory, self.cfg, self.trained_state(), self.meta)
        return Path(directory)


def build_retriever(cfg: ModelConfig | None = None, seed: int = 0) -> Retriever:
    """A freshly initialised model (pretrained parts from their packages, the rest random)."""
    cfg = cfg or ModelConfig()
    torch.manual_seed(seed)
    text_model, tokenizer = load_text_model(cfg.text_model)
    _keep_layers(text_model, cfg.text_layers)  # a shallower fusion transformer: CPU cost
    phrase_model = None
    if cfg.phrase_path:
        phrase_model = load_text_model(cfg.text_model)[0]
    encoder = ImageEncoder(cfg)
    net = FashionVLP(cfg, text_model, encoder.channels, encoder.grid, phrase_model,
                     image_channels=encoder.channels - encoder.net.side_channels)
    return Retriever(cfg, encoder, net, tokenizer)


def _keep_layers(text_model: torch.nn.Module, layers: int | None) -> torch.nn.Module:
    """The text model with only its first ``layers`` layers (None: all of them)."""
    if layers is not None:
        text_model.encoder.layer = text_model.encoder.layer[:layers]
        text_model.config.num_hidden_layers = len(text_model.encoder.layer)
    return text_model


def with_residual_paths(retriever: Retriever, wanted: ModelConfig) -> Retriever:
    """The same trained weights in the architecture with every zero-initialised residual path
    (``RESIDUAL_PATHS``) that ``wanted`` asks for and the checkpoint lacks, so a checkpoint
    from before a path fine-tunes from exactly its own encodings."""
    add = [name for name in RESIDUAL_PATHS
           if getattr(wanted, name) and not getattr(retriever.cfg, name)]
    if not add:
        return retriever
    logger.info("adding the zero-initialised %s", " and ".join(add))
    shape = {field: getattr(wanted, field) for field, paths in PATH_OF_FIELD.items()
             if not any(getattr(retriever.cfg, path) for path in paths)}
    cfg = dataclasses.replace(retriever.cfg, **dict.fromkeys(add, True), **shape)
    return _in_architecture(retriever, cfg, f"add {add}",
                            new=tuple(f"{name}." for name in add))


def without_paths(retriever: Retriever, names: Sequence[str]) -> Retriever:
    """The same trained weights without the residual paths ``names`` (e.g. a sentence path
    whose place a phrase path takes): what they added to the encodings is gone."""
    unknown = sorted(set(names) - set(RESIDUAL_PATHS))
    if unknown:
        raise ValueError(f"{', '.join(unknown)}: the residual paths are "
                         f"{', '.join(RESIDUAL_PATHS)}")
    drop = [name for name in names if getattr(retriever.cfg, name)]
    if not drop:
        return retriever
    logger.info("dropping the %s", " and ".join(drop))
    cfg = dataclasses.replace(retriever.cfg, **dict.fromkeys(drop, False))
    return _in_architecture(retriever, cfg, f"drop {drop}",
                            gone=tuple(f"{name}." for name in drop))


def with_query_side(retriever: Retriever, grid: int | None, text_layers: int | None
                    ) -> Retriever:
    """The same weights in a cheaper reference side: the whole-image grid average-pooled to
    ``grid`` x ``grid`` (None: the full grid) and only the first ``text_layers`` layers of the
    text transformer (None: all the checkpoint has). Pooling has no weights and dropped layers
    leave the rest as they were, so nothing starts random: the starting point of a faster
    query encoder trained by ``model.train --distill``. The target side is untouched."""
    have = len(retriever.net.reference.text.encoder.layer)
    keep = have if text_layers is None else text_layers
    if not 1 <= keep <= have:
        raise ValueError(f"text_layers must be between 1 and the {have} the checkpoint has, "
                         f"not {text_layers}")
    cfg = dataclasses.replace(retriever.cfg, reference_grid=grid,
                              text_layers=retriever.cfg.text_layers if keep == have else keep)
    if cfg == retriever.cfg:
        return retriever
    logger.info("reference side: %s whole-image grid, %d of %d text layers",
                f"{grid}x{grid}" if grid else "full", keep, have)
    return _in_architecture(retriever, cfg, "make the reference side smaller", gone=tuple(
        f"reference.text.encoder.layer.{i}." for i in range(keep, have)))


def with_new_head(retriever: Retriever, cfg: ModelConfig, prefix: str,
                  state: dict[str, torch.Tensor]) -> Retriever:
    """``retriever``'s weights in architecture ``cfg``, with the head under ``prefix`` (one
    that ``retriever`` may already have: it is replaced) loaded from ``state``; in eval mode.
    A head whose shapes are not the ones ``cfg`` builds (another backbone's channels, another
    sentence encoder's width) is refused with a ValueError."""
    rebuilt = _in_architecture(retriever, cfg, f"attach {prefix.rstrip('.')}", new=(prefix,),
                               gone=(prefix,))
    try:
        getattr(rebuilt.net, prefix.rstrip(".")).load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"the head's shapes do not fit this checkpoint's: {err}") from err
    rebuilt.net.eval()
    return rebuilt


def _in_architecture(retriever: Retriever, cfg: ModelConfig, change: str,
                     new: tuple[str, ...] = (), gone: tuple[str, ...] = ()) -> Retriever:
    """``retriever``'s weights in architecture ``cfg``: parameters under the ``new`` prefixes
    keep their built values (zero-initialised paths), those under ``gone`` are dropped (a
    prefix in both is rebuilt: a head replaced), and anything else that does not carry over
    is an error naming ``change``."""
    rebuilt = build_retriever(cfg)
    rebuilt.encoder.load_state_dict(retriever.encoder.state_dict())  # a randomly built CNN too
    kept = {k: v for k, v in retriever.net.state_dict().items() if not k.startswith(gone)}
    missing, unexpected = rebuilt.net.load_state_dict(kept, strict=False)
    if unexpected or any(not k.startswith(new) for k in missing):
        raise CheckpointError(f"cannot {change}: missing {missing}, unexpected {unexpected}")
    rebuilt.meta = dict(retriever.meta)
    return rebuilt.to(retriever.device)


def load_retriever(path: str | Path, device: str = "cpu", engine: str | None = None
                   ) -> Retriever:
    """Load a checkpoint directory (or its config.json / weights file) onto ``device``
    ('cpu', 'cuda' or 'auto': CUDA when a GPU is present), with inference engine ``engine``
    (model.engines; None: ENCODER_ENGINE or auto, ONNX Runtime on the CPU). Exported engine
    files are cached beside the checkpoint, keyed by its fingerprint."""
    cfg, state, record = read_checkpoint(path)  # checks the weights against the fingerprint
    target, cache = resolve_device(device), cache_dir_for(path)
    name = resolve_engine_name(engine, target)

    def modules() -> Modules:
        full = _filled_retriever(path, cfg, state, record)
        return full.encoder, full.net

    if target.type == "cpu" and name.startswith("onnx") and OnnxEngine.ready(
            cache, record["fingerprint"], int8=name == "onnx-int8", cfg=cfg):
        # Exported by an earlier full load of these very weights: answer from the exports and
        # build the PyTorch modules only if something asks for them.
        retriever = Retriever(cfg, None, None, load_tokenizer(cfg.text_model),
                              record.get("meta", {}), build=modules)
        retriever._fingerprint = record["fingerprint"]
    else:
        retriever = _filled_retriever(path, cfg, state, record)
        retriever.to(target)
    retriever.spelling = corrector_for(retriever.meta, retriever.tokenizer)
    return retriever.use_engine(name, cache)


def _filled_retriever(path: str | Path, cfg: ModelConfig, state: dict[str, torch.Tensor],
                      record: dict) -> Retriever:
    """The checkpoint's model with every module built and its stored weights filled in."""
    retriever = build_retriever(cfg)
    check_fits(path, retriever.trained_state(), state, record)
    _load_stored(retriever, state)
    retriever.meta = record.get("meta", {})
    retriever._fingerprint = record["fingerprint"]
    return retriever


def _load_stored(retriever: Retriever, state: dict[str, torch.Tensor]) -> None:
    """Fill ``retriever`` with stored weights (``trained_state``'s form: checked to fit)."""
    state = unpack_weights(state)
    net_state = {k[4:]: v for k, v in state.items() if k.startswith("net.")}
    retriever.net.load_state_dict(net_state, strict=False)
    encoder_state = {k[8:]: v for k, v in state.items() if k.startswith("encoder.")}
    if encoder_state:  # a random CNN's whole state, or a fine-tuned tail
        retriever.encoder.net.load_state_dict(
            encoder_state, strict=not backbone_spec(retriever.cfg.backbone).pretrained)


def stored_as(retriever: Retriever, save_dtype: str) -> Retriever:
    """``retriever`` as a checkpoint in ``save_dtype`` (model.checkpoint.SAVE_DTYPES) stores
    and loads it: each weight rounded as that storage rounds it, so a head trained on it next,
    or a benchmark, sees the model such a checkpoint gives."""
    rebuilt = _in_architecture(retriever, dataclasses.replace(retriever.cfg,
                                                              save_dtype=save_dtype),
                               f"store as {save_dtype}")
    _load_stored(rebuilt, rebuilt.trained_state())
    rebuilt.net.train(retriever.net.training)
    return rebuilt
