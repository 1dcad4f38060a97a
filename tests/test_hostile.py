"""Hostile input: each bad file gets one line naming it and the cause, nothing else is lost, the exit
code says what happened; odd names and shapes work; parsers never crash on arbitrary data."""

from __future__ import annotations

import contextlib
import io
import json
import struct
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from augment.plan.labels import LabelsError, parse_boxes_file, parse_info_file
from augment.render.ops.base import RecipeError
from augment.render.recipe import parse_recipe
from tests.conftest import gradient
from tests.support.blockrun import run_block


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG signature + IHDR claiming a huge size, with a tiny IDAT: a decompression bomb's shape."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def saved(image: Image.Image, fmt: str, **kw) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **kw)
    return out.getvalue()


def run(tmp_path: Path, *args: str):
    out = tmp_path / "out"
    result = run_block(["--in-directory", str(tmp_path / "in"), "--out-directory", str(out), *args], workdir=tmp_path)
    return result, out


def test_each_hostile_file_gets_one_line_and_the_rest_lands(tmp_path):
    folder = tmp_path / "in" / "part"
    folder.mkdir(parents=True)
    good = saved(gradient("RGB"), "PNG")
    cases = {
        "truncated.png": good[:120],
        "truncated.jpg": saved(gradient("RGB", (64, 64)), "JPEG")[:400],
        "zero.png": b"",
        "text.png": b"just some text\n",
        "bomb.png": png_header_only(20000, 20000),
        "huge-claim.png": png_header_only(100000, 100000),
    }
    for name, data in cases.items():
        (folder / name).write_bytes(data)
    (folder / "fine.png").write_bytes(good)
    result, out = run(tmp_path, "--max-failures", "10", "--copies", "1")
    assert result.returncode == 0, result.output
    error_lines = [line for line in result.stdout.splitlines() if line.startswith("ERROR ")]
    assert len(error_lines) == len(cases)
    for name in cases:
        assert sum(f"part/{name}:" in line for line in error_lines) == 1, name
    assert "decompression-bomb" in next(line for line in error_lines if "bomb.png" in line)
    assert sorted(p.name for p in (out / "part").iterdir()) == ["part.fine.aug00.png", "part.fine.orig.png"]
    strict, _ = run(tmp_path, "--copies", "1", "--overwrite", "1")
    assert strict.returncode == 1 and f"FAILED: {len(cases)} of {len(cases) + 1} images" in strict.stdout


def test_odd_shapes_and_modes_come_out_right(tmp_path):
    folder = tmp_path / "in" / "odd"
    folder.mkdir(parents=True)
    Image.new("RGB", (1, 1), (9, 200, 30)).save(folder / "one.png")
    Image.new("L", (1, 3), 7).save(folder / "thin.png")
    Image.new("CMYK", (24, 16), (10, 20, 30, 40)).save(folder / "cmyk.jpg", "JPEG")
    gradient("I;16", (20, 12)).save(folder / "deep.png")
    palette = gradient("P", (20, 12))
    palette.save(folder / "clear.png", transparency=0)
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 255, 0))]
    frames[0].save(folder / "anim.webp", save_all=True, append_images=frames[1:], lossless=True)
    sideways = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways.save(folder / "exif.jpg", exif=exif.tobytes())
    result, out = run(tmp_path, "--preset", "heavy", "--copies", "2")
    assert result.returncode == 0, result.output
    produced = {p.name: Image.open(p) for p in (out / "odd").glob("*.aug01.*")}
    assert produced["odd.one.aug01.png"].size == (1, 1)
    assert produced["odd.thin.aug01.png"].size == (1, 3)
    assert produced["odd.cmyk.aug01.jpg"].mode == "CMYK"
    assert produced["odd.deep.aug01.png"].mode == "I;16"
    assert produced["odd.clear.aug01.png"].mode == "P" and produced["odd.clear.aug01.png"].info["transparency"] == 0
    assert produced["odd.anim.aug01.webp"].size == (16, 16)
    assert produced["odd.exif.aug01.jpg"].size == (20, 40)  # upright: the EXIF rotation was applied


def test_odd_file_names(tmp_path):
    folder = tmp_path / "in" / "names"
    folder.mkdir(parents=True)
    for name in ("my photo.png", "ünïcødé ✓.png", "-rf.png", "--help.png", "new\nline.png"):
        gradient("RGB", (12, 12)).save(folder / name)
    result, out = run(tmp_path, "--copies", "1")
    assert result.returncode == 0, result.output
    names = sorted(p.name for p in (out / "names").glob("*.png"))
    assert "names.my photo.aug00.png" in names and "names.ünïcødé ✓.aug00.png" in names
    assert "names.-rf.aug00.png" in names and "names.--help.aug00.png" in names
    assert "names.new_line.aug00.png" in names  # control characters never reach an output name
    assert all("\n" not in line or line.endswith("") for line in result.stdout.splitlines())


def test_labels_file_entries_cannot_escape_and_odd_labels_are_flagged(tmp_path):
    folder = tmp_path / "in" / "led.red"
    folder.mkdir(parents=True)
    gradient("RGB", (30, 30)).save(folder / "a.png")
    boxes = {
        "a.png": [{"label": "x", "x": 1, "y": 1, "width": 5, "height": 5}],
        "../../../etc/passwd": [{"label": "x", "x": 1, "y": 1, "width": 5, "height": 5}],
        "/abs/path.png": [{"label": "x", "x": 1, "y": 1, "width": 5, "height": 5}],
    }
    (folder / "bounding_boxes.labels").write_text(
        json.dumps({"version": 1, "type": "bounding-box-labels", "boundingBoxes": boxes})
    )
    result, out = run(tmp_path, "--preset", "light", "--copies", "1", "--metadata", "{not json")
    assert result.returncode == 0, result.output
    assert "--metadata ignored: not valid JSON" in result.stdout
    assert "label 'led.red'" in result.stdout  # EI would read the file-name label as 'led'
    written = [p for p in out.rglob("*") if p.is_file()]
    assert all(out in p.parents for p in written)
    labels = json.loads((out / "led.red" / "bounding_boxes.labels").read_text())["boundingBoxes"]
    assert sorted(labels) == ["led.red.a.aug00.png", "led.red.a.orig.png"]


def test_out_of_range_recipe_fails_before_any_work(tmp_path):
    (tmp_path / "in" / "x").mkdir(parents=True)
    gradient("RGB").save(tmp_path / "in" / "x" / "a.png")
    recipe = json.dumps({"pipeline": [{"op": "gaussian_noise", "sigma": [0.1, 7]}]})
    result, out = run(tmp_path, "--recipe", recipe)
    assert result.returncode == 2 and "recipe.pipeline[0].gaussian_noise.sigma" in result.stdout
    assert not out.exists()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
OP_NAMES = st.sampled_from(["rotate", "zoom", "hflip", "cutout", "gaussian_noise", "nope"])


@settings(max_examples=200, deadline=None)
@given(
    data=JSON
    | st.fixed_dictionaries(
        {"pipeline": st.lists(st.fixed_dictionaries({"op": OP_NAMES}, optional={"p": JSON, "degrees": JSON}))}
    )
)
def test_recipe_parser_accepts_or_raises_recipe_error_only(data):
    with contextlib.suppress(RecipeError):
        parse_recipe(data)


BOX = st.fixed_dictionaries({"label": JSON | st.text(max_size=5), "x": JSON, "y": JSON, "width": JSON, "height": JSON})


@settings(max_examples=200, deadline=None)
@given(
    doc=JSON
    | st.fixed_dictionaries(
        {
            "version": st.sampled_from([1, 2, "1"]),
            "type": st.sampled_from(["bounding-box-labels", "x"]),
            "boundingBoxes": st.dictionaries(st.text(max_size=6), st.lists(BOX, max_size=3) | JSON, max_size=3),
        }
    )
)
def test_labels_parsers_accept_or_raise_labels_error_only(doc):
    text = json.dumps(doc)
    for parse in (parse_boxes_file, parse_info_file):
        with contextlib.suppress(LabelsError):
            parse(text, "f")


@pytest.mark.parametrize("text", ["", "{", "[]", "null", '{"version": 1, "files": [{"path": 3}]}', "\ud800"])
def test_labels_parsers_on_garbage_text(text):
    for parse in (parse_boxes_file, parse_info_file):
        with pytest.raises(LabelsError):
            parse(text, "f")
