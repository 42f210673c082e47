"""Safe image decoding: untrusted bytes in, an RGB ``PIL.Image`` or one of our errors out.

Every image the indexer or gateway touches goes through ``decode_image``, so the caps
(bytes, pixels) and the colour-mode normalisation live in one place. Pillow's own
exceptions and warnings never escape: callers only ever see ``ImgSearchError`` subclasses.
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass

import numpy as np
import pybase64
from PIL import Image, ImageOps, UnidentifiedImageError

from imgsearch.errors import ImageDecodeError, ImageTooLarge, ImgSearchError, PayloadTooLarge

_WHITE = (255, 255, 255)
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_HIGH_DEPTH_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I", "F"})


@dataclass(frozen=True)
class ImageLimits:
    """Caps applied before any real work; ``target_side`` lets JPEG decode at reduced scale."""

    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000
    target_side: int = 512


def decode_image(data: bytes, limits: ImageLimits | None = None) -> Image.Image:
    """Decode ``data`` into an upright RGB image (first frame of animations)."""
    limits = limits or ImageLimits()
    if len(data) > limits.max_bytes:
        raise PayloadTooLarge(f"image is {len(data)} bytes; the limit is {limits.max_bytes}")
    if not data:
        raise ImageDecodeError("image data is empty")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > limits.max_pixels:
                raise ImageTooLarge(
                    f"image is {width}x{height} pixels; the limit is {limits.max_pixels} pixels"
                )
            if width == 0 or height == 0:
                raise ImageDecodeError("image has zero width or height")
            if image.format == "JPEG" and limits.target_side > 0:
                image.draft("RGB", (limits.target_side, limits.target_side))
            image.load()
            return _to_rgb(_upright(image))
    except ImgSearchError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(f"image rejected as a decompression bomb: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise ImageDecodeError("not an image, or an unsupported image format") from exc
    except Exception as exc:  # Pillow raises many types (OSError, SyntaxError, ValueError...)
        raise ImageDecodeError(_describe(exc)) from exc


def _describe(exc: Exception) -> str:
    text = str(exc)
    if "truncated" in text.lower() or isinstance(exc, EOFError):
        return "image data is truncated (the file ends before the image does)"
    return f"image could not be decoded ({type(exc).__name__}: {text[:200]})"


def _upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; a broken EXIF block keeps the image as stored."""
    try:
        return ImageOps.exif_transpose(image)
    except (ValueError, TypeError, KeyError, SyntaxError, OSError):
        return image.copy()


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in _ALPHA_MODES or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, _WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if mode in _HIGH_DEPTH_MODES:
        return _grey_to_rgb(image)
    return image.convert("RGB")


def _grey_to_rgb(image: Image.Image) -> Image.Image:
    """16-bit, 32-bit and float greys scaled to 8 bits (Pillow would clip them to white)."""
    values = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        peak = float(values.max()) if values.size else 0.0
        scale = 255.0 if peak <= 1.0 else 1.0
    elif image.mode.startswith("I;16") or float(values.max(initial=0.0)) > 255.0:
        scale = 255.0 / 65535.0
    else:
        scale = 1.0
    grey = np.clip(np.nan_to_num(values * scale), 0, 255).astype(np.uint8)
    return Image.fromarray(grey).convert("RGB")


def image_bytes_from_base64(text: str, field: str = "image") -> bytes:
    """Bytes of a base64 image as APIs send it (``data:`` URLs too); errors name ``field``.

    Accepts exactly what ``base64.b64decode`` accepts: canonical base64 takes pybase64's SIMD
    path (~30x faster; a query photo's base64 was ~0.1 ms of every search's own time,
    BENCHMARKS "The gateway's own overhead"), anything else the standard library's lenient one.
    """
    if text.startswith("data:"):
        text = text.partition(",")[2]
    text = text.strip()
    try:
        return pybase64.b64decode(text, validate=True)
    except ValueError:
        pass
    try:
        return base64.b64decode(text, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise ImageDecodeError(f"Field {field} is not valid base64") from exc
