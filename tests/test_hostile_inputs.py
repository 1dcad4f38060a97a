"""Hostile labels files, recipes, paths, terminals, signals and a full temp folder: each gives one line and
the right exit code, never a traceback (real runs of transform.py; a real tmpfs for the full disk)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from augment.plan.labels import WARNINGS_PER_FILE, LabelsError, parse_boxes_file, parse_info_file
from augment.render.ops.base import RecipeError
from augment.render.recipe import load_recipe
from tests.conftest import gradient
from tests.support.blockrun import ROOT, ei_env, host_runner_only, run_block

HUGE = st.integers(min_value=10**30, max_value=10**900) | st.integers(min_value=-(10**900), max_value=-(10**30))
VALUE = st.none() | st.booleans() | st.integers() | HUGE | st.floats(allow_nan=False) | st.text(max_size=6)
JSON = st.recursive(
    VALUE,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=16,
)
BOX = st.fixed_dictionaries({"label": st.sampled_from(["a", "b"]), "x": VALUE, "y": VALUE, "width": VALUE,
                             "height": VALUE})  # fmt: skip
LABELS = st.fixed_dictionaries(
    {
        "version": st.just(1),
        "type": st.just("bounding-box-labels"),
        "boundingBoxes": st.dictionaries(st.sampled_from(["a.png", "b.png"]), st.lists(BOX, max_size=4), max_size=2),
    }
)


@settings(max_examples=150, deadline=None)
@given(doc=LABELS | JSON, bom=st.booleans())
def test_labels_text_with_huge_numbers_or_a_bom_parses_or_raises_labels_error(doc, bom):
    text = ("\ufeff" if bom else "") + json.dumps(doc)
    for parse in (parse_boxes_file, parse_info_file):
        with contextlib.suppress(LabelsError):
            parse(text, "f")


@settings(max_examples=150, deadline=None)
@given(doc=JSON, copies=VALUE, degrees=JSON)
def test_recipe_text_with_huge_numbers_loads_or_raises_recipe_error(doc, copies, degrees):
    for data in (doc, {"copies": copies, "pipeline": [{"op": "rotate", "degrees": degrees}]}):
        with contextlib.suppress(RecipeError):
            load_recipe(json.dumps(data))


def test_a_bom_is_accepted_and_5000_digits_named():
    body = {"version": 1, "type": "bounding-box-labels", "boundingBoxes": {"a.png": [
        {"label": "a", "x": 1, "y": 2, "width": 3, "height": 4}]}}  # fmt: skip
    assert parse_boxes_file("\ufeff" + json.dumps(body), "f")["a.png"][0].width == 3.0
    with pytest.raises(LabelsError, match=r"^f: a number of 5001 digits \(at most 30\)$"):
        parse_boxes_file(json.dumps(body).replace('"x": 1', '"x": 1' + "0" * 5000), "f")
    with pytest.raises(RecipeError, match=r"^--recipe: a number of 401 digits \(at most 30\)$"):
        load_recipe('{"copies": 1' + "0" * 400 + "}")


def test_duplicate_boxes_are_found_in_one_pass_and_summarised():
    """20,000 copies of one box, and 100 images each with a repeat: one line per image at most, and at most
    WARNINGS_PER_FILE lines (plus one counting the rest) for the file."""
    box = {"label": "a", "x": 1, "y": 2, "width": 3, "height": 4}
    body = {"version": 1, "type": "bounding-box-labels", "boundingBoxes": {"big.png": [box] * 20_000}}
    body["boundingBoxes"].update({f"{i}.png": [box, box] for i in range(100)})
    warnings: list[str] = []
    boxes = parse_boxes_file(json.dumps(body), "f", warnings)
    assert boxes["big.png"] == boxes["7.png"] and len(boxes["big.png"]) == 1
    assert warnings[0] == "f: 'big.png'[1]: the same box as an earlier entry (and 19998 more in this list); kept once"
    assert len(warnings) == WARNINGS_PER_FILE + 1
    assert warnings[-1] == f"f: {101 - WARNINGS_PER_FILE} more duplicated entries like these (not listed)"


def detection(tmp_path: Path, labels: bytes | None = None) -> Path:
    folder = tmp_path / "in" / "a"
    folder.mkdir(parents=True)
    gradient("RGB", (40, 30)).save(folder / "x.png")
    if labels is not None:
        (folder / "bounding_boxes.labels").write_bytes(labels)
    return folder


def run(tmp_path: Path, *extra: str, env: dict[str, str] | None = None):
    out = tmp_path / "out"
    args = ["--in-directory", str(tmp_path / "in"), "--out-directory", str(out), "--copies", "1", *extra]
    return run_block(args, workdir=tmp_path, env=env), out


LABELS_BODY = {"version": 1, "type": "bounding-box-labels",
               "boundingBoxes": {"x.png": [{"label": "a", "x": 1, "y": 2, "width": 8, "height": 6}]}}  # fmt: skip


def one_error(result, start: str) -> None:
    assert "Traceback" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and errors[0].startswith(start), result.output


def test_a_labels_file_with_a_utf8_bom_is_used(tmp_path):
    detection(tmp_path, b"\xef\xbb\xbf" + json.dumps(LABELS_BODY).encode())
    result, out = run(tmp_path)
    assert result.returncode == 0, result.output
    assert json.loads((out / "a" / "bounding_boxes.labels").read_text())["boundingBoxes"]["a.x.orig.png"]


@pytest.mark.parametrize(
    ("case", "code", "error"),
    [
        ("labels-digits", 1, "ERROR: a/bounding_boxes.labels: a number of 501 digits"),
        ("labels-fifo", 1, "ERROR: a/bounding_boxes.labels: cannot read: not a regular file (a FIFO)"),
        ("labels-device", 1, "ERROR: a/bounding_boxes.labels: cannot read: not a regular file (a device)"),
        ("recipe-digits", 2, "ERROR: --recipe: a number of 601 digits"),
        ("in-too-long", 2, "ERROR: --in-directory: "),
        pytest.param(
            "out-too-long",
            2,
            "ERROR: --out-directory: ",
            marks=host_runner_only("the container runner makes the --out-directory mount point on the host first"),
        ),
        ("file-name-too-long", 2, "ERROR: --in-file: "),
    ],
)
def test_hostile_inputs_give_one_line_and_the_exit_code(tmp_path, case, code, error):
    folder = detection(tmp_path)
    labels = folder / "bounding_boxes.labels"
    extra: list[str] = []
    deep = str(tmp_path / "/".join(["d" * 200] * 25))  # over PATH_MAX (4096 bytes)
    if case == "labels-digits":
        labels.write_text(json.dumps(LABELS_BODY).replace('"x": 1', '"x": 1' + "0" * 500))
    elif case == "labels-fifo":
        os.mkfifo(labels)
    elif case == "labels-device":
        labels.symlink_to("/dev/zero")
    elif case == "recipe-digits":
        (tmp_path / "r.json").write_text('{"pipeline": [{"op": "rotate", "degrees": [1' + "0" * 600 + ", 2]}]}")
        extra = ["--recipe", str(tmp_path / "r.json")]
    elif case == "in-too-long":
        extra = ["--in-directory", deep]
    elif case == "out-too-long":
        extra = ["--out-directory", deep]
    if case == "file-name-too-long":
        result = run_block(["--in-file", deep + "/x.png", "--out-directory", str(tmp_path / "o")], workdir=tmp_path)
    elif case == "in-too-long":
        result = run_block([*extra, "--out-directory", str(tmp_path / "o")], workdir=tmp_path)
    else:
        result, _ = run(tmp_path, *extra)
    assert result.returncode == code, result.output
    one_error(result, error)


def test_metadata_with_a_huge_number_is_a_note(tmp_path):
    detection(tmp_path)
    result, _ = run(tmp_path, "--metadata", '{"n": 1' + "0" * 5000 + "}")
    assert result.returncode == 0, result.output
    assert "note: --metadata ignored: a number of 5001 digits (at most 30)" in result.stdout


@pytest.mark.parametrize("env", [{"PYTHONIOENCODING": "ascii"}, {"LANG": "C", "LC_ALL": "C", "PYTHONUTF8": "0",
                                  "PYTHONCOERCECLOCALE": "0", "PYTHONIOENCODING": "ascii:strict"}])  # fmt: skip
def test_a_terminal_that_cannot_show_a_file_name_gets_escapes(tmp_path, env):
    folder = tmp_path / "in" / "café"
    folder.mkdir(parents=True)
    gradient("RGB", (8, 6)).save(folder / "é.png")
    (folder / "ü.png").write_bytes(b"not an image")
    result, out = run(tmp_path, "--max-failures", "1", env=ei_env(env))
    assert result.returncode == 0, result.output
    assert "Traceback" not in result.output
    assert re.search(r"ERROR caf(\\xe9|\\xc3\\xa9)/(\\xfc|\\xc3\\xbc).png: not an image", result.stdout), result.stdout
    assert (out / "café" / "café.é.orig.png").exists()


def sigint_when(tmp_path: Path, args: list[str], ready, env: dict[str, str]) -> tuple[int, str]:
    """Start transform.py, send SIGINT once ``ready(line or "", pid)`` is true (checked per output line and
    every 10 ms), return (exit code, output)."""
    proc = subprocess.Popen([sys.executable, "-u", str(ROOT / "transform.py"), *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    assert proc.stdout is not None
    lines = []
    try:
        os.set_blocking(proc.stdout.fileno(), False)
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if ready(line, proc.pid):
                proc.send_signal(signal.SIGINT)
                break
            time.sleep(0 if line else 0.01)
        os.set_blocking(proc.stdout.fileno(), True)
        rest = proc.communicate(timeout=120)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, "".join(lines) + rest


def index_open(pid: int) -> bool:
    """The process holds its temp index open (created, and unlinked at once, just before the listing)."""
    for fd in Path(f"/proc/{pid}/fd").glob("*"):
        with contextlib.suppress(OSError):
            if "edge-augment-" in os.readlink(fd):
                return True
    return False


def test_ctrl_c_while_listing_exits_130_in_one_line(tmp_path):
    """SIGINT once the run's temp index is open (the listing starts right after) in a folder of 30,000 files."""
    folder = tmp_path / "in" / "a"
    folder.mkdir(parents=True)
    for i in range(30_000):
        (folder / f"{i:05d}.png").touch()
    out = tmp_path / "out"
    args = ["--in-directory", str(tmp_path / "in"), "--out-directory", str(out)]
    code, output = sigint_when(tmp_path, args, lambda line, pid: index_open(pid), ei_env())
    assert code == 130, output
    assert "outputs in" not in output, "the signal came after the listing"
    assert "Traceback" not in output and "interrupted (SIGINT)" in output, output
    assert not list(out.rglob("*.png"))


def test_ctrl_c_during_the_preview_still_writes_the_report(tmp_path):
    for i in range(32):
        folder = tmp_path / "in" / f"c{i:02d}"
        folder.mkdir(parents=True)
        gradient("RGB", (800, 600), seed=i).save(folder / "a.png")
    out = tmp_path / "out"
    args = ["--in-directory", str(tmp_path / "in"), "--out-directory", str(out), "--copies", "1", "--preview", "1",
            "--preset", "heavy", "--workers", "1"]  # fmt: skip
    # the run logs this line right before drawing the sheet, which takes seconds: the signal lands in the preview
    # however loaded the machine (a fixed delay after the last result could land before it, in the manifest's end)
    ready = lambda line, pid: line.startswith("preview: drawing the contact sheet")  # noqa: E731
    code, output = sigint_when(tmp_path, args, ready, ei_env())
    assert code == 130, output
    assert "Traceback" not in output
    assert "interrupted (SIGINT) during the preview: outputs and manifest are complete, no preview" in output
    report = json.loads((out / "report.json").read_text())
    assert report["interrupted"] == "SIGINT" and report["totals"]["written"] == 32 * 2
    assert not list(out.glob("preview*")) and not list(out.rglob(".tmp-*"))


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 1 MiB tmpfs (root only): the run's temp index fills it mid-run (planning stores about 0.55 MiB of it)."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_full_temp_folder_mid_run_leaves_only_recorded_outputs(tmp_path, small_tmpfs):
    folder = tmp_path / "in" / "a"
    folder.mkdir(parents=True)
    for i in range(600):
        Image.new("L", (4, 4), i % 256).save(folder / f"{i:04d}.png")
    out = tmp_path / "out"
    args = ["--in-directory", str(tmp_path / "in"), "--out-directory", str(out), "--copies", "4"]
    full = run_block(args, workdir=tmp_path, env=ei_env({"TMPDIR": str(small_tmpfs)}))
    assert full.returncode == 1, full.output
    one_error(full, f"ERROR: the run's temp index in {small_tmpfs} failed (database or disk is full)")
    assert "outputs in" in full.stdout, "the augment phase had started"
    recorded = {json.loads(line).get("output") for line in (out / "manifest.jsonl").read_text().splitlines()}
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*.png")}
    assert on_disk and on_disk <= recorded
    again = run_block(args, workdir=tmp_path)
    assert again.returncode == 0, again.output
    clean = run_block([*args[:2], "--out-directory", str(tmp_path / "clean"), *args[4:]], workdir=tmp_path)
    assert clean.returncode == 0
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*.png")} == {
        p.relative_to(tmp_path / "clean"): p.read_bytes() for p in (tmp_path / "clean").rglob("*.png")
    }
