"""Hostile datasets on disk: links (to folders, to files, broken, looping), special files, odd names."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import gradient
from tests.test_hostile import run


def test_linked_class_folders_and_files_are_followed_and_broken_links_skipped(tmp_path):
    elsewhere = tmp_path / "elsewhere" / "cats"
    elsewhere.mkdir(parents=True)
    gradient("RGB", (16, 16)).save(elsewhere / "c.png")
    (tmp_path / "in" / "dogs").mkdir(parents=True)
    gradient("RGB", (16, 16), seed=1).save(tmp_path / "in" / "dogs" / "d.png")
    (tmp_path / "in" / "cats").symlink_to(elsewhere)  # a linked class folder
    (tmp_path / "in" / "dogs" / "linked.png").symlink_to(elsewhere / "c.png")  # a linked file
    (tmp_path / "in" / "dogs" / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    (tmp_path / "in" / "dogs" / "self.png").symlink_to("self.png")  # a link to itself
    (tmp_path / "in" / "dogs" / "up").symlink_to(tmp_path / "in")  # a folder loop
    (tmp_path / "in" / "gone").symlink_to(tmp_path / "no-such-folder")
    result, out = run(tmp_path, "--copies", "1")
    assert result.returncode == 0, result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in (out / "cats").iterdir()) == ["cats.c.aug00.png", "cats.c.orig.png"]
    assert "dogs.linked.aug00.png" in {p.name for p in (out / "dogs").iterdir()}
    lines = result.stdout.splitlines()
    assert any(line.startswith("skipped dogs/dangling.png: broken symlink") for line in lines), result.stdout
    assert any(line.startswith("skipped dogs/self.png: symlink loop") for line in lines), result.stdout
    assert any(line.startswith("skipped dogs/up: symlink loop") for line in lines), result.stdout
    assert any(line.startswith("skipped gone: broken symlink") for line in lines), result.stdout


def test_fifo_and_device_are_skipped_not_read(tmp_path):
    folder = tmp_path / "in" / "x"
    folder.mkdir(parents=True)
    gradient("RGB", (16, 16)).save(folder / "fine.png")
    os.mkfifo(folder / "pipe.png")  # reading it would block forever
    (folder / "zero.png").symlink_to("/dev/zero")  # reading it would never end
    result, out = run(tmp_path, "--copies", "1")
    assert result.returncode == 0, result.output
    assert "skipped x/pipe.png: not a regular file (a FIFO)" in result.stdout
    assert "skipped x/zero.png: not a regular file (a device)" in result.stdout
    assert sorted(p.name for p in (out / "x").iterdir()) == ["x.fine.aug00.png", "x.fine.orig.png"]


def test_read_regular_refuses_over_the_cap_and_special_files(tmp_path):

    from augment.storage.files import FileRefused, read_regular

    (tmp_path / "big.png").write_bytes(b"x" * 101)
    assert read_regular(tmp_path / "big.png", limit=101) == b"x" * 101
    with pytest.raises(FileRefused, match="file too large"):
        read_regular(tmp_path / "big.png", limit=100)
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(FileRefused, match="FIFO"):
        read_regular(tmp_path / "pipe")


def test_names_that_are_not_utf8_survive_to_the_output(tmp_path):
    root = os.fsencode(tmp_path / "in")
    os.makedirs(root + b"/caf\xe9")
    gradient("RGB", (12, 12)).save(root + b"/caf\xe9/p\xffhoto.png")
    result, out = run(tmp_path, "--copies", "1")
    assert result.returncode == 0, result.output
    names = sorted(os.listdir(os.fsencode(out) + b"/caf\xe9"))
    assert names == [b"caf\xe9.p\xffhoto.aug00.png", b"caf\xe9.p\xffhoto.orig.png"]
    assert "caf\\xe9" in result.stdout  # the log shows the byte, never a broken line


def test_over_long_output_names_are_shortened_at_plan_time_stable_and_unique(tmp_path):
    folder = tmp_path / "in" / "x"
    folder.mkdir(parents=True)
    long_names = ["L" * 250 + ".png", "L" * 249 + "M.png", "é" * 124 + ".png"]  # each fits; +label/variant not
    for i, name in enumerate(long_names):
        gradient("RGB", (12, 12), seed=i).save(folder / name)
    first, out = run(tmp_path, "--copies", "2")
    assert first.returncode == 0, first.output
    names = sorted(p.name for p in (out / "x").iterdir())
    assert len(names) == 9 and len(set(names)) == 9
    assert all(len(os.fsencode(n)) <= 255 for n in names)
    assert all("~" in n for n in names)
    again, _ = run(tmp_path, "--copies", "2")
    assert again.returncode == 0 and sorted(p.name for p in (out / "x").iterdir()) == names
    totals = json.loads((out / "report.json").read_text())["totals"]
    assert (totals["written"], totals["existing"]) == (0, 9)  # the same names: a rerun finds them all


RECIPE_FILES = {
    "binary.json": bytes(range(256)) * 4,
    "latin1.json": '{"pipeline": [{"op": "hflip", "p": 0.5}], "name": "caf\xe9"}'.encode("latin-1"),
    "deep.json": b"[" * 100000 + b"]" * 100000,
    "huge.json": b'{"pipeline": [], "name": "' + b"x" * (2 * 1024 * 1024) + b'"}',
}


@pytest.mark.parametrize("case", [*RECIPE_FILES, "device", "long-string", "deep-text"])
def test_bad_recipe_exits_2_with_one_line(tmp_path, case):
    (tmp_path / "in" / "x").mkdir(parents=True)
    gradient("RGB", (8, 8)).save(tmp_path / "in" / "x" / "a.png")
    if case in RECIPE_FILES:
        (tmp_path / case).write_bytes(RECIPE_FILES[case])
        recipe = str(tmp_path / case)
    else:
        recipe = {"device": "/dev/zero", "long-string": "x" * 100_000, "deep-text": "{" + '"a":[' * 5000}[case]
    result, out = run(tmp_path, "--recipe", recipe)
    assert result.returncode == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and errors[0].startswith("ERROR: --recipe: "), result.output
    assert len(errors[0]) < 300 and not out.exists()


def test_boxes_outside_the_image_are_clipped_or_dropped_with_a_warning_naming_the_file(tmp_path):
    folder = tmp_path / "in" / "x"
    folder.mkdir(parents=True)
    gradient("RGB", (40, 30)).save(folder / "a.png")
    boxes = [
        {"label": "x", "x": 30, "y": 5, "width": 20, "height": 10},  # reaches out on the right
        {"label": "x", "x": 100, "y": 5, "width": 5, "height": 5},  # wholly outside
        {"label": "x", "x": 2, "y": 2, "width": 8, "height": 8},
        {"label": "x", "x": 2, "y": 2, "width": 8, "height": 8},  # the same again
    ]
    entry = json.dumps({"a.png": boxes})[1:-1]
    text = '{"version": 1, "type": "bounding-box-labels", "boundingBoxes": {' + entry + ", " + entry + "}}"
    (folder / "bounding_boxes.labels").write_text(text)  # "a.png" twice: JSON keeps the last silently
    result, out = run(tmp_path, "--copies", "2", "--preset", "light")
    assert result.returncode == 0, result.output
    where = "x/bounding_boxes.labels: 'a.png'"
    assert f"warning: {where}[0]: box (30, 5, 20 x 10) reaches outside the 40x30 image; clipped" in result.stdout
    assert f"warning: {where}[1]: box (100, 5, 5 x 5) lies outside the 40x30 image; dropped" in result.stdout
    assert f"warning: {where}[3]: the same box as an earlier entry; kept once" in result.stdout
    assert "warning: x/bounding_boxes.labels: 'a.png' appears more than once; the last one is used" in result.stdout
    labels = json.loads((out / "x" / "bounding_boxes.labels").read_text())["boundingBoxes"]
    assert labels["x.a.orig.png"] == [
        {"label": "x", "x": 30, "y": 5, "width": 10, "height": 10},
        {"label": "x", "x": 2, "y": 2, "width": 8, "height": 8},
    ]
    assert {"x.a.aug00.png", "x.a.aug01.png"} <= set(labels)  # copies are not dropped


def test_absurd_box_values_name_the_labels_file(tmp_path):
    folder = tmp_path / "in" / "x"
    folder.mkdir(parents=True)
    gradient("RGB", (40, 30)).save(folder / "a.png")
    boxes = {"a.png": [{"label": "x", "x": 1, "y": 1, "width": 1e12, "height": 5}]}
    body = {"version": 1, "type": "bounding-box-labels", "boundingBoxes": boxes}
    (folder / "bounding_boxes.labels").write_text(json.dumps(body))
    result, out = run(tmp_path, "--copies", "1")
    assert result.returncode == 1, result.output
    assert "x/bounding_boxes.labels: 'a.png'[0]: x, y, width and height must be within" in result.stdout
    assert "Traceback" not in result.output and not list(out.rglob("*.png"))


def test_a_run_that_would_write_nothing_says_so(tmp_path):
    (tmp_path / "in" / "x").mkdir(parents=True)
    gradient("RGB", (8, 8)).save(tmp_path / "in" / "x" / "a.png")
    result, out = run(tmp_path, "--copies", "0", "--include-originals", "0")
    assert result.returncode == 2, result.output
    assert "ERROR: this run would write nothing" in result.stdout
    assert not list(out.rglob("*.png"))
