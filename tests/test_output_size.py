"""--output-size: every output (originals too) at the model's input size in EI's three resize modes, the
resize in the chain's one warp, boxes through the same matrix, JPEGs decoded at a reduced scale, and the
same bytes whatever the worker count."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from augment.config import ConfigError
from augment.render.codec import decode
from augment.render.resize import RESIZE_MODES, OutputSize, needed_size, parse_output_size, resize_matrix
from tests.test_boxes import ious, run_op
from tests.test_determinism import run_dir, tree


def halves(size: tuple[int, int] = (200, 100)) -> Image.Image:
    """Left half red, right half blue."""
    values = np.zeros((size[1], size[0], 3), np.uint8)
    values[:, : size[0] // 2, 0] = 255
    values[:, size[0] // 2 :, 2] = 255
    return Image.fromarray(values)


def originals(tmp_path: Path, mode: str, image: Image.Image, size: str = "50x50") -> np.ndarray:
    src = tmp_path / f"in-{mode}" / "a"
    src.mkdir(parents=True)
    image.save(src / "x.png")
    out = tmp_path / f"out-{mode}"
    rc, _ = run_dir(src.parent, out, "--output-size", size, "--resize-mode", mode, "--copies", "1")
    assert rc == 0
    return np.asarray(Image.open(out / "a" / "a.x.orig.png"))


def test_the_three_modes_on_an_original(tmp_path):
    crop = originals(tmp_path, "fit-short", halves())  # the middle 100x100 of 200x100, scaled by 1/2
    assert crop.shape == (50, 50, 3) and crop[:, :24, 0].min() == 255 and crop[:, 26:, 2].min() == 255
    squash = originals(tmp_path, "squash", halves())
    assert squash.shape == (50, 50, 3) and squash[:, :24, 0].min() == 255 and squash[:, 26:, 2].min() == 255
    box = originals(tmp_path, "fit-long", halves())  # 50x25 of picture, 12.5 black rows above and below
    assert box.shape == (50, 50, 3)
    assert box[:12].max() == 0 and box[38:].max() == 0 and box[13:37, :24, 0].min() == 255
    assert box[13:37, 26:, 2].min() == 255


def test_fit_short_keeps_the_middle(tmp_path):
    wide = np.zeros((100, 300, 3), np.uint8)
    wide[:, 100:200] = 200  # the middle third is what fit-short keeps of a 3:1 image in a square
    crop = originals(tmp_path, "fit-short", Image.fromarray(wide), "30x30")
    assert crop.min() == 200


@pytest.mark.parametrize("mode", RESIZE_MODES)
def test_boxes_follow_the_resize_and_the_ops(tmp_path, mode):
    step = {"op": "zoom", "scale": [1.1, 1.3]}
    out, entries = run_op(tmp_path, step, 4, "--output-size", "80x64", "--resize-mode", mode)
    assert len(entries) == 3 * 5
    for entry in entries:
        assert Image.open(out / entry["output"]).size == (80, 64)
        for box in entry["boxes"]:
            assert box["x"] >= 0 and box["x"] + box["width"] <= 80 + 1e-9
            assert box["y"] >= 0 and box["y"] + box["height"] <= 64 + 1e-9
    scores = ious(out, entries)
    assert scores and min(scores) >= 0.75, scores


def test_resize_matrix_per_mode():
    source, out = (200, 100), (50, 50)
    assert np.allclose(resize_matrix(source, OutputSize(*out, "squash"))[:2], [[0.25, 0, 0], [0, 0.5, 0]])
    assert np.allclose(resize_matrix(source, OutputSize(*out, "fit-short"))[:2], [[0.5, 0, -25], [0, 0.5, 0]])
    assert np.allclose(resize_matrix(source, OutputSize(*out, "fit-long"))[:2], [[0.25, 0, 0], [0, 0.25, 12.5]])


def test_a_large_jpeg_is_decoded_at_a_reduced_scale():
    buffer = io.BytesIO()
    halves((1600, 1200)).save(buffer, "JPEG", quality=90)
    target = OutputSize(96, 96)
    decoded = decode(buffer.getvalue(), lambda size: needed_size(size, target, 1.2))
    assert decoded.source_size == (1600, 1200)
    assert decoded.frame.size == (200, 150)  # 1/8: still over the 116x116 the warp needs at zoom 1.2
    assert decode(buffer.getvalue()).frame.size == (1600, 1200)
    near = decode(buffer.getvalue(), lambda size: needed_size(size, OutputSize(900, 900), 1.0))
    assert near.frame.size == (1600, 1200)  # 1/2 would be too few pixels


def test_same_bytes_whatever_the_worker_count(tmp_path):
    src = tmp_path / "in" / "a"
    src.mkdir(parents=True)
    for i in range(3):
        halves((1200 + 40 * i, 900)).rotate(7 * i).save(src / f"j{i}.jpg", quality=90)
        halves((900, 700 + 30 * i)).save(src / f"p{i}.png")
    args = ("--output-size", "96x80", "--preset", "heavy", "--seed", "3")
    assert run_dir(tmp_path / "in", tmp_path / "w1", *args, "--workers", "1")[0] == 0
    assert run_dir(tmp_path / "in", tmp_path / "w2", *args, "--workers", "2")[0] == 0
    one, two = tree(tmp_path / "w1"), tree(tmp_path / "w2")
    assert one["manifest.jsonl"] == two["manifest.jsonl"]
    made = {k: v for k, v in one.items() if k.endswith((".png", ".jpg"))}
    assert len(made) > 6 and made == {k: v for k, v in two.items() if k.endswith((".png", ".jpg"))}
    assert {Image.open(io.BytesIO(v)).size for v in made.values()} == {(96, 80)}
    header = json.loads(one["manifest.jsonl"].splitlines()[0])
    assert header["output_size"] == [96, 80] and header["resize_mode"] == "fit-short"


def test_a_folder_made_at_another_size_is_refused(tmp_path):
    src = tmp_path / "in" / "a"
    src.mkdir(parents=True)
    halves().save(src / "x.png")
    out = tmp_path / "out"
    assert run_dir(tmp_path / "in", out, "--output-size", "64x64")[0] == 0
    with pytest.raises(RuntimeError, match="another recipe, seed or format"):
        run_dir(tmp_path / "in", out, "--output-size", "96x96")


@pytest.mark.parametrize("text", ["96", "0x96", "96x", "axb", "5000x10", "-1x5"])
def test_bad_output_sizes_are_one_line_errors(tmp_path, text):
    with pytest.raises(ValueError):
        parse_output_size(text)
    with pytest.raises(ConfigError, match="--output-size"):
        run_dir(tmp_path, tmp_path / "out", f"--output-size={text}")


def test_a_resumed_run_decodes_as_the_first(tmp_path):
    """How much detail a source keeps depends on the recipe's zoom, not on which outputs are still due: an
    original made again alone is the same bytes as when it was made with its copies."""
    src = tmp_path / "in" / "a"
    src.mkdir(parents=True)
    halves((1000, 750)).rotate(9).save(src / "x.png")
    out = tmp_path / "out"
    args = ("--output-size", "96x96", "--preset", "heavy", "--seed", "2")
    assert run_dir(tmp_path / "in", out, *args)[0] == 0
    first = {k: v for k, v in tree(out).items() if k.endswith(".png")}
    original = out / "a" / "a.x.orig.png"
    original.unlink()
    assert run_dir(tmp_path / "in", out, *args)[0] == 0
    assert original.read_bytes() == first["a/a.x.orig.png"]


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "P", "I;16", "1", "CMYK"])
@pytest.mark.parametrize("resize_mode", RESIZE_MODES)
def test_every_mode_at_the_output_size_keeps_its_mode_and_a_flat_image_flat(mode, resize_mode):
    """Every colour mode through the resize alone (an original) and with a warp (rotate): mode and size as
    asked, and a flat image stays flat where the picture is (the letterbox bars aside)."""
    from augment.plan.tasks import PlannedOutput
    from augment.render.codec import EncodeOptions
    from augment.render.engine import render
    from augment.render.recipe import Step

    value = {"I;16": 40000, "L": 90, "LA": (90, 200), "RGBA": (90, 30, 200, 180), "1": 1, "CMYK": (10, 20, 30, 40)}
    flat = Image.new(mode if mode != "P" else "RGB", (120, 60), value.get(mode, (90, 30, 200)))
    flat = flat.quantize(4) if mode == "P" else flat
    buffer = io.BytesIO()
    flat.save(buffer, "TIFF" if mode == "CMYK" else "PNG")
    rotate = (Step("rotate", {"degrees": [10.0, 10.0], "angles": None, "fill": "edge", "fill_value": 0.0}),)
    planned = (PlannedOutput("o", "orig", 0, None, "PNG"), PlannedOutput("c", "aug", 1, rotate, "PNG"))
    options = EncodeOptions("png", output_size=(40, 30), resize_mode=resize_mode)
    for out in render("k/a.png", buffer.getvalue(), planned, 1, options):
        image = Image.open(io.BytesIO(out.data))
        assert image.size == (40, 30), (mode, out.output.name)
        inner = np.asarray(image)[10:20, 12:28]
        reference = np.asarray(flat.convert(image.mode))[:10, :16]
        assert np.array_equal(inner, reference), (mode, resize_mode, out.output.name)


def test_reduced_decoding_follows_exif_orientation():
    """A phone photo stored sideways (EXIF orientation 6): the reduced scale is chosen on the upright size."""
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    halves((1600, 1200)).save(buffer, "JPEG", quality=90, exif=exif.tobytes())
    asked = []

    def needed(size: tuple[int, int]) -> tuple[int, int]:
        asked.append(size)
        return needed_size(size, OutputSize(100, 150, "squash"), 1.0)

    decoded = decode(buffer.getvalue(), needed)
    assert asked == [(1200, 1600)] and decoded.source_size == (1200, 1600)
    assert decoded.frame.size == (150, 200) and decoded.oriented  # 1/8, upright


def test_a_resize_mode_without_a_size_is_noted(tmp_path):
    src = tmp_path / "in" / "a"
    src.mkdir(parents=True)
    halves().save(src / "x.png")
    rc, lines = run_dir(tmp_path / "in", tmp_path / "out", "--resize-mode", "squash", "--copies", "1")
    assert rc == 0 and any("--resize-mode squash without --output-size" in line for line in lines), lines
    assert Image.open(tmp_path / "out" / "a" / "a.x.aug00.png").size == (200, 100)
