"""CLIP image and text embeddings with open_clip, loaded strictly from local files.

Weights come from the Hugging Face cache (a pretrained tag) or a checkpoint file; the build and
CI machines cannot download, so a missing file is a ``ConfigError`` that says how to provide
it, never a hang on the network. Tests use ``imgsearch-tiny`` (a config shipped in
``model_configs/``) with seeded random weights through the very same loading path.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import open_clip
import torch
from PIL import Image

from imgsearch.embedders.base import EmbedderInfo
from imgsearch.engine_config import ClipSpec
from imgsearch.errors import ConfigError, EmbeddingFailed

MODEL_CONFIGS = Path(__file__).resolve().parent / "model_configs"
_BICUBIC = Image.Resampling.BICUBIC
_INTERPOLATIONS = {"bicubic": _BICUBIC, "bilinear": Image.Resampling.BILINEAR}


@cache
def register_model_configs() -> None:
    """Make the shipped architectures (``imgsearch-tiny``) known to open_clip, once."""
    open_clip.add_model_config(MODEL_CONFIGS)


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class ClipPreprocessing:
    """The image side both CLIP runtimes share (torch here, ONNX Runtime in clip_onnx.py):
    the same tensors whichever runs the model. Set ``_fast`` (or ``_transform``)."""

    _fast: _FastPreprocess | None
    _transform: Any

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """One image as a normalised ``(3, H, W)`` tensor; safe to call from worker threads."""
        if self._fast is not None:
            return self._fast(image)
        tensor: torch.Tensor = self._transform(image)
        return tensor

    def preprocess_batch(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return torch.stack([self.preprocess(image) for image in images])


class ClipEmbedder(ClipPreprocessing):
    """open_clip model + tokenizer; images and texts land in the same L2-normalised space."""

    def __init__(self, spec: ClipSpec, *, device: str | None = None) -> None:
        register_model_configs()
        self.spec = spec
        self.device = resolve_device(device or spec.device)
        weights, version, preprocess_cfg = _resolve_weights(spec)
        try:
            model, _, transform = open_clip.create_model_and_transforms(
                spec.model,
                pretrained=str(weights),
                device=self.device,
                **preprocess_cfg,
            )
            self._tokenizer = open_clip.get_tokenizer(spec.model)
        except Exception as exc:  # torch/open_clip raise many types for a bad file
            raise ConfigError(f"cannot load CLIP {spec.model} from {weights}: {exc}") from exc
        model.eval()
        self._model: Any = model
        self._transform: Any = transform
        self._batch_size = spec.batch_size
        self._fast = _FastPreprocess.from_model(model)
        dim = int(self.embed_preprocessed(self.preprocess_batch([_blank()])).shape[1])
        self._info = EmbedderInfo(embedder="clip", version=version, dim=dim, storage="knn_cosine")

    @property
    def info(self) -> EmbedderInfo:
        return self._info

    @property
    def model(self) -> Any:
        """The loaded open_clip model, which the ONNX export (``clip_onnx_export``) reads."""
        return self._model

    def embed_preprocessed(self, batch: torch.Tensor) -> npt.NDArray[np.float32]:
        """Embed a stacked ``(n, 3, H, W)`` batch from ``preprocess``."""
        try:
            with torch.inference_mode():
                features = self._model.encode_image(batch.to(self.device), normalize=True)
            return _as_float32(features)
        except Exception as exc:  # torch raises RuntimeError, ValueError, CUDA errors...
            raise EmbeddingFailed(f"CLIP image embedding failed: {exc}") from exc

    def embed_images(self, images: Sequence[Image.Image]) -> npt.NDArray[np.float32]:
        chunks = [
            self.embed_preprocessed(self.preprocess_batch(images[start : start + self._batch_size]))
            for start in range(0, len(images), self._batch_size)
        ]
        return np.concatenate(chunks) if chunks else np.zeros((0, self._info.dim), np.float32)

    def embed_texts(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self._info.dim), np.float32)
        try:
            tokens = self._tokenizer(list(texts)).to(self.device)
            with torch.inference_mode():
                features = self._model.encode_text(tokens, normalize=True)
            return _as_float32(features)
        except Exception as exc:
            raise EmbeddingFailed(f"CLIP text embedding failed: {exc}") from exc

    def field_value(self, row: npt.NDArray[np.float32]) -> object:
        return [float(x) for x in row]

    def extra_fields(self, image: Image.Image) -> dict[str, object]:
        return {}


class _FastPreprocess:
    """open_clip's eval transform (resize shortest side, centre crop, normalise) without
    torchvision's per-call overhead; equal to it to float rounding (see the unit tests)."""

    def __init__(self, size: int, mean: Sequence[float], std: Sequence[float], resample: int):
        self.size = size
        self.resample = resample
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1) * 255.0
        self.scale = 1.0 / (torch.tensor(std, dtype=torch.float32).view(3, 1, 1) * 255.0)

    @classmethod
    def from_model(cls, model: Any) -> _FastPreprocess | None:
        return cls.from_cfg(getattr(model.visual, "preprocess_cfg", None) or {})

    @classmethod
    def from_cfg(cls, cfg: dict[str, Any]) -> _FastPreprocess | None:
        """From open_clip's ``preprocess_cfg``; None where it needs torchvision's transform."""
        size = cfg.get("size")
        if isinstance(size, list | tuple):
            size = size[0] if len(set(size)) == 1 else None
        resample = _INTERPOLATIONS.get(str(cfg.get("interpolation")))
        if not isinstance(size, int) or resample is None or cfg.get("resize_mode") != "shortest":
            return None
        return cls(size, cfg["mean"], cfg["std"], resample)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        if image.mode != "RGB":
            image = image.convert("RGB")
        width, height = image.size
        if width <= height:
            new_size = (self.size, int(self.size * height / width))
        else:
            new_size = (int(self.size * width / height), self.size)
        if new_size != image.size:
            image = image.resize(new_size, self.resample)
        left = round((new_size[0] - self.size) / 2.0)
        top = round((new_size[1] - self.size) / 2.0)
        image = image.crop((left, top, left + self.size, top + self.size))
        pixels = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy())
        return (pixels.permute(2, 0, 1).float() - self.mean).mul_(self.scale)


def write_seeded_checkpoint(path: Path, *, model: str = "imgsearch-tiny", seed: int = 0) -> Path:
    """Save a state dict of ``model`` with seeded random weights: offline test weights that
    load through the same ``ClipSpec(checkpoint=...)`` path as real ones."""
    register_model_configs()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = open_clip.create_model(model, pretrained=None, device="cpu")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(network.state_dict(), path)
    return path


def _resolve_weights(spec: ClipSpec) -> tuple[Path, str, dict[str, Any]]:
    """The local weights file, the version string recorded in the index, preprocessing."""
    if spec.checkpoint is not None:
        path = spec.checkpoint.expanduser()
        if not path.is_file():
            raise ConfigError(f"CLIP checkpoint {path} does not exist or is not a file")
        return path, f"open_clip/{spec.model}/sha256:{_sha256_prefix(path)}", {}
    if spec.pretrained is None:
        raise ConfigError(
            f"CLIP {spec.model}: set `pretrained` (a tag such as laion2b_s34b_b79k) or "
            "`checkpoint` (a local weights file); random weights are never used silently"
        )
    cfg: dict[str, Any] = open_clip.get_pretrained_cfg(spec.model, spec.pretrained)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(spec.model)
        raise ConfigError(f"CLIP {spec.model} has no pretrained tag {spec.pretrained!r}: {tags}")
    cached = _cached_file(cfg)
    if cached is None:
        raise ConfigError(
            f"CLIP weights {spec.model}/{spec.pretrained} are not on this machine and will not "
            "be downloaded. Either copy a Hugging Face cache that has them (set HF_HOME or "
            'HF_HUB_CACHE to it; fill it on a machine with internet with: python -c "import '
            f"open_clip; open_clip.create_model('{spec.model}', "
            f"pretrained='{spec.pretrained}')\"), "
            "or set `checkpoint:` in the engine config to a local open_clip weights file."
        )
    keys = {"mean": "image_mean", "std": "image_std"}
    keys |= {"interpolation": "image_interpolation", "resize_mode": "image_resize_mode"}
    preprocess = {arg: cfg[key] for key, arg in keys.items() if key in cfg}
    return cached, f"open_clip/{spec.model}/{spec.pretrained}", preprocess


def _cached_file(cfg: dict[str, Any]) -> Path | None:
    """Where a download would have put the tag's weights, if it is there; no network."""
    if cfg.get("file"):
        return Path(cfg["file"]) if Path(cfg["file"]).is_file() else None
    hub = str(cfg.get("hf_hub", ""))
    if hub:
        from huggingface_hub import try_to_load_from_cache

        repo, filename = os.path.split(hub)
        names = [filename] if filename else []
        names += ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        for name in names:
            found = try_to_load_from_cache(repo, name)
            if isinstance(found, str) and Path(found).is_file():
                return Path(found)
    url = str(cfg.get("url", ""))
    if url:
        candidate = Path("~/.cache/clip").expanduser() / Path(url).name
        if candidate.is_file():
            return candidate
    return None


def _sha256_prefix(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _as_float32(features: torch.Tensor) -> npt.NDArray[np.float32]:
    return np.ascontiguousarray(features.float().cpu().numpy(), dtype=np.float32)


def _blank() -> Image.Image:
    return Image.new("RGB", (8, 8))
