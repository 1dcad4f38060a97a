"""EI's workshop dataset (../shared/data) through the workshop preset: counts, labels, no duplicates."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from tests.support.blockrun import run_block

pytestmark = pytest.mark.slow


def test_workshop_preset_on_the_class_folder_dataset(workshop_folders, tmp_path):
    out = tmp_path / "out"
    result = run_block(
        [
            "--in-directory",
            str(workshop_folders),
            "--out-directory",
            str(out),
            "--preset",
            "workshop",
            "--workers",
            "2",
        ],
        workdir=tmp_path,
    )
    assert result.returncode == 0, result.output
    files = sorted(p for p in out.rglob("*.png"))
    assert len(files) == 250 * 14 + 250
    labels = Counter()
    for path in files:
        label = path.parent.name
        assert path.name.startswith(label + "."), path
        labels[label] += 1
    assert labels == dict.fromkeys(["background", "capacitor", "diode", "led", "resistor"], 50 * 15)
    digests = Counter(hashlib.sha256(p.read_bytes()).hexdigest() for p in files)
    duplicates = sum(n - 1 for n in digests.values())
    assert duplicates == 0  # the notebook made 750 (its flips ran twice)
    sample = Image.open(out / "capacitor" / "capacitor.0.rot90.png")
    assert sample.size == (96, 96) and sample.mode == "RGBA"


def test_flat_grayscale_dataset_labels_from_name_prefix(workshop_flat, tmp_path):
    out = tmp_path / "out"
    result = run_block(
        ["--in-directory", str(workshop_flat), "--out-directory", str(out), "--copies", "1", "--workers", "2"],
        workdir=tmp_path,
    )
    assert result.returncode == 0, result.output
    folders = {p.name: len(list(p.glob("*.png"))) for p in out.iterdir() if p.is_dir()}
    assert folders == dict.fromkeys(["background", "capacitor", "diode", "led", "resistor"], 100)
    one = next(Path(out / "capacitor").glob("capacitor.00bff939.aug00.png"))
    assert Image.open(one).mode == "L"
