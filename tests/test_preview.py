"""The preview contact sheet: what a person looks at before feeding the outputs to a model."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from augment.books.preview import CAPTION, CELL, build, caption
from augment.cli import parse
from augment.config import build_config
from augment.plan.tasks import PlanSettings
from augment.render.ops import REGISTRY
from augment.run.backends import source_for as _source
from tests.support.blockrun import run_block
from tests.support.boxes_data import detection_folder
from tests.support.plans import plan_source


def tasks_for(folder, *extra):
    """The run's config, source and tasks: listed and planned by the run's own code."""
    args, _ = parse(["--in-directory", str(folder), "--out-directory", str(folder.parent / "out"), *extra])
    config = build_config(args, {})
    source = _source(config)
    settings = PlanSettings(
        config.plan.recipe, config.plan.copies, config.plan.include_originals, config.plan.layout, config.render.encode
    )
    return config, source, plan_source(source, settings)


def test_sheet_has_a_row_per_original_and_a_cell_per_copy(sample_dir):
    config, source, tasks = tasks_for(sample_dir, "--copies", "3")
    sheets = build(tasks, source.read, config.render.seed, config.render.encode, 0.3, per_class=2, copies=3)
    sheet = sheets["preview.png"]
    rows = 3 * 2  # 3 classes x 2 originals
    assert sheet.height >= rows * (CELL + CAPTION) and sheet.width >= 4 * CELL
    assert list(sheets) == ["preview.png"]


def test_preview_shows_the_run_s_own_outputs_with_boxes(tmp_path):
    folder = detection_folder(tmp_path / "in", 2)
    recipe = json.dumps({"name": "t", "copies": 2, "pipeline": [{"op": "hflip"}]})
    config, source, tasks = tasks_for(folder, "--recipe", recipe)
    sheet = build(tasks, source.read, config.render.seed, config.render.encode, 0.3)["preview.png"]
    pixels = sheet.convert("RGB")
    box_red = sum(1 for p in pixels.get_flattened_data() if p == (255, 45, 85))  # the first box colour
    assert box_red > 50  # outlines drawn


def test_captions_summarise_the_chain():
    assert caption([]) == "original"
    text = caption([{"op": "hflip"}, {"op": "rotate", "degrees": -6.9, "fill": "edge", "fill_value": 0}])
    assert text == "hflip · rot -6.9°"


def test_every_op_s_caption_shows_its_magnitude():
    rng = np.random.default_rng(0)
    for name, op in REGISTRY.items():
        params = op.sample(op.validate(name, {}), rng, (64, 48))
        text = caption([{"op": name, **params}])
        if name not in ("hflip", "vflip", "poisson_noise"):
            assert any(ch.isdigit() for ch in text), f"{name}: caption {text!r} hides its magnitude"


def test_many_classes_get_a_sheet_each(tmp_path):
    for i in range(10):
        (tmp_path / "in" / f"class{i}").mkdir(parents=True)
        Image.new("L", (20, 20), i * 20).save(tmp_path / "in" / f"class{i}" / "a.png")
    config, source, tasks = tasks_for(tmp_path / "in", "--copies", "1")
    sheets = build(tasks, source.read, config.render.seed, config.render.encode, 0.3)
    assert len(sheets) == 11 and "preview-class9.png" in sheets


def test_dry_run_prints_the_plan_and_writes_only_the_preview(sample_dir, tmp_path):
    out = tmp_path / "out"
    args = ["--in-directory", str(sample_dir), "--out-directory", str(out), "--copies", "2"]
    result = run_block([*args, "--dry-run", "1", "--test-fraction", "0.25"], workdir=tmp_path)
    assert result.returncode == 0, result.output
    assert "dry run: nothing is written except the preview" in result.stdout
    assert "estimated time:" in result.stdout and "split: testing" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["preview.png"]
    run_block(args, workdir=tmp_path)
    again = run_block([*args, "--dry-run", "1"], workdir=tmp_path)
    circle = next(line for line in again.stdout.splitlines() if line.startswith("circle"))
    assert circle.split()[-2:] == ["24", "0"]  # a rerun would skip all 24 outputs of the class


def _to_make(result, label: str) -> tuple[int, int]:
    """(skip, to make) of ``label``'s line in a dry run's table."""
    line = next(line for line in result.stdout.splitlines() if line.startswith(label + " "))
    skip, todo = line.split()[-2:]
    return int(skip), int(todo)


def test_a_dry_run_promises_only_the_skips_the_run_makes(sample_dir, tmp_path):
    """A truncated output and (with --verify-outputs) a same-size changed one: the run remakes them, so the dry
    run counts them to make (it used to count any recorded file that exists as a skip)."""
    out = tmp_path / "out"
    args = ["--in-directory", str(sample_dir), "--out-directory", str(out), "--copies", "2"]
    assert run_block(args, workdir=tmp_path).returncode == 0
    circles = sorted((out / "circle").glob("*.png"))
    circles[0].write_bytes(circles[0].read_bytes()[:-10])  # truncated
    data = bytearray(circles[1].read_bytes())
    data[-20] ^= 0xFF  # the same size, other bytes
    circles[1].write_bytes(bytes(data))
    assert _to_make(run_block([*args, "--dry-run", "1"], workdir=tmp_path), "circle") == (23, 1)
    verify = [*args, "--verify-outputs", "1"]
    assert _to_make(run_block([*verify, "--dry-run", "1"], workdir=tmp_path), "circle") == (22, 2)
    assert run_block(verify, workdir=tmp_path).returncode == 0
    report = json.loads((out / "report.json").read_text())
    assert report["totals"]["written"] == 2  # what the dry run said
    assert _to_make(run_block([*verify, "--dry-run", "1"], workdir=tmp_path), "circle") == (24, 0)


def test_preview_flag_writes_a_sheet_after_the_run(sample_dir, tmp_path):
    out = tmp_path / "out"
    result = run_block(
        ["--in-directory", str(sample_dir), "--out-directory", str(out), "--preview", "1"], workdir=tmp_path
    )
    assert result.returncode == 0, result.output
    sheet = Image.open(out / "preview.png")
    assert sheet.width > 5 * CELL and sheet.height > 9 * CELL


def test_thousands_of_classes_show_a_bounded_number_and_count_the_rest(tmp_path):
    """2,000 tiny classes: the preview reads and renders at most MAX_CLASSES classes (3 originals each),
    writes one sheet per shown class plus preview.png, and counts the classes it left out."""
    from augment.books.preview import MAX_CLASSES, SHEET_CLASSES

    for i in range(2000):
        folder = tmp_path / "in" / f"c{i:04d}"
        folder.mkdir(parents=True)
        Image.new("L", (3, 2), i % 256).save(folder / "a.png")
    config, source, tasks = tasks_for(tmp_path / "in", "--copies", "1")
    reads = []

    def read(sample):
        reads.append(sample.key)
        return source.read(sample)

    sheets = build(tasks, read, config.render.seed, config.render.encode, 0.3)
    assert len(reads) == MAX_CLASSES
    assert len(sheets) == 1 + MAX_CLASSES and sheets.left_out == 2000 - MAX_CLASSES
    assert sheets["preview.png"].height < (SHEET_CLASSES + 1) * (CELL + CAPTION + 6) + 12


def test_a_run_with_many_classes_says_how_many_the_preview_left_out(tmp_path):
    for i in range(40):
        folder = tmp_path / "in" / f"c{i:02d}"
        folder.mkdir(parents=True)
        Image.new("L", (3, 2), i).save(folder / "a.png")
    out = tmp_path / "out"
    args = ["--in-directory", str(tmp_path / "in"), "--out-directory", str(out), "--copies", "1", "--preview", "1"]
    result = run_block(args, workdir=tmp_path)
    assert result.returncode == 0, result.output
    assert "preview: preview.png and 32 per-class sheets in" in result.stdout
    assert "(8 more classes not shown: at most 32)" in result.stdout
    assert len(list(out.glob("preview*.png"))) == 33
