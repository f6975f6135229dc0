"""Runtimes for the three inference parts of a loaded model: backbone, reference and target block.

Why more than PyTorch eager: on this 2-core CPU a query paid 2x a bare backbone forward, most
of it framework overhead around small kernels (a 6-layer, 384-wide transformer over ~65 tokens,
a depthwise CNN on one image). ONNX Runtime runs the same graphs with fused kernels.
``python -m bench.engines`` measures every engine per part and its recall on pixels; the
README's "Query latency" section has the figures that chose the default.

Generic over the network: each part is exported from the module methods as they are
(``ImageEncoder.backbone``, ``FashionVLP.encode_reference``, ``FashionVLP.encode_target``), never
re-implemented, so a changed network exports as it is. Exported files are cached next to the
checkpoint (or under DATA_DIR/engine_cache when that is read-only), keyed by the checkpoint
fingerprint and the exporter's versions, so the export (a few seconds) is paid once per
checkpoint, not on every start. Each export is checked against eager on inputs of another
batch size and text length before use; anything that fails falls back to eager with one log
line. Only inference retrievers get a fast engine (``load_retriever``); training and CUDA use
eager (``Retriever.set_trainable`` puts it back, since changed weights make an export stale).

Engines: ``eager`` (PyTorch, bf16 autocast on CUDA), ``onnx`` (ONNX Runtime fp32, but for the
phrase part), ``onnx-int8`` (ONNX Runtime; reference and target blocks with dynamic int8
weights, backbone fp32: dynamic int8 convolutions were 3x slower here; its vectors depend on
the batch, see CPU_DEFAULT).

The phrase part: a model with a phrase path (``model.network.PhrasePath``) reads each query's
words with the whole frozen pretrained text model, which in fp32 cost a query over a quarter
of a Lite0 forward: between two queries the backbone pushes its 43 MB of layer weights out of
the cache.
Both ONNX engines run it as a fourth part with dynamic int8 weights (a quarter of the bytes;
2.6 ms instead of 6.6 ms for all-MiniLM-L6-v2 here, cosine to fp32 above 0.98), one text at a
time, so that its activation scales, and the vector, never depend on the rest of a batch; the
reference part then takes its output as an input.
A ``compile`` engine (torch.compile) was never measured to win and was removed (git tag
``experiments-before-cleanup`` has it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
import warnings
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from model.device import autocast


class Retriever(Protocol):
    """What an engine uses of ``model.retriever.Retriever`` (not imported: that module imports
    this one)."""

    cfg: object
    device: torch.device
    encoder: nn.Module
    net: nn.Module
    fingerprint: str

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]: ...

log = logging.getLogger(__name__)

ENGINES = ("auto", "eager", "onnx", "onnx-int8")
CPU_DEFAULT = "onnx"  # what "auto" means on the CPU. Not onnx-int8, though faster and within
# 0.4 point of recall: its dynamic int8 quantises activations with one scale per batch, so an
# item's vector depends on the other items of its batch (0.03 apart in tests/test_indexer_build),
# and a resumed or re-batched build would store other vectors for the same images.
ENGINE_ENV = "ENCODER_ENGINE"  # overrides the default engine (project_settings.VARIABLES)
EXPORT_FORMAT = 2  # bump when the exported graphs change meaning
EXPORT_CHECK_ATOL = 2e-3  # fp32 export vs eager, on unit-length outputs and backbone features
OPSET = 17


class EngineUnavailable(RuntimeError):
    """The requested engine cannot run here (package missing, export failed, check failed)."""


class EagerEngine:
    """PyTorch as the modules are: the reference every other engine is checked against."""

    name = "eager"

    def __init__(self, retriever: Retriever):
        self.retriever = retriever

    def grid(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.retriever.encoder.backbone(pixels)

    def reference(self, whole: torch.Tensor, crop: torch.Tensor, input_ids: torch.Tensor,
                  attention_mask: torch.Tensor) -> torch.Tensor:
        net = self.retriever.net.eval()  # validation right after training steps comes here
        with autocast(self.retriever.device):
            return net.encode_reference(whole, crop, input_ids, attention_mask)

    def target(self, whole: torch.Tensor, crop: torch.Tensor) -> torch.Tensor:
        net = self.retriever.net.eval()
        with autocast(self.retriever.device):
            return net.encode_target(whole, crop)


# ---------------------------------------------------------------------------- export wrappers
class _Backbone(nn.Module):
    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.encoder.backbone(pixels)


class _Reference(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, whole, crop, input_ids, attention_mask, phrase=None) -> torch.Tensor:
        return self.net.encode_reference(whole, crop, input_ids, attention_mask, phrase)


class _Phrase(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, input_ids, attention_mask) -> torch.Tensor:
        return self.net.phrase_path.embed(input_ids, attention_mask)


class _Target(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, whole, crop) -> torch.Tensor:
        return self.net.encode_target(whole, crop)


TEXT_AXES = {"input_ids": {0: "n", 1: "t"}, "attention_mask": {0: "n", 1: "t"}}
PARTS = {  # part -> (wrapper, input names, output name, dynamic axes)
    "backbone": (_Backbone, ["pixels"], "grid", {"pixels": {0: "n"}, "grid": {0: "n"}}),
    "reference": (_Reference, ["whole", "crop", "input_ids", "attention_mask"], "f_ref",
                  {"whole": {0: "n"}, "crop": {0: "n"}, **TEXT_AXES, "f_ref": {0: "n"}}),
    "target": (_Target, ["whole", "crop"], "f_tar",
               {"whole": {0: "n"}, "crop": {0: "n"}, "f_tar": {0: "n"}}),
    "phrase": (_Phrase, ["input_ids", "attention_mask"], "phrase",
               {**TEXT_AXES, "phrase": {0: "n"}}),
}


def parts(cfg) -> tuple[str, ...]:
    """The exported parts of a model: the phrase part only when it has a phrase path."""
    return ("backbone", "reference", "target", *(("phrase",) if cfg.phrase_path else ()))


def _signature(cfg, part: str) -> tuple[list[str], dict]:
    """Input names and dynamic axes of ``part``: with a phrase part, the reference part takes
    the phrase embedding as an input instead of running the frozen text model itself."""
    _, names, _, axes = PARTS[part]
    if part == "reference" and cfg.phrase_path:
        return [*names, "phrase"], {**axes, "phrase": {0: "n"}}
    return list(names), axes


def sample_inputs(retriever: Retriever, n: int, words: int) -> dict[str, dict[str, torch.Tensor]]:
    """Inputs of every part for n random images and a caption of ``words`` words."""
    size = retriever.cfg.image_size
    pixels = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(n + words))
    whole, crop = retriever.encoder(pixels)
    text = retriever.tokenize([" ".join(["blue"] * words)] * n)
    reference = {"whole": whole, "crop": crop, **text}
    if retriever.cfg.phrase_path:
        with torch.no_grad():
            reference["phrase"] = retriever.net.phrase_path.embed(**text)
    return {"backbone": {"pixels": pixels}, "reference": reference,
            "target": {"whole": whole, "crop": crop}, "phrase": text}


def _module(retriever: Retriever, part: str) -> nn.Module:
    wrapper = PARTS[part][0]
    return wrapper(retriever.encoder if part == "backbone" else retriever.net).eval()


def _export(retriever: Retriever, part: str, path: Path) -> None:
    """Trace ``part`` to ONNX at ``path`` (written aside, then renamed: never half a file)."""
    output = PARTS[part][2]
    names, axes = _signature(retriever.cfg, part)
    inputs = sample_inputs(retriever, 2, 3)[part]
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    fastpath = torch.backends.mha.get_fastpath_enabled()
    try:  # the fused nn.TransformerEncoderLayer kernel has no ONNX form: trace the plain ops
        torch.backends.mha.set_fastpath_enabled(False)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(_module(retriever, part), tuple(inputs[k] for k in names), str(tmp),
                              input_names=names, output_names=[output], dynamic_axes=axes,
                              opset_version=OPSET, dynamo=False)
        tmp.replace(path)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        tmp.unlink(missing_ok=True)


def _quantize(src: Path, path: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        quantize_dynamic(str(src), str(tmp), weight_type=QuantType.QInt8, per_channel=True)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _quantized(part: str, int8: bool) -> bool:
    """The phrase part always runs with int8 weights; with onnx-int8, every part but the
    backbone too."""
    return part == "phrase" or (int8 and part != "backbone")


def cache_dir_for(checkpoint: str | Path | None) -> Path:
    """``<checkpoint>/engine_cache`` when writable, else DATA_DIR/engine_cache."""
    if checkpoint is not None:
        directory = Path(checkpoint)
        directory = directory.parent if directory.is_file() else directory
        target = directory / "engine_cache"
        if os.access(target if target.exists() else directory, os.W_OK):
            return target
    from project_settings import load_settings

    return load_settings().data_dir / "engine_cache"


class OnnxEngine:
    """The three parts in ONNX Runtime sessions, exported once per checkpoint and cached."""

    def __init__(self, retriever: Retriever, cache_dir: Path, int8: bool = False):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise EngineUnavailable(f"onnxruntime is not installed ({exc})") from exc
        self.name = "onnx-int8" if int8 else "onnx"
        self.retriever, self.int8, self._ort = retriever, int8, ort
        cache_dir.mkdir(parents=True, exist_ok=True)
        self.sessions = {}
        for part, path in self.paths(cache_dir, retriever.fingerprint, int8,
                                     retriever.cfg).items():
            quantized = _quantized(part, int8)
            fresh = not path.is_file()
            if fresh:  # checked once when made; the name pins checkpoint and versions
                self._make(part, path, quantized)
            try:
                self.sessions[part] = self._session(path)
                if fresh:
                    self._check(part, exact=not quantized)
            except Exception:
                path.unlink(missing_ok=True)  # never leave a bad file for the next start
                raise

    def _make(self, part: str, path: Path, quantized: bool) -> None:
        """Export ``part`` to ``path``. A quantised part comes from its fp32 export, which
        stays cached for the fp32 engine, except the phrase part's: no engine runs that."""
        if not quantized:
            _export(self.retriever, part, path)
            return
        keep = part != "phrase"
        fp32 = (self.paths(path.parent, self.retriever.fingerprint, False,
                           self.retriever.cfg)[part] if keep
                else path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.fp32"))
        try:
            if not fp32.is_file():
                _export(self.retriever, part, fp32)
            _quantize(fp32, path)
        finally:
            if not keep:
                fp32.unlink(missing_ok=True)

    @staticmethod
    def paths(cache_dir: Path, fingerprint: str, int8: bool, cfg) -> dict[str, Path]:
        """The exported file of each part of a model of ``cfg``: named by checkpoint
        fingerprint, export format and the torch / onnxruntime versions, so any of them
        changing means a new export."""
        import onnxruntime as ort

        stem = (f"{fingerprint}-v{EXPORT_FORMAT}-torch{torch.__version__}-"
                f"ort{ort.__version__}").replace("+", "_")
        return {part: cache_dir / f"{stem}-{part}{'-int8' if _quantized(part, int8) else ''}"
                                  ".onnx" for part in parts(cfg)}

    @classmethod
    def ready(cls, cache_dir: Path, fingerprint: str, int8: bool, cfg) -> bool:
        """True when every part is already exported (a start needs no PyTorch modules)."""
        try:
            return all(p.is_file() for p in cls.paths(cache_dir, fingerprint, int8,
                                                      cfg).values())
        except ImportError:
            return False

    def _session(self, path: Path):
        ort = self._ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def _run(self, part: str, **inputs: torch.Tensor) -> torch.Tensor:
        feeds = {k: np.ascontiguousarray(v.detach().cpu().numpy()) for k, v in inputs.items()}
        return torch.from_numpy(self.sessions[part].run(None, feeds)[0])

    def _check(self, part: str, exact: bool) -> None:
        """Compare with eager on a batch size and text length the trace never saw: a graph
        that baked in a shape (or lost a branch) fails here, before any vector is made."""
        inputs = sample_inputs(self.retriever, 3, 7)[part]
        got = self._run(part, **inputs)
        with torch.no_grad():
            want = _module(self.retriever, part)(*inputs.values())
        if got.shape != want.shape or not torch.isfinite(got).all():
            raise EngineUnavailable(f"{part}: ONNX output {tuple(got.shape)} vs eager "
                                    f"{tuple(want.shape)}")
        diff = (got - want).abs().max().item()
        if exact and diff > EXPORT_CHECK_ATOL * max(1.0, want.abs().max().item()):
            raise EngineUnavailable(f"{part}: ONNX differs from eager by {diff:.2e}")

    def grid(self, pixels: torch.Tensor) -> torch.Tensor:
        return self._run("backbone", pixels=pixels)

    def reference(self, whole, crop, input_ids, attention_mask) -> torch.Tensor:
        feeds = {"whole": whole, "crop": crop, "input_ids": input_ids,
                 "attention_mask": attention_mask}
        if "phrase" in self.sessions:
            feeds["phrase"] = self.phrase(input_ids, attention_mask)
        return self._run("reference", **feeds)

    def phrase(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The phrase path's frozen sentence embedding, one text at a time and without its
        padding (the tokenizer pads on the right): dynamic int8 scales the activations of a
        call as a whole, so this way a text's embedding never depends on the other texts of
        its batch, and no work goes to padding."""
        lengths = attention_mask.sum(dim=1).tolist()
        return torch.cat([self._run("phrase", input_ids=input_ids[i:i + 1, :n],
                                    attention_mask=attention_mask[i:i + 1, :n])
                          for i, n in enumerate(lengths)])

    def target(self, whole, crop) -> torch.Tensor:
        return self._run("target", whole=whole, crop=crop)


def resolve_engine_name(name: str | None, device: torch.device) -> str:
    """``name`` or ENCODER_ENGINE (environment or .env) or auto; auto is ONNX Runtime on the
    CPU, eager on CUDA."""
    from project_settings import setting

    configured = None if name else setting(ENGINE_ENV)
    name = (name or configured or "auto").strip().lower()
    if name not in ENGINES:
        removed = " (removed: git tag experiments-before-cleanup)" if name == "compile" else ""
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {name!r}{removed}"
                         f"{f' (from {ENGINE_ENV})' if configured else ''}")
    if name == "auto":
        return "eager" if device.type != "cpu" else CPU_DEFAULT
    return name


def make_engine(retriever: Retriever, name: str | None = None,
                cache_dir: str | Path | None = None):
    """The engine ``name`` for ``retriever`` (see resolve_engine_name), or eager with one
    warning when it cannot run here."""
    name = resolve_engine_name(name, retriever.device)
    if name == "eager":
        return EagerEngine(retriever)
    if retriever.device.type != "cpu" and name.startswith("onnx"):
        log.warning("engine %s runs on the CPU only; using eager on %s", name, retriever.device)
        return EagerEngine(retriever)
    try:
        directory = Path(cache_dir) if cache_dir else cache_dir_for(None)
        with _quiet():
            return OnnxEngine(retriever, directory, int8=name == "onnx-int8")
    except Exception as exc:  # noqa: BLE001 -- any failure of an optional runtime means eager
        log.warning("engine %s unavailable (%s: %s); using eager PyTorch", name,
                    type(exc).__name__, exc)
        return EagerEngine(retriever)


@contextlib.contextmanager
def _quiet():
    """The exporters and ORT log warnings about every traced branch: keep the caller's log
    to our one line."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "onnxruntime", "root")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
