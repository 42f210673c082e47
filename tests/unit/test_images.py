"""decode_image: every bad-input class, built as real files in the test, plus fuzzing."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from imgsearch.errors import ImageDecodeError, ImageTooLarge, ImgSearchError, PayloadTooLarge
from imgsearch.images import ImageLimits, decode_image, image_bytes_from_base64

LIMITS = ImageLimits()
DATASET = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "clothing" / "validation"


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def two_tone(mode: str = "RGB", size: tuple[int, int] = (60, 40)) -> Image.Image:
    """Left half red, right half blue: orientation and colour are both checkable."""
    image = Image.new("RGB", size, (255, 0, 0))
    image.paste((0, 0, 255), (size[0] // 2, 0, size[0], size[1]))
    return image.convert(mode) if mode != "RGB" else image


def close(pixel: object, expected: tuple[int, int, int], tolerance: int = 40) -> bool:
    assert isinstance(pixel, tuple)
    return all(abs(int(a) - b) <= tolerance for a, b in zip(pixel, expected, strict=True))


def test_plain_rgb_png_round_trips() -> None:
    image = decode_image(encode(two_tone(), "PNG"), LIMITS)
    assert image.mode == "RGB" and image.size == (60, 40)
    assert image.getpixel((0, 0)) == (255, 0, 0) and image.getpixel((59, 0)) == (0, 0, 255)


def test_cmyk_jpeg_becomes_rgb() -> None:
    data = encode(Image.new("CMYK", (64, 64), (0, 255, 255, 0)), "JPEG", quality=95)
    image = decode_image(data, LIMITS)
    assert image.mode == "RGB"
    assert close(image.getpixel((32, 32)), (255, 0, 0))


def test_palette_png_with_transparency_is_composited_on_white() -> None:
    palette_image = Image.new("P", (20, 20), 0)
    palette_image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette_image.paste(1, (10, 0, 20, 20))
    data = encode(palette_image, "PNG", transparency=0)
    image = decode_image(data, LIMITS)
    assert image.mode == "RGB"
    assert image.getpixel((0, 0)) == (255, 255, 255)  # transparent black -> white
    assert image.getpixel((15, 5)) == (255, 0, 0)


def test_la_image_with_alpha_is_composited_on_white() -> None:
    grey = Image.new("LA", (10, 10), (0, 0))
    grey.paste((0, 255), (5, 0, 10, 10))
    image = decode_image(encode(grey, "PNG"), LIMITS)
    assert image.getpixel((0, 0)) == (255, 255, 255)
    assert image.getpixel((7, 7)) == (0, 0, 0)


def test_rgba_half_transparent_blends_with_white() -> None:
    image = decode_image(encode(Image.new("RGBA", (4, 4), (0, 0, 0, 128)), "PNG"), LIMITS)
    assert close(image.getpixel((1, 1)), (127, 127, 127), tolerance=2)


def test_16_bit_grey_png_is_scaled_not_clipped() -> None:
    values = np.zeros((8, 16), np.uint16)
    values[:, 8:] = 65535
    values[:, 4:8] = 32768
    source = Image.fromarray(values)
    assert source.mode.startswith("I;16")
    image = decode_image(encode(source, "PNG"), LIMITS)
    assert image.mode == "RGB"
    assert image.getpixel((0, 0)) == (0, 0, 0)
    assert close(image.getpixel((5, 0)), (127, 127, 127), tolerance=2)
    assert image.getpixel((12, 0)) == (255, 255, 255)


def test_exif_orientation_is_applied() -> None:
    source = two_tone(size=(80, 40))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    data = encode(source, "JPEG", exif=exif.tobytes(), quality=95)
    image = decode_image(data, LIMITS)
    assert image.size == (40, 80)  # portrait after rotation
    assert close(image.getpixel((20, 5)), (255, 0, 0))  # red (left) is now on top
    assert close(image.getpixel((20, 75)), (0, 0, 255))


def test_large_jpeg_is_decoded_at_reduced_scale_but_not_below_target() -> None:
    data = encode(two_tone(size=(2400, 1800)), "JPEG")
    image = decode_image(data, ImageLimits(target_side=512))
    assert min(image.size) >= 512 and image.size[0] < 2400
    assert image.size[0] * 3 == image.size[1] * 4


def test_truncated_jpeg_is_a_decode_error() -> None:
    data = encode(two_tone(size=(300, 300)), "JPEG")
    with pytest.raises(ImageDecodeError, match="truncated"):
        decode_image(data[: len(data) // 2], LIMITS)


def test_truncated_png_is_a_decode_error() -> None:
    noise = np.random.default_rng(0).integers(0, 255, (100, 100, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), "PNG")
    with pytest.raises(ImageDecodeError):
        decode_image(data[: len(data) // 2], LIMITS)


def png_claiming(width: int, height: int) -> bytes:
    """A PNG header saying ``width x height`` followed by a tiny IDAT: a decompression bomb."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1000)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("side", [10_000, 50_000])  # 100 MP (Pillow warns), 2.5 GP (errors)
def test_header_claiming_huge_dimensions_is_refused_before_decoding(side: int) -> None:
    with pytest.raises(ImageTooLarge, match=r"pixels|bomb"):
        decode_image(png_claiming(side, side), LIMITS)


def test_pixel_cap_is_configurable() -> None:
    data = encode(Image.new("RGB", (100, 100)), "PNG")
    with pytest.raises(ImageTooLarge, match="100x100"):
        decode_image(data, ImageLimits(max_pixels=9_999))


def test_byte_cap() -> None:
    with pytest.raises(PayloadTooLarge):
        decode_image(b"x" * 101, ImageLimits(max_bytes=100))


@pytest.mark.parametrize(
    "data", [b"", b"hello, world", b"GIF89a", b"\x89PNG\r\n\x1a\n", b"<svg xmlns='x'/>"]
)
def test_non_images_are_decode_errors(data: bytes) -> None:
    with pytest.raises(ImageDecodeError):
        decode_image(data, LIMITS)


def test_animated_gif_uses_the_first_frame() -> None:
    frames = [Image.new("RGB", (16, 16), colour) for colour in ((255, 0, 0), (0, 255, 0))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100)
    image = decode_image(buffer.getvalue(), LIMITS)
    assert image.mode == "RGB" and close(image.getpixel((8, 8)), (255, 0, 0))


def test_webp_with_alpha() -> None:
    image = decode_image(encode(Image.new("RGBA", (16, 16), (0, 0, 255, 255)), "WEBP"), LIMITS)
    assert image.mode == "RGB" and close(image.getpixel((8, 8)), (0, 0, 255))


@pytest.mark.parametrize("mode", ["1", "L", "I", "F", "YCbCr"])
def test_other_modes_become_rgb(mode: str) -> None:
    fmt = {"I": "TIFF", "F": "TIFF", "YCbCr": "JPEG"}.get(mode, "PNG")
    image = decode_image(encode(two_tone(mode), fmt), LIMITS)
    assert image.mode == "RGB" and image.size == (60, 40)


def test_real_clothing_photo() -> None:
    path = next(iter(sorted(DATASET.glob("*/*.jpg"))))
    image = decode_image(path.read_bytes(), LIMITS)
    assert image.mode == "RGB" and min(image.size) > 0


def _valid_samples() -> list[bytes]:
    base = two_tone(size=(32, 24))
    return [
        encode(base, "JPEG"),
        encode(base, "PNG"),
        encode(base.convert("P"), "GIF"),
        encode(base, "WEBP"),
        encode(base, "BMP"),
        encode(base, "TIFF"),
    ]


SAMPLES = _valid_samples()


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, len(data) - 1))
        data[position] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(1, len(data)))])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=2048), mutated_images()))
def test_any_bytes_give_an_rgb_image_or_our_error(data: bytes) -> None:
    try:
        image = decode_image(data, ImageLimits(max_pixels=4_000_000))
    except ImgSearchError:
        return
    assert image.mode == "RGB" and image.size[0] > 0 and image.size[1] > 0


_BASE64_TEXT = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/= \n-_!é"
)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.binary(max_size=300).map(lambda b: base64.b64encode(b).decode()), _BASE64_TEXT))
def test_base64_decoding_accepts_and_refuses_what_the_standard_library_does(text: str) -> None:
    """The SIMD decoder must not widen or narrow what the APIs accept as ``image``."""
    try:
        expected: bytes | None = base64.b64decode(text.strip(), validate=False)
    except ValueError:
        expected = None
    for given_text in (text, f"data:image/jpeg;base64,{text}"):
        if expected is None:
            with pytest.raises(ImageDecodeError, match="Field image is not valid base64"):
                image_bytes_from_base64(given_text)
        else:
            assert image_bytes_from_base64(given_text) == expected
