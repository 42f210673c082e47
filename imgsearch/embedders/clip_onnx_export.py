"""Export open_clip's image and text towers to ONNX: fp32, and int8 by dynamic quantisation.

The files come from the very weights the torch path loads (never from a download) and live in
a cache folder named after those weights' identity, the torch embedder's version string, so
other weights never reuse them. Each file is compared with its source on a fixed input before
it is kept, and a file is only ever replaced whole, so a crash or a second process exporting
at the same time cannot leave half a model behind.
"""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import numpy.typing as npt
import onnxruntime as ort  # type: ignore[import-untyped]
import open_clip
import torch
from torch.jit._trace import TracerWarning

from imgsearch.embedders.clip import ClipEmbedder, _resolve_weights, register_model_configs
from imgsearch.engine_config import ClipSpec
from imgsearch.errors import ConfigError

logger = logging.getLogger(__name__)

T = TypeVar("T")
OnnxRuntime = Literal["onnx", "onnx-int8"]
# Bump when what is exported changes, so that older cached files are not reused.
EXPORT_REVISION = 1
OPSET = 17
# A sound export reproduces its source to float noise (cosine > 0.9999); int8 stays > 0.999 on
# the seeded test and benchmark models. Below this the file is refused, not cached.
MIN_EXPORT_COSINE = 0.99
FILES: dict[OnnxRuntime, tuple[str, str]] = {
    "onnx": ("image.onnx", "text.onnx"),
    "onnx-int8": ("image-int8.onnx", "text-int8.onnx"),
}
META = "meta.json"
PROBE_TEXTS = ("a photo of a red dress", "blue denim jeans", "white leather sneakers")


@dataclass(frozen=True)
class ExportedTowers:
    """One runtime's two ONNX files and the folder's ``meta.json`` (dim, preprocessing,
    each file's worst cosine to its source)."""

    image: Path
    text: Path
    meta: dict[str, Any]

    @property
    def dim(self) -> int:
        return int(self.meta["dim"])

    @property
    def preprocess(self) -> dict[str, Any]:
        """open_clip's ``preprocess_cfg`` of the exported model (the torch path's own)."""
        return dict(self.meta["preprocess"])


def weights_version(spec: ClipSpec) -> str:
    """The identity of ``spec``'s weights: the torch embedder's version string."""
    register_model_configs()
    return _resolve_weights(spec)[1]


def cache_root(explicit: Path | None = None) -> Path:
    """``explicit``, else ``$IMGSEARCH_ONNX_CACHE``, else ``$XDG_CACHE_HOME/imgsearch/onnx``."""
    if explicit is not None:
        return explicit.expanduser()
    if os.environ.get("IMGSEARCH_ONNX_CACHE"):
        return Path(os.environ["IMGSEARCH_ONNX_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "imgsearch" / "onnx"


def export_folder(weights_version: str, root: Path) -> Path:
    """The cache folder of one set of weights (their torch version string, made a file name)."""
    return root / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', weights_version)}-r{EXPORT_REVISION}"


def ensure_exported(
    spec: ClipSpec, runtime: OnnxRuntime, weights_version: str, root: Path
) -> ExportedTowers:
    """``runtime``'s towers for ``spec``'s weights; exports or quantises only what is missing."""
    folder = export_folder(weights_version, root)
    if not _complete(folder, "onnx"):
        _export_fp32(spec, folder)
    if runtime == "onnx-int8" and not _complete(folder, runtime):
        _quantize(folder)
    image, text = (folder / name for name in FILES[runtime])
    return ExportedTowers(image, text, read_meta(folder))


def _complete(folder: Path, runtime: OnnxRuntime) -> bool:
    names = (*FILES[runtime], META)
    return all((folder / name).is_file() for name in names)


def read_meta(folder: Path) -> dict[str, Any]:
    try:
        meta: dict[str, Any] = json.loads((folder / META).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{folder / META}: {exc}; delete {folder} to export again") from exc
    return meta


def _export_fp32(spec: ClipSpec, folder: Path) -> None:
    """Trace the loaded torch model's two towers into ONNX files and check them against it."""
    torch_spec = spec.model_copy(update={"runtime": "torch", "device": "cpu"})
    reference = ClipEmbedder(torch_spec, device="cpu")
    model = reference.model
    logger.info("exporting CLIP %s towers to ONNX in %s", spec.model, folder)
    folder.mkdir(parents=True, exist_ok=True)
    pixels = _probe_pixels(model)
    tokens = open_clip.get_tokenizer(spec.model)(list(PROBE_TEXTS))
    image_name, text_name = FILES["onnx"]
    parity = {
        image_name: _export_tower(_Tower(model, "image"), pixels, "pixels", folder / image_name),
        text_name: _export_tower(_Tower(model, "text"), tokens, "tokens", folder / text_name),
    }
    preprocess = {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in model.visual.preprocess_cfg.items()
    }
    meta = {
        "revision": EXPORT_REVISION,
        "weights": reference.info.version,
        "model": spec.model,
        "dim": reference.info.dim,
        "preprocess": preprocess,
        "min_cosine_to_source": parity,
        "exported_with": {"torch": torch.__version__, "onnxruntime": ort.__version__},
    }
    _replace(folder / META, lambda tmp: tmp.write_text(json.dumps(meta, indent=2)))


class _Tower(torch.nn.Module):
    """The model's image or text tower as a module (what the exporter traces), L2-normalised
    as the torch path's output; the other tower's weights are dropped from the file."""

    def __init__(self, model: Any, tower: Literal["image", "text"]) -> None:
        super().__init__()
        self.model = model
        self.tower = tower

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.tower == "image":
            image: torch.Tensor = self.model.encode_image(inputs, normalize=True)
            return image
        text: torch.Tensor = self.model.encode_text(inputs, normalize=True)
        return text


def _export_tower(tower: _Tower, probe: torch.Tensor, input_name: str, path: Path) -> float:
    """Write ``tower`` to ``path`` (batch size free); its worst cosine to torch on ``probe``
    (traced with two rows, checked with three, so the free batch size is checked too)."""

    def write(tmp: Path) -> float:
        with warnings.catch_warnings():
            # torch >= 2.9 flags the TorchScript exporter as deprecated; the dynamo one needs
            # onnxscript and took 4.5x as long for the ViT-B-32 image tower (ran no faster).
            warnings.simplefilter("ignore", DeprecationWarning)
            # The text tower pools at argmax(tokens): indices are never negative.
            warnings.filterwarnings("ignore", "Exporting aten::index operator", UserWarning)
            # Shape checks (embed_dim != ...) are traced as constants; only the batch size
            # varies, and the probe's batch size differs from the traced one to check that.
            warnings.simplefilter("ignore", TracerWarning)
            try:
                torch.onnx.export(
                    tower,
                    (probe[:2],),
                    str(tmp),
                    input_names=[input_name],
                    output_names=["embedding"],
                    dynamic_axes={input_name: {0: "batch"}, "embedding": {0: "batch"}},
                    opset_version=OPSET,
                    dynamo=False,
                )
            except Exception as exc:  # the exporter raises many types for an unsupported op
                raise ConfigError(f"cannot export {path.name}: {exc}; use runtime torch") from exc
        with torch.inference_mode():
            expected = tower(probe).numpy()
        return _check(tmp, {input_name: probe.numpy()}, expected, path.name)

    return _replace(path, write)


def _quantize(folder: Path) -> None:
    """int8 weights for every MatMul/Gemm (per output channel), activations quantised per
    call; the patch convolution stays fp32 (ConvInteger was slower than fp32 Conv here)."""
    meta = read_meta(folder)
    pixels = np.random.default_rng(0).standard_normal((3, 3, *_image_size(meta)), np.float32)
    tokens = open_clip.get_tokenizer(str(meta["model"]))(list(PROBE_TEXTS)).numpy()
    probes = {"pixels": pixels, "tokens": tokens}
    for source, target in zip(FILES["onnx"], FILES["onnx-int8"], strict=True):
        cosine = _quantize_file(folder / source, folder / target, probes)
        meta["min_cosine_to_source"][target] = cosine
    logger.info("quantised CLIP %s towers to int8 in %s", meta["model"], folder)
    _replace(folder / META, lambda tmp: tmp.write_text(json.dumps(meta, indent=2)))


def _quantize_file(source: Path, target: Path, probes: dict[str, npt.NDArray[Any]]) -> float:
    from onnxruntime.quantization import (  # type: ignore[import-untyped]
        QuantType,
        quantize_dynamic,
    )

    session = open_session(source)
    inputs = {name: probes[name] for name in (i.name for i in session.get_inputs())}
    expected = session.run(None, inputs)[0]

    def write(tmp: Path) -> float:
        quantize_dynamic(
            source,
            tmp,
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul", "Gemm"],
        )
        return _check(tmp, inputs, expected, target.name)

    return _replace(target, write)


def _check(
    path: Path, inputs: dict[str, npt.NDArray[Any]], expected: npt.NDArray[Any], name: str
) -> float:
    """The worst row cosine of ``path``'s output to ``expected``; refused below the floor."""
    got = open_session(path).run(None, inputs)[0]
    cosine = float(np.min(np.sum(got * expected, axis=1)))
    if not cosine >= MIN_EXPORT_COSINE:
        raise ConfigError(
            f"ONNX export {name} reproduces its source only to cosine {cosine:.4f} "
            f"(< {MIN_EXPORT_COSINE}); use runtime torch for this model"
        )
    return cosine


def open_session(path: Path) -> Any:
    """A CPU session with every graph optimisation and as many threads as torch uses.

    Its threads sleep between calls instead of spinning: a spinning pool takes the cores
    that decoding, the web server and OpenSearch share with it (on 2 busy cores, int8
    single-photo p50 went from 66-99 ms spinning to 45-66 ms not spinning).
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ConfigError(f"cannot load {path}: {exc}; delete it to export again") from exc


def _replace(path: Path, write: Callable[[Path], T]) -> T:
    """``write`` a temporary file beside ``path``, then move it over ``path`` in one step."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        result = write(tmp)
        tmp.replace(path)
        return result
    finally:
        tmp.unlink(missing_ok=True)


def _probe_pixels(model: Any) -> torch.Tensor:
    size = model.visual.preprocess_cfg["size"]
    height, width = (size, size) if isinstance(size, int) else size
    generator = torch.Generator().manual_seed(0)
    return torch.randn((3, 3, height, width), generator=generator)


def _image_size(meta: dict[str, Any]) -> tuple[int, int]:
    size = meta["preprocess"]["size"]
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
