"""Pixels and formats a user hands in: 16-bit big-endian TIFF, colour-key transparency under lighting ops,
content that is not what its name says, nearly valid files that Pillow trips on, and names that differ only
by Unicode normalisation."""

from __future__ import annotations

import io
import struct
import unicodedata

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from augment.plan.tasks import PlannedOutput
from augment.render.codec import DecodeError, EncodeOptions, decode
from augment.render.engine import render
from augment.render.recipe import parse_recipe
from tests.conftest import gradient
from tests.support.blockrun import run_block


def saved(image: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **kw)
    return out.getvalue()


def copy(data: bytes, chain: list[dict], fmt: str = "PNG", key: str = "k/a.png") -> bytes:
    pipeline = parse_recipe({"pipeline": chain}).outputs(1)[0][2]
    (out,) = render(key, data, (PlannedOutput("x", "aug00", 0, pipeline, fmt),), 1, EncodeOptions())
    return out.data


@pytest.mark.parametrize("mode", ["I;16B", "I;16L"])
@pytest.mark.parametrize("fmt", ["TIFF", "PNG"])
def test_16_bit_tiff_copies_keep_16_bits(mode, fmt):
    values = (np.arange(48 * 64, dtype=np.uint16).reshape(48, 64) * 20).astype(">u2" if mode == "I;16B" else "<u2")
    data = saved(Image.frombytes(mode, (64, 48), values.tobytes()), "TIFF")
    back = Image.open(io.BytesIO(copy(data, [{"op": "hflip"}], fmt, "k/a.tif")))
    assert back.mode.startswith("I;16")
    np.testing.assert_array_equal(np.asarray(back).astype(np.int64), values.astype(np.int64)[:, ::-1])


def transparent_where(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    if image.mode == "I;16":
        return np.asarray(image) == image.info["transparency"]
    return np.asarray(image.convert("RGBA"))[..., 3] == 0


@pytest.mark.parametrize(
    ("mode", "key", "other"),
    [("L", 40, 20), ("RGB", (40, 60, 80), (20, 30, 40)), ("I;16", 4000, 2000)],
)
def test_colour_key_transparency_follows_the_pixels_through_lighting_ops(mode, key, other):
    """Left half transparent (the key colour), right half a colour that brightness x2 turns into the key:
    after the op the same pixels are transparent as before, and no others."""
    size = (16, 8)
    if mode == "I;16":
        values = np.full((8, 16), other, dtype=np.uint16)
        values[:, :8] = key
        image = Image.fromarray(values)
    else:
        image = Image.new(mode, size, other)
        image.paste(key, (0, 0, 8, 8))
    data = saved(image, transparency=key)
    before = transparent_where(data)
    assert before[:, :8].all() and not before[:, 8:].any()
    out = copy(data, [{"op": "brightness", "factor": [2.0, 2.0]}])
    back = Image.open(io.BytesIO(out))
    assert back.mode == mode and "transparency" in back.info
    np.testing.assert_array_equal(transparent_where(out), before)


def test_an_image_with_alpha_named_jpg_is_refused_naming_the_fix(tmp_path):
    """Its JPEG copies would silently lose the transparency: an error with the rename to do; with
    --image-format png the copies keep it."""
    folder = tmp_path / "in" / "a"
    folder.mkdir(parents=True)
    rgba = gradient("RGBA", (16, 12))
    (folder / "x.jpg").write_bytes(saved(rgba))
    (folder / "y.jpg").write_bytes(saved(gradient("RGB", (16, 12))))  # PNG without alpha: fine as JPEG
    out = tmp_path / "out"
    result = run_block(["--in-directory", str(tmp_path / "in"), "--out-directory", str(out), "--copies", "1"],
                       workdir=tmp_path)  # fmt: skip
    assert result.returncode == 1, result.output
    assert (
        "ERROR a/x.jpg: PNG data with transparency in a file named .jpg: its JPEG copies would lose the"
        " transparency; rename it to .png (or pass --image-format png)"
    ) in result.stdout
    assert not list(out.rglob("a.x.*")) and len(list(out.rglob("a.y.*"))) == 2
    again = run_block(["--in-directory", str(tmp_path / "in"), "--out-directory", str(tmp_path / "png"),
                       "--copies", "1", "--image-format", "png"], workdir=tmp_path)  # fmt: skip
    assert again.returncode == 0, again.output
    assert Image.open(tmp_path / "png" / "a" / "a.x.aug00.png").mode == "RGBA"


def test_formats_outside_the_list_are_never_opened_whatever_the_name():
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nshowpage\n"
    for data in (eps, saved(Image.new("RGB", (4, 4)), "ICO"), saved(Image.new("RGB", (4, 4)), "PPM")):
        with pytest.raises(DecodeError, match=r"not an image this block reads \(PNG, JPEG, BMP, WebP, TIFF, GIF\)"):
            decode(data)


def with_bad_crc(data: bytes, chunk: bytes) -> bytes:
    out = bytearray(data)
    at = out.find(chunk)
    length = struct.unpack(">I", out[at - 4 : at])[0]
    out[at + 4 + length] ^= 0xFF  # the first byte of its CRC
    return bytes(out)


def test_a_bad_checksum_on_a_text_chunk_is_ignored_and_on_pixels_named():
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "scanner 3")
    data = saved(gradient("RGB", (8, 6)), pnginfo=info)
    decoded = decode(with_bad_crc(data, b"tEXt"))
    assert np.array_equal(np.asarray(decoded.frame.color), np.asarray(gradient("RGB", (8, 6))))
    with pytest.raises(DecodeError, match=r"corrupt PNG: its 'IHDR' chunk fails its checksum \(CRC\)"):
        decode(with_bad_crc(data, b"IHDR"))


def test_a_3_mb_icc_profile_is_accepted_and_kept():
    icc = np.random.default_rng(0).integers(0, 256, 3_000_000, dtype=np.uint8).tobytes()
    data = saved(gradient("RGB", (8, 6)), icc_profile=icc)
    assert decode(data).mode.icc == icc
    assert Image.open(io.BytesIO(copy(data, [{"op": "hflip"}]))).info["icc_profile"] == icc


def test_a_jpeg_missing_only_its_end_marker_is_accepted_and_one_cut_short_is_truncated():
    photo = Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    data = saved(photo, "JPEG")
    assert data.endswith(b"\xff\xd9")
    whole = np.asarray(decode(data).frame.color)
    np.testing.assert_array_equal(np.asarray(decode(data[:-2]).frame.color), whole)
    with pytest.raises(DecodeError, match="truncated image data"):
        decode(data[:-200])


def test_names_that_differ_only_by_unicode_normalisation_are_flagged_like_case_twins(tmp_path):
    folder = tmp_path / "in" / "a"
    folder.mkdir(parents=True)
    for form in ("NFC", "NFD"):
        gradient("RGB", (8, 6)).save(folder / f"{unicodedata.normalize(form, 'café')}.png")
    assert len(list(folder.iterdir())) == 2  # two files here; one on macOS and in Edge Impulse
    out = tmp_path / "out"
    result = run_block(["--in-directory", str(tmp_path / "in"), "--out-directory", str(out)], workdir=tmp_path)
    assert result.returncode == 1, result.output
    assert "which differ only in case or Unicode normalisation" in result.stdout
    assert not out.exists() or not list(out.rglob("*.png"))
