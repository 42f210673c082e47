"""Augmented copies of an image, for self-supervised fine-tuning of collections without labels.

The changes a search should not care about (another crop of the same photo, a mirror, a
small turn, other lighting) are applied at random; the adapter learns to map a photo and its
copy close together. Seeded: the same image and generator give the same copy.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageEnhance


def augmented_copy(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A random crop (60-100 % of the area), maybe mirrored, turned by up to 10°, with
    brightness, contrast and saturation changed by up to 20 %."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    width, height = rgb.size
    area = rng.uniform(0.6, 1.0)
    aspect = float(np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3))))
    crop_w = min(width, max(1, round(width * np.sqrt(area * aspect))))
    crop_h = min(height, max(1, round(height * np.sqrt(area / aspect))))
    left = int(rng.integers(0, width - crop_w + 1))
    top = int(rng.integers(0, height - crop_h + 1))
    out = rgb.crop((left, top, left + crop_w, top + crop_h))
    if rng.random() < 0.5:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    fill = tuple(int(c) for c in np.asarray(out).reshape(-1, 3)[0])
    out = out.rotate(float(rng.uniform(-10, 10)), Image.Resampling.BILINEAR, fillcolor=fill)
    for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        out = enhance(out).enhance(float(rng.uniform(0.8, 1.2)))
    return out
