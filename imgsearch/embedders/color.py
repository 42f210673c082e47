"""Weight-free colour descriptor and palette (hex, shop colour name, fraction).

The descriptor is a soft-binned HSV histogram: 12 hues x 3 saturations x 3 values for
chromatic pixels plus 8 grey levels for achromatic ones (116 dims), square-rooted (Hellinger)
and L2-normalised so cosine similarity compares colour distributions. A near-uniform
background (what the image border is mostly made of) is left out when enough foreground
remains, so a red dress on white reads as red, not white.

Colour queries ("items in this teal and white") use the same histogram: one to five hex
colours with weights are the pixels of an image made of those colours in those proportions,
so ``colour_query_vector`` lies in the descriptor's own space (``ColorEmbedder.embed_colours``).

Stored per image (``extra_fields``): ``palette`` (``[{hex, name, fraction}]``), ``colors``
(names covering at least 10 %), and the Flow-style fields ``color_palette_hex``,
``color_palette_freq`` and ``color_names`` (the palette as three aligned lists, largest share
first) and ``color_isolated``: the product stands on a plain background, i.e. at least 80 % of
the thumbnail's border is one colour (within RGB distance 30 of the border's median colour)
and at least 5 % of the image differs from it (what ``foreground_pixels`` treats as a
background to leave out).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from PIL import Image

from imgsearch.embedders.base import EmbedderInfo

_SIDE = 64
_HUES, _SATS, _VALS, _GREYS = 12, 3, 3, 8
DIM = _HUES * _SATS * _VALS + _GREYS
_CHROMA_SAT = 0.2  # below this saturation (or value) a pixel counts as grey
_CHROMA_VAL = 0.2
_BG_TOLERANCE = 30.0  # RGB distance from the border colour counted as background
_BG_BORDER_SHARE = 0.8  # share of border pixels that must match for a background
_MIN_FOREGROUND = 0.05
_PALETTE_SIZE = 5
_MIN_SHARE = 0.03  # palette entries below this share are dropped
_NAME_SHARE = 0.10  # a colour name is a facet value only above this share

COLOR_NAMES = (
    "black", "white", "grey", "red", "orange", "yellow", "green",
    "blue", "navy", "purple", "pink", "brown", "beige",
)  # fmt: skip


def small_rgb(image: Image.Image) -> npt.NDArray[np.uint8]:
    """A ``(64, 64, 3)`` thumbnail; colour statistics do not need more."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    small = rgb.resize((_SIDE, _SIDE), Image.Resampling.BOX, reducing_gap=2.0)
    return np.asarray(small, dtype=np.uint8)


def foreground_mask(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_] | None:
    """Which of the ``(n, 3)`` flattened pixels are not a uniform background; ``None`` when
    the image has no such background (or nearly nothing stands on it)."""
    flat = pixels.reshape(-1, 3)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]]).astype(float)
    colour = np.median(border, axis=0)
    if np.mean(np.linalg.norm(border - colour, axis=1) < _BG_TOLERANCE) < _BG_BORDER_SHARE:
        return None
    keep = np.linalg.norm(flat.astype(float) - colour, axis=1) >= _BG_TOLERANCE
    return keep if keep.mean() >= _MIN_FOREGROUND else None


def foreground_pixels(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """``(n, 3)`` pixels without a uniform background, or all pixels if there is none."""
    flat = pixels.reshape(-1, 3)
    keep = foreground_mask(pixels)
    return flat if keep is None else flat[keep]


def is_isolated(pixels: npt.NDArray[np.uint8]) -> bool:
    """The product stands on a plain background (see the module docstring)."""
    return foreground_mask(pixels) is not None


def rgb_to_hsv(rgb: npt.NDArray[np.generic]) -> npt.NDArray[np.float64]:
    """``(n, 3)`` RGB 0-255 to HSV with hue in degrees [0, 360), s and v in [0, 1]."""
    values = np.asarray(rgb, dtype=np.float64).reshape(-1, 3) / 255.0
    top = values.max(axis=1)
    span = top - values.min(axis=1)
    safe = np.where(span == 0, 1.0, span)
    red, green, blue = values.T
    hue = np.select(
        [top == red, top == green],
        [((green - blue) / safe) % 6, (blue - red) / safe + 2],
        (red - green) / safe + 4,
    )
    hue = np.where(span == 0, 0.0, hue * 60.0)
    sat = np.where(top == 0, 0.0, span / np.where(top == 0, 1.0, top))
    return np.stack([hue % 360.0, sat, top], axis=1)


def colour_histogram(
    pixels: npt.NDArray[np.generic], weights: npt.NDArray[np.float64] | None = None
) -> npt.NDArray[np.float32]:
    """Soft-binned HSV histogram: each pixel votes for its neighbouring bins by distance,
    so a colour near a bin edge does not flip the whole vector. ``weights`` (one per pixel)
    count a pixel as that many pixels; ``None`` counts each once."""
    hue, sat, val = rgb_to_hsv(pixels).T
    votes = np.ones(len(hue)) if weights is None else np.asarray(weights, dtype=np.float64)
    chromatic = ((sat >= _CHROMA_SAT) & (val >= _CHROMA_VAL)) * votes
    achromatic = ~((sat >= _CHROMA_SAT) & (val >= _CHROMA_VAL)) * votes
    counts = np.zeros(DIM, np.float64)
    h_lo, h_w = _soft(hue / 360.0 * _HUES, _HUES, circular=True)
    s_lo, s_w = _soft((sat - _CHROMA_SAT) / (1 - _CHROMA_SAT) * _SATS, _SATS)
    v_lo, v_w = _soft((val - _CHROMA_VAL) / (1 - _CHROMA_VAL) * _VALS, _VALS)
    for dh in (0, 1):
        for ds in (0, 1):
            for dv in (0, 1):
                h = (h_lo + dh) % _HUES
                s = np.minimum(s_lo + ds, _SATS - 1)
                v = np.minimum(v_lo + dv, _VALS - 1)
                weight = _pick(h_w, dh) * _pick(s_w, ds) * _pick(v_w, dv) * chromatic
                np.add.at(counts, (h * _SATS + s) * _VALS + v, weight)
    g_lo, g_w = _soft(val * _GREYS, _GREYS)
    offset = _HUES * _SATS * _VALS
    for dg in (0, 1):
        bins = offset + np.minimum(g_lo + dg, _GREYS - 1)
        np.add.at(counts, bins, _pick(g_w, dg) * achromatic)
    root = np.sqrt(counts / max(counts.sum(), 1e-12))
    unit = root / max(float(np.linalg.norm(root)), 1e-12)
    return np.asarray(unit, dtype=np.float32)


def _soft(
    position: npt.NDArray[np.float64], bins: int, *, circular: bool = False
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Lower bin index and the weight of the upper neighbour for positions in [0, bins]."""
    centred = position - 0.5
    if not circular:
        centred = np.clip(centred, 0.0, bins - 1.0)
    lower = np.floor(centred)
    return (lower.astype(np.int64) % bins), centred - lower


def _pick(upper_weight: npt.NDArray[np.float64], upper: int) -> npt.NDArray[np.float64]:
    return upper_weight if upper else 1.0 - upper_weight


def colour_name(rgb: Sequence[int]) -> str:
    """The shop colour name for one RGB colour (rules in HSV, tuned on clothing photos)."""
    hue, sat, val = rgb_to_hsv(np.array(rgb))[0]
    if val < 0.18:
        return "black"
    if sat < 0.15 or (sat < 0.25 and val < 0.35):
        return "white" if val > 0.85 else "grey" if val > 0.25 else "black"
    if 15 <= hue < 50 and sat < 0.45 and val > 0.65:
        return "beige"
    if 10 <= hue < 50 and val < 0.6:
        return "brown"
    if 190 <= hue < 260 and val < 0.45:
        return "navy"
    if hue < 15 or hue >= 340:
        return "pink" if sat < 0.45 and val > 0.7 else "red"
    for upper, name in ((45, "orange"), (70, "yellow"), (165, "green"), (260, "blue")):
        if hue < upper:
            return name
    return "purple" if hue < 300 else "pink"


def palette(pixels: npt.NDArray[np.uint8]) -> list[dict[str, object]]:
    """Up to five dominant colours by median cut, shares renormalised to sum to 1."""
    strip = Image.fromarray(np.ascontiguousarray(pixels.reshape(1, -1, 3)))
    quantized = strip.quantize(colors=_PALETTE_SIZE, method=Image.Quantize.MEDIANCUT)
    table = quantized.getpalette() or []
    counts = sorted(quantized.getcolors() or [], key=lambda item: (-item[0], item[1]))
    total = float(sum(count for count, _ in counts))
    kept = [(count, index) for count, index in counts if count / total >= _MIN_SHARE] or counts[:1]
    kept_total = float(sum(count for count, _ in kept))
    entries: list[dict[str, object]] = []
    for count, index in kept:
        assert isinstance(index, int)  # a "P" image's colours are palette indexes
        rgb = table[3 * index : 3 * index + 3]
        entries.append(
            {
                "hex": "#{:02x}{:02x}{:02x}".format(*rgb),
                "name": colour_name(rgb),
                "fraction": count / kept_total,
            }
        )
    return entries


MAX_QUERY_COLOURS = 5
_HEX = re.compile(r"#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})")


def parse_hex(text: str) -> tuple[int, int, int]:
    """``#rrggbb``, ``rrggbb``, ``#rgb`` or ``rgb`` → (r, g, b); ``ValueError`` otherwise."""
    match = _HEX.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a hex colour (#rrggbb)")
    digits = match.group(1)
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


def colour_query_vector(colours: Sequence[tuple[str, float]]) -> npt.NDArray[np.float32]:
    """The descriptor of an image made of ``colours`` (hex, weight) in those proportions.

    Weights must be positive and finite; they are shares (normalised to sum to 1). One to
    ``MAX_QUERY_COLOURS`` colours; ``ValueError`` otherwise.
    """
    if not 1 <= len(colours) <= MAX_QUERY_COLOURS:
        raise ValueError(f"give 1 to {MAX_QUERY_COLOURS} colours, not {len(colours)}")
    rgb = np.array([parse_hex(hex_text) for hex_text, _ in colours], dtype=np.float64)
    weights = np.array([float(weight) for _, weight in colours], dtype=np.float64)
    if not (np.isfinite(weights).all() and (weights > 0).all()):
        raise ValueError("colour weights must be positive numbers")
    return colour_histogram(rgb, weights / weights.sum())


def colour_names(entries: Sequence[dict[str, object]]) -> list[str]:
    """Names covering at least 10% of the image, largest first (at least the top one)."""
    shares: dict[str, float] = {}
    for entry in entries:
        name, fraction = str(entry["name"]), entry["fraction"]
        assert isinstance(fraction, float)
        shares[name] = shares.get(name, 0.0) + fraction
    ranked = sorted(shares, key=lambda name: -shares[name])
    return [name for name in ranked if shares[name] >= _NAME_SHARE] or ranked[:1]


# v2: the same vectors as v1; the documents gained the color_* palette fields (the mapping
# changed, so indexes written by v1 are rebuilt with ``imgsearch index --rebuild``).
VERSION = "hsv-softhist-12x3x3+8/fg/v2"


class ColorEmbedder:
    """HSV histogram vectors (cosine) plus the palette document fields (module docstring)."""

    def __init__(self) -> None:
        self._info = EmbedderInfo(embedder="color", version=VERSION, dim=DIM, storage="knn_cosine")

    @property
    def info(self) -> EmbedderInfo:
        return self._info

    def embed_images(self, images: Sequence[Image.Image]) -> npt.NDArray[np.float32]:
        rows = [colour_histogram(foreground_pixels(small_rgb(image))) for image in images]
        return np.stack(rows) if rows else np.zeros((0, DIM), np.float32)

    def field_value(self, row: npt.NDArray[np.float32]) -> object:
        return [float(x) for x in row]

    def embed_colours(self, colours: Sequence[tuple[str, float]]) -> npt.NDArray[np.float32]:
        """A colour query (hex, weight) as one vector of this space (``ValueError`` if bad)."""
        return colour_query_vector(colours)

    def extra_fields(self, image: Image.Image) -> dict[str, object]:
        pixels = small_rgb(image)
        entries = palette(foreground_pixels(pixels))
        return {
            "palette": entries,
            "colors": colour_names(entries),
            "color_palette_hex": [entry["hex"] for entry in entries],
            "color_palette_freq": [entry["fraction"] for entry in entries],
            "color_names": [entry["name"] for entry in entries],
            "color_isolated": is_isolated(pixels),
        }
