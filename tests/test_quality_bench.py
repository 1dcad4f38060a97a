"""The outcome benchmark's harness (bench/quality.py, field.py, trainer.py): a smoke run and its parts.

The tests that train a model need PyTorch: they are marked ``torch`` (``make test-torch``); the rest run in
``make test`` without it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from augment.demo import write_sample_set
from bench import field, figures, mixlight, quality

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    rng = np.random.default_rng(3)
    a = np.full((48, 48, 3), 120, np.uint8)
    a[10:20, 8:40] = (200, 90, 40)
    return np.clip(a + rng.normal(0, 4, a.shape), 0, 255).astype(np.uint8)


def test_every_field_condition_changes_the_photo_deterministically(photo: np.ndarray) -> None:
    first = field.field_set({"c/a.png": photo}, seed=1)
    again = field.field_set({"c/a.png": photo}, seed=1)
    assert list(first) == list(field.CONDITIONS)
    for condition, images in first.items():
        assert len(images) >= 2, condition
        for name, image in images.items():
            assert image.shape == photo.shape and image.dtype == np.uint8, (condition, name)
            assert np.abs(image.astype(int) - photo).mean() > 1.0, f"{condition}/{name} leaves the photo as it is"
            assert np.array_equal(image, again[condition][name]), f"{condition}/{name} is not repeatable"


def test_quarter_turns_are_exact(photo: np.ndarray) -> None:
    turned = field.field_set({"c/a.png": photo})["quarter_turn"]
    assert np.array_equal(turned["c/a.png/rot180"], photo[::-1, ::-1])


def test_split_holds_out_exactly_per_class_and_depends_on_the_seed(tmp_path: Path) -> None:
    write_sample_set(tmp_path, per_class=8)
    train, test = quality.split(tmp_path, seed=0, holdout=3)
    assert {len(v) for v in test.values()} == {3} and {len(v) for v in train.values()} == {5}
    assert all(not set(train[c]) & set(test[c]) for c in train)
    assert quality.split(tmp_path, seed=0, holdout=3) == (train, test)
    assert quality.split(tmp_path, seed=1, holdout=3)[1] != test


@pytest.mark.torch
def test_trainer_learns_a_separable_problem() -> None:
    from bench import trainer

    rng = np.random.default_rng(0)
    dark = rng.integers(0, 60, (40, 24, 24)).astype(np.uint8)
    light = rng.integers(180, 255, (40, 24, 24)).astype(np.uint8)
    x, y = np.concatenate([dark, light]), np.asarray([0] * 40 + [1] * 40)
    model = trainer.train(x, y, 2, seed=0, steps=40)
    assert trainer.accuracy(model, x, y) == 1.0
    flipped = trainer.accuracy(model, x, 1 - y)
    assert flipped == 0.0


@pytest.mark.torch
def test_smoke_run_on_one_seed_and_a_few_steps(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_sample_set(data, per_class=6)
    results = tmp_path / "results.jsonl"
    cmd = [sys.executable, str(BENCH / "quality.py"), "--data", str(data), "--seeds", "1", "--steps", "3"]
    cmd += ["--holdout", "2", "--conditions", "none,medium@1,trivial@2", "--results", str(results)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    classes = len([p for p in data.iterdir() if p.is_dir()])
    assert sorted((r["condition"], r["train_images"]) for r in rows) == [  # in the order the jobs finished
        ("medium@1", 8 * classes),  # originals + one copy each
        ("none", 4 * classes),
        ("trivial@2", 12 * classes),
    ]
    for r in rows:
        assert set(r["per_condition"]) == set(field.CONDITIONS)
        assert all(0.0 <= v <= 1.0 for v in [r["clean"], r["field"], *r["per_condition"].values()])
    assert "| medium@1 |" in done.stdout and "| trivial@2 |" in done.stdout
    # A second run reuses what the results file holds instead of training again.
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert again.returncode == 0 and len(results.read_text().splitlines()) == 3


def test_unknown_condition_fails_before_any_work(tmp_path: Path) -> None:
    write_sample_set(tmp_path, per_class=3)
    cmd = [sys.executable, str(BENCH / "quality.py"), "--data", str(tmp_path), "--conditions", "none,bogus"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0 and "unknown condition 'bogus'" in done.stderr


def test_greyscale_is_eis_luma() -> None:
    rgb = np.asarray([[[255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    assert quality.grey(rgb).tolist() == [[76, 150, 29]]
    assert Image.fromarray(quality.grey(rgb)).mode == "L"


@pytest.mark.torch
def test_seeds_trained_in_parallel_score_as_one_at_a_time(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_sample_set(data, per_class=5)
    scores = {}
    for jobs in (1, 2):
        results = tmp_path / f"jobs{jobs}.jsonl"
        cmd = [sys.executable, str(BENCH / "quality.py"), "--data", str(data), "--seeds", "2", "--steps", "4"]
        cmd += ["--holdout", "2", "--conditions", "none,light@1", "--jobs", str(jobs), "--results", str(results)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        rows = [json.loads(line) for line in results.read_text().splitlines()]
        scores[jobs] = {(r["seed"], r["condition"]): (r["clean"], r["per_condition"]) for r in rows}
    assert len(scores[1]) == 4 and scores[2] == scores[1]


def test_conditions_are_built_ins_recipe_files_or_the_oracle() -> None:
    assert quality.block_args("trivial@14") == ["--preset", "trivial", "--orientation", "any", "--copies", "14"]
    recipe = quality.RECIPES / "medium-v1.json"
    assert quality.block_args("medium-v1@2") == ["--recipe", str(recipe), "--copies", "2"]
    assert quality.block_args(quality.ORACLE) is None
    with pytest.raises(SystemExit, match="makes no copies"):
        quality.block_args(f"{quality.ORACLE}@4")
    with pytest.raises(SystemExit, match="medium-v1"):  # the message lists the recipe files too
        quality.block_args("bogus")


def test_the_mixlight_prototype_blends_copies_only_seeded_and_keeps_the_geometry(tmp_path: Path, photo) -> None:
    assert quality.block_args("mixlight-proto") == ["--recipe", str(quality.RECIPES / "duo-geo.json")]
    for run in ("a", "b"):
        (tmp_path / run / "c").mkdir(parents=True)
        for name in ("x.0.orig.png", "x.0.aug00.png", "x.0.aug01.png"):
            Image.fromarray(photo).save(tmp_path / run / "c" / name)
        mixlight.apply_to_folder(tmp_path / run, seed=4)
    read = {p.name: np.asarray(Image.open(p)) for p in (tmp_path / "a" / "c").iterdir()}
    assert np.array_equal(read["x.0.orig.png"], photo)  # the original is never blended
    assert not np.array_equal(read["x.0.aug00.png"], photo) and not np.array_equal(
        read["x.0.aug00.png"], read["x.0.aug01.png"]
    )
    for name, pixels in read.items():  # seeded per file name: a rerun gives the same pixels
        assert np.array_equal(np.asarray(Image.open(tmp_path / "b" / "c" / name)), pixels)
    # Photometric only: the part stays where it was (its bright-orange block keeps its place in every channel).
    moved = np.asarray(Image.open(tmp_path / "a" / "c" / "x.0.aug00.png")).astype(int)
    assert moved[10:20, 8:40, 0].mean() > moved[30:, :, 0].mean()


def test_table_only_needs_no_dataset_and_counts_a_repeated_seed_once(tmp_path: Path) -> None:
    row = {"steps": 3, "args": None, "train_images": 10, "augment_s": 0.0, "train_s": 1.0, "clean": 0.5}
    per_condition = {name: 0.5 for name in field.CONDITIONS}
    lines = [{**row, "seed": s, "condition": "none", "field": 0.5, "per_condition": per_condition} for s in (0, 1)]
    results = tmp_path / "r.jsonl"
    results.write_text("".join(json.dumps(line) + "\n" for line in lines))
    cmd = [sys.executable, str(BENCH / "quality.py"), "--data", str(tmp_path / "absent"), "--results", str(results)]
    cmd += ["--table-only", "--steps", "3", "--seed-list", "0,0,1", "--conditions", "none,none"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("| none | 2 |") == 1


@pytest.mark.torch
def test_the_standardize_what_if_ignores_exposure_and_contrast() -> None:
    import torch

    from bench import trainer

    torch.manual_seed(0)
    model = trainer.build(3, 24, standardize=True).eval()
    x = torch.rand(4, 1, 24, 24)
    with torch.no_grad():
        assert torch.allclose(model(x), model(0.4 * x + 0.3), atol=5e-3)  # the 1e-3 guard in the std
        plain = trainer.build(3, 24).eval()
        assert not torch.allclose(plain(x), plain(0.4 * x + 0.3), atol=5e-3)


def test_charts_plot_the_figures_of_the_quality_tables() -> None:
    results = BENCH / "results" / "quality.jsonl"
    acc = figures.accuracy(results, figures.PRESETS + list(figures.COPIES))
    assert set(acc) == set(figures.PRESETS) | set(figures.COPIES)
    rows = [r for (seed, _, steps), r in quality.load_results(results).items() if steps == 705 and seed < 5]
    table = quality.table(rows, figures.PRESETS)
    for condition, columns in acc.items():
        assert all(len(v) == 5 for v in columns.values()), condition  # five seeds, as the tables
        if condition in figures.PRESETS:
            clean, in_field = (f"{sum(columns[k]) / 5:.1f} ± " for k in ("clean", "field"))
            assert f"| {condition} | 5 |" in table and clean in table and in_field in table
    assert round(sum(acc["trivial"]["field"]) / 5, 1) == 85.4  # the README's figure
