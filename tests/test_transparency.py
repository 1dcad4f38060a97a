"""Alpha, ICC profiles and EXIF survive every op: each alpha-carrying mode Pillow opens, through each op."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from augment.plan.tasks import PlannedOutput
from augment.render.codec import Decoded, EncodeOptions
from augment.render.engine import render, render_one
from augment.render.frame import to_frame
from augment.render.ops import REGISTRY
from augment.render.recipe import parse_recipe
from tests.conftest import gradient
from tests.support.blockrun import run_block


def saved(image: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **kw)
    return out.getvalue()


def quantized_with_alpha() -> bytes:
    """A palette PNG whose entries carry alpha (tRNS as bytes), as pngquant writes."""
    rgba = gradient("RGBA", (32, 24))
    palette = rgba.quantize(64, method=Image.Quantize.FASTOCTREE)
    assert isinstance(palette.info.get("transparency", b""), bytes)
    return saved(palette)


def grey_alpha_16bit() -> bytes:
    """A 16-bit grey+alpha PNG (Pillow opens it as 8-bit RGBA)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    pixels = np.zeros((24, 32, 2), dtype=">u2")
    pixels[..., 0] = np.arange(32) * 2000
    pixels[..., 1] = np.arange(24)[:, None] * 2800
    raw = b"".join(b"\0" + row.tobytes() for row in pixels)
    ihdr = struct.pack(">IIBBBBB", 32, 24, 16, 4, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def indexed_with_clear_half() -> Image.Image:
    """A palette image whose left third is index 0 (made transparent by a one-index tRNS)."""
    pixels = np.asarray(gradient("P", (32, 24))).copy()
    pixels[:, :10] = 0
    image = Image.fromarray(pixels, "P")
    image.putpalette(gradient("P", (32, 24)).getpalette())
    return image


def sources() -> dict[str, bytes | Image.Image]:
    """Files (bytes) and, for modes no writer produces (PA, premultiplied RGBa), decoded images."""
    alpha = gradient("RGBA", (32, 24)).getchannel("A")
    pa = gradient("P", (32, 24)).convert("PA")
    pa.putalpha(alpha)
    return {
        "p-bytes": quantized_with_alpha(),
        "p-index": saved(indexed_with_clear_half(), transparency=0),
        "la": saved(gradient("LA", (32, 24))),
        "la-16bit": grey_alpha_16bit(),
        "rgba": saved(gradient("RGBA", (32, 24))),
        "pa": pa,
        "rgba-premultiplied": gradient("RGBA", (32, 24)).convert("RGBa"),
    }


def render_source(source: bytes | Image.Image, planned: PlannedOutput) -> bytes:
    if isinstance(source, bytes):
        return render("k/a.png", source, (planned,), 1, EncodeOptions())[0].data
    frame, mode = to_frame(source)
    return render_one("k/a.png", b"", Decoded(frame, mode, "PNG", False), planned, 1, EncodeOptions()).data


def alpha_of(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    return np.asarray(image.convert("RGBA").getchannel("A"))


@pytest.mark.parametrize("op", sorted(REGISTRY))
@pytest.mark.parametrize("kind", sorted(sources()))
def test_alpha_survives_each_op_without_warnings(kind, op):
    source = sources()[kind]
    pipeline = parse_recipe({"pipeline": [{"op": op}]}).outputs(1)[0][2]
    planned = PlannedOutput("x", "aug00", 0, pipeline, "PNG")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = render_source(source, planned)
    alpha = alpha_of(data)
    assert alpha.min() < 255 and alpha.max() > 0, f"{kind} through {op}: alpha lost"
    if kind.startswith("p-"):
        back, original = Image.open(io.BytesIO(data)), Image.open(io.BytesIO(source))
        assert back.mode == "P" and type(back.info["transparency"]) is type(original.info["transparency"])


@pytest.mark.parametrize(("mode", "key"), [("L", 0), ("RGB", (0, 0, 0)), ("I;16", 3)])
def test_a_transparent_colour_key_is_kept(mode, key):
    data = saved(gradient(mode, (16, 12)), transparency=key)
    planned = PlannedOutput("x", "aug00", 0, parse_recipe({"pipeline": [{"op": "hflip"}]}).outputs(1)[0][2], "PNG")
    (out,) = render("k/a.png", data, (planned,), 1, EncodeOptions())
    back = Image.open(io.BytesIO(out.data))
    assert back.mode == mode and back.info.get("transparency") == key


def test_palette_alpha_copy_matches_the_source_where_untouched():
    data = quantized_with_alpha()
    planned = PlannedOutput("x", "aug00", 0, parse_recipe({"pipeline": [{"op": "hflip"}]}).outputs(1)[0][2], "PNG")
    (out,) = render("k/a.png", data, (planned,), 1, EncodeOptions())
    np.testing.assert_array_equal(alpha_of(out.data), alpha_of(data)[:, ::-1])


def test_icc_profile_and_exif_are_kept_and_orientation_not_applied_twice():
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90
    exif[0x010F] = "ACME"  # Make: survives
    data = saved(Image.new("RGB", (40, 20), (200, 10, 10)), "JPEG", exif=exif.tobytes(), icc_profile=icc)
    pipeline = parse_recipe({"pipeline": [{"op": "brightness"}]}).outputs(1)[0][2]
    planned = (PlannedOutput("x", "aug00", 0, pipeline, "JPEG"), PlannedOutput("y", "aug00", 0, pipeline, "PNG"))
    for out in render("k/a.jpg", data, planned, 1, EncodeOptions()):
        back = Image.open(io.BytesIO(out.data))
        assert back.info.get("icc_profile") == icc, out.output.image_format
        assert back.getexif().get(0x010F) == "ACME"
        assert back.getexif().get(0x0112) in (None, 1)  # applied once, not again by the viewer
        assert back.size == (20, 40)


def test_block_run_keeps_alpha_and_prints_no_pillow_warning(tmp_path: Path):
    folder = tmp_path / "in" / "icons"
    folder.mkdir(parents=True)
    (folder / "q.png").write_bytes(quantized_with_alpha())
    gradient("LA", (32, 24)).save(folder / "la.png")
    result = run_block(
        ["--in-directory", str(tmp_path / "in"), "--out-directory", str(tmp_path / "out"), "--preset", "heavy"],
        workdir=tmp_path,
    )
    assert result.returncode == 0, result.output
    assert result.stderr == ""
    copies = sorted((tmp_path / "out" / "icons").glob("icons.q.aug*.png"))
    assert len(copies) == 8
    assert all(alpha_of(p.read_bytes()).min() < 255 for p in copies)
