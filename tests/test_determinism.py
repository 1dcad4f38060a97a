"""Same inputs + seed => byte-identical outputs, whatever the file order, worker count or subset;
reruns skip what exists; a changed recipe is not silently mixed into an old output folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from augment.books.manifest import fingerprint
from augment.cli import parse
from augment.config import build_config
from augment.render.engine import KERNELS
from augment.render.presets import DEFAULT_PRESET, PRESETS
from augment.run.runner import run

PER_ORIGINAL = 1 + PRESETS[DEFAULT_PRESET]["copies"]  # outputs per image with the defaults (+ the original)


def run_dir(in_dir: Path, out_dir: Path, *extra: str) -> tuple[int, list[str]]:
    lines: list[str] = []
    args, _ = parse(["--in-directory", str(in_dir), "--out-directory", str(out_dir), *extra])
    return run(build_config(args, {}), lines.append), lines


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def images(folder: Path) -> dict[str, bytes]:
    return {k: v for k, v in tree(folder).items() if k.endswith(".png")}


def test_worker_count_and_file_order_do_not_change_a_byte(sample_dir, tmp_path):
    reordered = tmp_path / "reordered"
    for path in sorted(sample_dir.rglob("*.png"), reverse=True):  # created in the opposite order
        target = reordered / path.relative_to(sample_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    rc1, _ = run_dir(sample_dir, tmp_path / "w1", "--workers", "1", "--preset", "heavy")
    rc2, _ = run_dir(reordered, tmp_path / "w2", "--workers", "2", "--preset", "heavy")
    assert rc1 == rc2 == 0
    one, two = tree(tmp_path / "w1"), tree(tmp_path / "w2")
    assert len(images(tmp_path / "w1")) == 24 * 9
    assert one["manifest.jsonl"] == two["manifest.jsonl"]
    assert images(tmp_path / "w1") == images(tmp_path / "w2")


def test_a_subset_gives_the_same_outputs_as_the_full_run(sample_dir, tmp_path):
    subset = tmp_path / "subset"
    for key in ("circle/03.png", "triangle/07.png"):
        (subset / key).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sample_dir / key, subset / key)
    run_dir(sample_dir, tmp_path / "full")
    run_dir(subset, tmp_path / "part")
    full, part = images(tmp_path / "full"), images(tmp_path / "part")
    assert len(part) == 2 * PER_ORIGINAL
    assert all(full[name] == data for name, data in part.items())


def test_seed_changes_outputs(sample_dir, tmp_path):
    run_dir(sample_dir, tmp_path / "a", "--seed", "1", "--include-originals", "0")
    run_dir(sample_dir, tmp_path / "b", "--seed", "2", "--include-originals", "0")
    a, b = images(tmp_path / "a"), images(tmp_path / "b")
    assert a.keys() == b.keys()
    assert sum(a[k] != b[k] for k in a) > 0.9 * len(a)


def test_file_mode_matches_directory_mode(sample_dir, tmp_path):
    run_dir(sample_dir, tmp_path / "dir")
    args, _ = parse(["--in-file", str(sample_dir / "square" / "05.png"), "--out-directory", str(tmp_path / "file")])
    assert run(build_config(args, {}), lambda _: None) == 0
    single = images(tmp_path / "file")
    variants = [f"aug{i:02d}" for i in range(PER_ORIGINAL - 1)] + ["orig"]
    assert sorted(single) == [f"square/square.05.{v}.png" for v in variants]
    full = images(tmp_path / "dir")
    assert all(full[name] == data for name, data in single.items())


def test_rerun_skips_existing_and_regenerates_deleted(sample_dir, tmp_path):
    out = tmp_path / "out"
    run_dir(sample_dir, out)
    before = tree(out)
    victim = out / "circle" / "circle.02.aug01.png"
    victim.unlink()
    rc, _ = run_dir(sample_dir, out)
    assert rc == 0
    report = json.loads((out / "report.json").read_text())
    assert report["totals"]["written"] == 1 and report["totals"]["existing"] == 24 * PER_ORIGINAL - 1
    after = tree(out)
    assert {k: v for k, v in after.items() if k != "report.json"} == {
        k: v for k, v in before.items() if k != "report.json"
    }


def test_more_copies_later_adds_only_the_new_ones(sample_dir, tmp_path):
    out = tmp_path / "out"
    run_dir(sample_dir, out, "--copies", "2")
    first = images(out)
    run_dir(sample_dir, out, "--copies", "3")
    report = json.loads((out / "report.json").read_text())
    assert report["totals"]["written"] == 24 and report["totals"]["existing"] == 24 * 3
    assert all(images(out)[k] == v for k, v in first.items())


def test_other_recipe_in_the_same_folder_is_refused_unless_overwrite(sample_dir, tmp_path):
    out = tmp_path / "out"
    assert run_dir(sample_dir, out)[0] == 0
    try:
        run_dir(sample_dir, out, "--seed", "7")
    except RuntimeError as e:
        assert "another recipe, seed or format" in str(e)
    else:
        raise AssertionError("expected a refusal")
    rc, _ = run_dir(sample_dir, out, "--seed", "7", "--overwrite", "1")
    assert rc == 0
    assert json.loads((out / "report.json").read_text())["totals"]["written"] == 24 * PER_ORIGINAL


def test_file_mode_matches_directory_mode_for_prefixed_names_in_class_folders(tmp_path):
    folder = tmp_path / "in" / "circle"
    folder.mkdir(parents=True)
    import numpy as np

    from augment.demo import draw

    draw("circle", np.random.default_rng(1)).save(folder / "circle.00.png")
    run_dir(tmp_path / "in", tmp_path / "dir")
    args, _ = parse(["--in-file", str(folder / "circle.00.png"), "--out-directory", str(tmp_path / "file")])
    assert run(build_config(args, {}), lambda _: None) == 0
    assert images(tmp_path / "file") == images(tmp_path / "dir")


def test_a_folder_made_by_older_kernels_is_refused(sample_dir, tmp_path):
    """The header records which kernels made the bytes (KERNELS, with the OpenCV version): a rerun into a
    folder whose outputs older kernels made would mix two kinds of bytes, so it is refused."""
    out = tmp_path / "out"
    assert run_dir(sample_dir, out)[0] == 0
    manifest = out / "manifest.jsonl"
    header, *lines = manifest.read_text().splitlines()
    old = json.loads(header)
    assert old["kernels"] == KERNELS and "opencv" in KERNELS
    settings = {k: v for k, v in old.items() if k not in ("type", "fingerprint", "version")}
    assert fingerprint(settings) == old["fingerprint"]  # the header is rebuilt faithfully, kernels aside
    settings["kernels"] = 4
    old |= {"kernels": 4, "fingerprint": fingerprint(settings)}
    manifest.write_text("\n".join([json.dumps(old), *lines]) + "\n")
    with pytest.raises(RuntimeError, match="another recipe, seed or format"):
        run_dir(sample_dir, out)
    assert run_dir(sample_dir, out, "--overwrite", "1")[0] == 0
