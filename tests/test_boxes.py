"""Object detection: boxes follow every geometric op with the pixels' own parameters."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from augment.cli import parse
from augment.config import build_config
from augment.plan.labels import LabelsError, parse_boxes_file, parse_info_file
from augment.render.boxes import Box, hide, move
from augment.render.ops import REGISTRY, GeometricOp
from augment.render.ops.pixels import rotation
from augment.run.runner import run
from tests.support.blockrun import run_block
from tests.support.boxes_data import RECTS, detection_folder


def mask_box(image: Image.Image, colour: tuple[int, int, int]) -> tuple[int, int, int, int] | None:
    rgb = np.asarray(image.convert("RGB")).astype(int)
    channel = 0 if colour[0] == 255 else 2
    other = 2 if channel == 0 else 0
    mask = (rgb[..., channel] > 190) & (rgb[..., other] < 70) & (rgb[..., 1] < 70)
    if not mask.any():
        return None
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


GEOMETRIC = sorted(name for name, op in REGISTRY.items() if isinstance(op, GeometricOp))
# Wider than the defaults where those barely move the boxes; a mid-grey constant border for ops that fill one.
WIDER = {
    "translate": {"x": [-0.1, 0.1], "y": [-0.1, 0.1]},
    "zoom": {"scale": [1.1, 1.3]},
    "rotate": {"degrees": [-20, 20]},
}


def op_step(name: str) -> dict:
    """A recipe step for the geometric op ``name``, built from the registry (so a new op is tested too)."""
    step = {"op": name, **WIDER.get(name, {})}
    if "fill" in REGISTRY[name].schema:
        step |= {"fill": "constant", "fill_value": 0.5}
    return step


def run_op(tmp_path: Path, step: dict, copies: int = 6, *extra: str) -> tuple[Path, list[dict]]:
    src = detection_folder(tmp_path / "in")
    out = tmp_path / "out"
    recipe = json.dumps({"name": "t", "copies": copies, "pipeline": [step]})
    args, _ = parse(["--in-directory", str(src), "--out-directory", str(out), "--recipe", recipe, *extra])
    assert run(build_config(args, {}), lambda _: None) == 0
    entries = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()[1:]]
    return out, entries


def ious(out: Path, entries: list[dict]) -> list[float]:
    scores = []
    for entry in entries:
        image = Image.open(out / entry["output"])
        for box in entry["boxes"]:
            found = mask_box(image, RECTS[box["label"]][1])
            assert found is not None, (entry["output"], box)
            drawn = (box["x"], box["y"], box["x"] + box["width"], box["y"] + box["height"])
            scores.append(iou(found, drawn))
    return scores


def axis_aligned(entry: dict) -> bool:
    """Every recorded op keeps edges axis-aligned (no rotation or shear in its matrix)."""
    matrices = [REGISTRY[op["op"]].matrix(op, (96, 96)) for op in entry["ops"]]
    return all(abs(m[0, 1]) < 1e-12 and abs(m[1, 0]) < 1e-12 for m in matrices)


@pytest.mark.parametrize("op", GEOMETRIC)
def test_boxes_follow_every_geometric_op(tmp_path, op):
    """Axis-aligned ops keep boxes tight; rotation and shear give boxes that enclose the object."""
    out, entries = run_op(tmp_path, op_step(op))
    scores = ious(out, entries)
    assert scores, entries
    if all(axis_aligned(e) for e in entries):
        assert min(scores) >= 0.9, scores
    else:
        assert min(scores) >= 0.6 and np.mean(scores) >= 0.75, scores


@pytest.mark.parametrize("step", [{"op": "brightness", "factor": [0.5, 1.5]}, {"op": "exposure", "ev": [-2, 1.5]}])
def test_photometric_ops_leave_boxes_and_labels_files_are_written(tmp_path, step):
    out, entries = run_op(tmp_path, step, 2)
    source = json.loads((tmp_path / "in" / "bounding_boxes.labels").read_text())["boundingBoxes"]
    labels = json.loads((out / "blue" / "bounding_boxes.labels").read_text())  # label: the commoner box (tie: a-z)
    assert labels["version"] == 1 and labels["type"] == "bounding-box-labels"
    assert len(labels["boundingBoxes"]) == 3 * 3  # 2 copies + the original, per image
    for entry in entries:
        stem = entry["source"].split("/")[-1]
        assert entry["boxes"] == source[stem]
        assert labels["boundingBoxes"][entry["output"].split("/")[-1]] == source[stem]


def test_flip_twice_is_identity():
    box = Box("a", 10, 20, 30, 15)
    m = np.array([[-1.0, 0, 96], [0, 1, 0], [0, 0, 1]])
    twice = move(move([box], m, (96, 96)), m, (96, 96))[0]
    assert (twice.x, twice.y, twice.width, twice.height, twice.visible) == (10, 20, 30, 15, 1.0)


def test_visibility_rule_and_cutout():
    half_out = move([Box("a", 80, 10, 20, 10)], np.eye(3), (90, 90))[0]
    assert half_out.width == 10 and half_out.visible == pytest.approx(0.5)
    assert move([Box("a", 0, 0, 10, 10)], np.array([[1.0, 0, 200], [0, 1, 0], [0, 0, 1]]), (90, 90)) == []
    covered = hide([Box("a", 0, 0, 10, 10)], [[0, 0, 10, 8]])[0]
    assert covered.visible == pytest.approx(0.2)
    turned = move([Box("a", 40, 40, 16, 16)], rotation(45, (96, 96)), (96, 96))[0]
    assert turned.width == pytest.approx(16 * 2**0.5)


def test_boxes_pushed_out_drop_the_copy_unless_kept(tmp_path):
    step = {"op": "translate", "x": 0.9, "y": 0.9, "fill": "constant"}
    out, entries = run_op(tmp_path, step, 1)
    assert [e["variant"] for e in entries] == ["orig"] * 3
    report = json.loads((out / "report.json").read_text())
    assert report["totals"]["dropped"] == 3
    _, kept = run_op(tmp_path / "k", step, 1, "--keep-boxless", "1")
    assert sorted(e["variant"] for e in kept) == ["aug00"] * 3 + ["orig"] * 3
    assert all(e["boxes"] == [] for e in kept if e["variant"] == "aug00")


def test_malformed_labels_file_is_a_clear_error(tmp_path):
    src = detection_folder(tmp_path / "in", 1)
    bad = {"img0.png": [{"label": "red", "x": 1, "y": 2, "width": -3, "height": 4}]}
    (src / "bounding_boxes.labels").write_text(
        json.dumps({"version": 1, "type": "bounding-box-labels", "boundingBoxes": bad})
    )
    result = run_block(["--in-directory", str(src), "--out-directory", str(tmp_path / "out")], workdir=tmp_path)
    assert result.returncode == 1
    assert "bounding_boxes.labels: 'img0.png'[0]: width and height must be positive" in result.stdout
    for bad, message in [("{", "invalid JSON"), ('{"version": 2}', "expected version 1")]:
        with pytest.raises(LabelsError, match=message):
            parse_boxes_file(bad, "x")


def test_info_labels_export_and_box_derived_label(tmp_path):
    src = detection_folder(tmp_path / "in", 2)
    boxes = json.loads((src / "bounding_boxes.labels").read_text())["boundingBoxes"]
    (src / "bounding_boxes.labels").unlink()
    info = {"version": 1, "files": [{"path": k, "name": k, "category": "training", "label": {"type": "label"},
                                     "boundingBoxes": v} for k, v in boxes.items()]}  # fmt: skip
    (src / "info.labels").write_text(json.dumps(info))
    assert parse_info_file(json.dumps(info), "info.labels")["img0.png"][0].label == "red"
    out = tmp_path / "out"
    result = run_block(["--in-directory", str(src), "--out-directory", str(out), "--copies", "1"], workdir=tmp_path)
    assert result.returncode == 0, result.output
    # top-level images with boxes take their most common box label (a tie: alphabetical)
    assert sorted(p.name for p in (out / "blue").glob("*.png"))[:2] == ["blue.img0.aug00.png", "blue.img0.orig.png"]
    assert (out / "blue" / "bounding_boxes.labels").is_file()
