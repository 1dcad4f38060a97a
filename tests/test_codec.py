"""Decoding (formats, modes, EXIF, bad data) and encoding (mode kept, deterministic)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from augment.render import png
from augment.render.codec import DecodeError, EncodeOptions, decode, encode, output_format
from tests.conftest import gradient


def saved(image: Image.Image, fmt: str, **kw) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **kw)
    return out.getvalue()


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [
        ("L", "PNG"),
        ("LA", "PNG"),
        ("RGB", "PNG"),
        ("RGBA", "PNG"),
        ("P", "PNG"),
        ("I;16", "PNG"),
        ("RGB", "JPEG"),
        ("L", "JPEG"),
        ("RGB", "BMP"),
        ("RGBA", "WEBP"),
        ("RGB", "TIFF"),
        ("P", "GIF"),
    ],
)
def test_decode_encode_keeps_mode_and_size(mode, fmt):
    image = gradient(mode)
    decoded = decode(saved(image, fmt))
    assert decoded.format == fmt
    data = encode(decoded.frame, decoded.mode, fmt, EncodeOptions())
    back = Image.open(io.BytesIO(data))
    assert back.size == image.size
    assert back.mode == Image.open(io.BytesIO(saved(image, fmt))).mode
    assert encode(decoded.frame, decoded.mode, fmt, EncodeOptions()) == data, "encoding must be deterministic"


def test_lossless_formats_round_trip_pixels_exactly():
    for mode in ("L", "RGBA", "I;16", "P"):
        image = gradient(mode)
        decoded = decode(saved(image, "PNG"))
        back = Image.open(io.BytesIO(encode(decoded.frame, decoded.mode, "PNG", EncodeOptions())))
        assert back.tobytes() == image.tobytes(), mode


def test_palette_with_transparency_keeps_its_transparent_index():
    image = gradient("P")
    image.info["transparency"] = 0
    decoded = decode(saved(image, "PNG", transparency=0))
    assert decoded.frame.alpha is not None
    back = Image.open(io.BytesIO(encode(decoded.frame, decoded.mode, "PNG", EncodeOptions())))
    assert back.mode == "P" and back.info.get("transparency") == 0
    assert back.tobytes() == image.tobytes()


def test_exif_orientation_is_applied_first():
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 10, 20))  # blue strip on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: viewers rotate 90 degrees clockwise
    decoded = decode(saved(image, "JPEG", exif=exif.tobytes(), quality=95))
    assert decoded.oriented and decoded.frame.size == (20, 40)
    top = np.asarray(decoded.frame.color)[2, 10]
    assert top[2] > 200 and top[0] < 60  # the left strip is now on top


def test_animated_gif_uses_first_frame():
    frames = [Image.new("P", (8, 8), i) for i in (3, 9)]
    data = io.BytesIO()
    frames[0].save(data, "GIF", save_all=True, append_images=frames[1:])
    decoded = decode(data.getvalue())
    assert decoded.format == "GIF" and decoded.frame.size == (8, 8)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty file"),
        (b"hello, I am text", "not an image"),
        (saved(gradient("RGB"), "PNG")[:200], "truncated PNG: the data ends inside its 'IDAT' chunk"),
        (saved(gradient("RGB"), "JPEG")[:300], "truncated image data"),
    ],
)
def test_bad_data_raises_a_one_line_reason(data, message):
    with pytest.raises(DecodeError, match=message):
        decode(data)


def test_decompression_bomb_guard_stays_on(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(DecodeError, match="decompression-bomb"):
        decode(saved(Image.new("L", (20, 20)), "PNG"))


def test_output_format_from_name_and_option():
    assert output_format(EncodeOptions("same"), ".JPEG") == ("JPEG", ".jpeg")
    assert output_format(EncodeOptions("same"), ".png") == ("PNG", ".png")
    assert output_format(EncodeOptions("png"), ".jpg") == ("PNG", ".png")
    assert output_format(EncodeOptions("jpeg"), ".png") == ("JPEG", ".jpg")


def test_jpeg_output_of_alpha_and_16_bit_sources():
    for mode in ("RGBA", "LA", "I;16", "P"):
        decoded = decode(saved(gradient(mode), "PNG"))
        back = Image.open(io.BytesIO(encode(decoded.frame, decoded.mode, "JPEG", EncodeOptions(jpeg_quality=80))))
        assert back.format == "JPEG" and back.mode in ("L", "RGB"), mode


def test_png_compression_level_changes_size_not_pixels():
    decoded = decode(saved(gradient("RGB", (96, 96)), "PNG"))
    fast = encode(decoded.frame, decoded.mode, "PNG", EncodeOptions(png_compression=1))
    small = encode(decoded.frame, decoded.mode, "PNG", EncodeOptions(png_compression=9))
    assert len(small) <= len(fast)
    assert Image.open(io.BytesIO(fast)).tobytes() == Image.open(io.BytesIO(small)).tobytes()


def test_png_rle_strategy_keeps_pixels_and_is_no_larger_on_photos(workshop_folders):
    photos = sorted(workshop_folders.rglob("*.png"))[:20]
    sizes = {"rle": 0, "default": 0}
    for path in photos:
        decoded = decode(path.read_bytes())
        for strategy in sizes:
            data = encode(decoded.frame, decoded.mode, "PNG", EncodeOptions(png_strategy=strategy))
            assert Image.open(io.BytesIO(data)).tobytes() == Image.open(path).tobytes()
            sizes[strategy] += len(data)
    assert sizes["rle"] <= sizes["default"] * 1.02


def _apng(frames: list[Image.Image]) -> bytes:
    return saved(frames[0], "PNG", save_all=True, append_images=frames[1:])


@pytest.mark.parametrize(
    ("name", "data", "needed"),
    [
        ("jpeg rgb", saved(gradient("RGB", (83, 61)), "JPEG", quality=90), None),
        ("jpeg rgb progressive 4:4:4", saved(gradient("RGB", (83, 61)), "JPEG", progressive=True, subsampling=0), None),
        ("jpeg l", saved(gradient("L", (83, 61)), "JPEG"), None),
        ("jpeg rgb at 1/4 scale", saved(gradient("RGB", (330, 250)), "JPEG"), (80, 60)),
        ("mpo", saved(gradient("RGB"), "MPO", save_all=True, append_images=[gradient("RGB", seed=1)]), None),
        ("png rgb", saved(gradient("RGB", (83, 61)), "PNG"), None),
        ("png l", saved(gradient("L", (83, 61)), "PNG"), None),
        ("png rgb colour key", saved(gradient("RGB"), "PNG", transparency=(0, 255, 7)), None),
        ("apng rgb", _apng([gradient("RGB"), gradient("RGB", seed=1)]), None),
        ("gif l", saved(gradient("L"), "GIF"), None),
        ("gif l transparent", saved(gradient("L"), "GIF", transparency=5), None),
    ],
)
def test_pixels_decoded_into_numpy_are_pillows(name, data, needed):
    """L and RGB JPEGs and PNGs decode straight into numpy memory: the same pixels as Pillow's own image."""
    reference = Image.open(io.BytesIO(data))
    if needed is not None:
        reference.draft(reference.mode, needed)
    expected = np.asarray(reference.convert("RGB") if reference.mode == "P" else reference)
    decoded = decode(data, (lambda size: needed) if needed is not None else None)
    assert decoded.frame.color.shape == expected.shape
    assert np.array_equal(decoded.frame.color, expected), name
    assert decoded.frame.color.flags.c_contiguous


@pytest.mark.parametrize("mode", ["L", "RGB"])
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "TIFF", "WEBP"])
def test_encode_from_numpy_is_pillows(mode, fmt):
    """Colour planes reach Pillow's encoders through its own pixel layout: the bytes Image.fromarray gives."""
    image = gradient(mode, (83, 61))
    decoded = decode(saved(image, "PNG"))
    options = EncodeOptions()
    expected = {"PNG": {"compress_level": 6, "compress_type": 3}, "JPEG": {"quality": 90}}.get(fmt, {})
    if fmt == "WEBP":
        expected = {"quality": 90, "method": 4}
    assert encode(decoded.frame, decoded.mode, fmt, options) == saved(
        Image.fromarray(np.asarray(image)), fmt, **expected
    )


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
@pytest.mark.parametrize(("level", "strategy"), [(6, 3), (6, -1), (1, 3), (9, -1), (0, -1)])
@pytest.mark.parametrize("size", [(96, 96), (300, 260), (16500, 3)])
def test_plain_png_is_pillows(mode, level, strategy, size):
    """The block's own PNG path gives Pillow's bytes: small, several IDAT chunks (noisy 300x260), rows wider
    than Pillow's 64 KiB buffer, every zlib level and strategy the options reach."""
    noisy = np.random.default_rng(1).integers(0, 256, (size[1], size[0], 4), dtype=np.uint8)
    image = Image.fromarray(noisy, "RGBA").convert(mode) if size != (96, 96) else gradient(mode, size)
    assert png.plain(image, level, strategy) == saved(image, "PNG", compress_level=level, compress_type=strategy)


def test_plain_png_leaves_the_rest_to_pillow():
    assert png.plain(gradient("P"), 6) is None
    assert png.plain(gradient("I;16"), 6) is None
    keyed = gradient("RGB")
    keyed.info["transparency"] = (1, 2, 3)
    assert png.plain(keyed, 6) is None
