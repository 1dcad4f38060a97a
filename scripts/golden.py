"""Golden check for refactors: run the block on fixed inputs under every preset and many options, and record (or
compare) the sha256 of every output file and manifest line.

    python scripts/golden.py record golden.json    # on the tree before the change
    python scripts/golden.py check golden.json     # on the tree after: exits 1 naming every case that differs

Inputs are built in a temporary folder: the workshop PNG set (first 12 images per class, skipped if
../shared/data is absent), a synthetic detection set with bounding boxes, synthetic JPEG "photos" and one image
per colour mode. Each case is ``transform.py`` as a subprocess of this interpreter; report.json (timings) is not
compared, manifest lines are compared as a sorted set (their order depends on which worker finishes first).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
WORKSHOP = ROOT.parent / "shared" / "data" / "electronic-components-png"
PRESETS = ("workshop", "light", "medium", "heavy", "trivial")


def _cases(inputs: dict[str, Path]) -> dict[str, list[str]]:
    """Case name -> transform.py arguments (without the output folder)."""
    cases: dict[str, list[str]] = {}
    png, boxes, photos, modes = inputs["png"], inputs["boxes"], inputs["photos"], inputs["modes"]
    for preset in PRESETS:
        cases[f"png-{preset}"] = ["--in-directory", str(png), "--preset", preset, "--copies", "3", "--seed", "11"]
        cases[f"boxes-{preset}"] = ["--in-directory", str(boxes), "--preset", preset, "--copies", "4", "--seed", "5"]
        cases[f"modes-{preset}"] = ["--in-directory", str(modes), "--preset", preset, "--copies", "2", "--seed", "3"]
    cases["png-any-flat"] = [
        *("--in-directory", str(png), "--orientation", "any", "--output-layout", "flat", "--copies", "2"),
        *("--include-originals", "0", "--seed", "9"),
    ]
    cases["png-balance-holdout"] = [
        *("--in-directory", str(png), "--balance", "1", "--target-per-class", "20", "--test-fraction", "0.25"),
        *("--seed", "4", "--image-format", "jpeg", "--jpeg-quality", "80"),
    ]
    for mode in ("fit-short", "fit-long", "squash"):
        cases[f"photos-size-{mode}"] = [
            *("--in-directory", str(photos), "--output-size", "160x120", "--resize-mode", mode),
            *("--copies", "2", "--seed", "2", "--image-format", "jpeg"),
        ]
    cases["boxes-size-fit-long"] = [
        *("--in-directory", str(boxes), "--output-size", "64x64", "--resize-mode", "fit-long", "--copies", "3"),
    ]
    cases["photos-heavy-png"] = [
        "--in-directory",
        str(photos),
        "--preset",
        "heavy",
        "--image-format",
        "png",
        "--png-compression",
        "9",
    ]
    recipe = {
        "name": "golden",
        "pipeline": [
            {"op": "rotate", "degrees": [-20, 20], "p": 0.7},
            {"one_of": [{"op": "cutout", "count": [1, 3], "size": [0.1, 0.2]}, {"op": "blur", "sigma": [0.5, 1.5]}]},
            {"op": "salt_pepper", "amount": [0.01, 0.03], "p": 0.5},
        ],
    }
    cases["png-custom"] = ["--in-directory", str(png), "--recipe", json.dumps(recipe), "--copies", "2"]
    return cases


def _inputs(work: Path) -> dict[str, Path]:
    rng = np.random.default_rng(20261205)
    png = work / "png"
    if WORKSHOP.is_dir():
        for label_dir in sorted(p for p in WORKSHOP.iterdir() if p.is_dir()):
            (png / label_dir.name).mkdir(parents=True)
            for image in sorted(label_dir.iterdir())[:12]:
                shutil.copy(image, png / label_dir.name / image.name)
    else:
        for label in ("a", "b"):
            (png / label).mkdir(parents=True)
            for i in range(6):
                Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(png / label / f"{i}.png")
    sys.path.insert(0, str(ROOT))
    from tests.support.boxes_data import detection_folder

    boxes = detection_folder(work / "boxes", n=6)
    photos = work / "photos" / "thing"
    photos.mkdir(parents=True)
    yy, xx = np.mgrid[0:480, 0:640]
    for i in range(4):
        base = np.stack([(xx * (i + 1)) % 256, (yy * 2 + i * 40) % 256, (xx + yy) // 5 % 256], axis=-1)
        noisy = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(photos / f"p{i}.jpg", quality=92)
    modes = work / "modes" / "m"
    modes.mkdir(parents=True)
    rgba = Image.fromarray(rng.integers(0, 256, (48, 64, 4), dtype=np.uint8), "RGBA")
    for mode in ("L", "LA", "RGB", "RGBA", "P", "1", "CMYK"):
        image = rgba.convert(mode) if mode != "P" else rgba.convert("RGB").quantize(32)
        image.save(modes / f"{mode}.{'jpg' if mode == 'CMYK' else 'png'}")
    Image.fromarray(rng.integers(0, 65536, (40, 56), dtype=np.uint16)).save(modes / "I16.png")
    return {"png": png, "boxes": boxes, "photos": photos.parent, "modes": modes.parent}


def _digest(out: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        rel = path.relative_to(out).as_posix()
        if rel == "report.json":
            continue
        if rel.endswith("manifest.jsonl"):
            lines = sorted(path.read_text().splitlines())
            found[rel] = hashlib.sha256("\n".join(lines).encode()).hexdigest()
        else:
            found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def main() -> int:
    """Record or check; see the module docstring."""
    if len(sys.argv) != 3 or sys.argv[1] not in ("record", "check"):
        print(__doc__)
        return 2
    action, golden = sys.argv[1], Path(sys.argv[2]).resolve()
    results: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, args in _cases(_inputs(work)).items():
            out = work / "out" / name
            proc = subprocess.run(
                [sys.executable, "transform.py", *args, "--out-directory", str(out), "--workers", "2"],
                cwd=ROOT,
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                print(f"{name}: exit {proc.returncode}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
            results[name] = {"exit": str(proc.returncode), **_digest(out)}
            print(f"{name}: {len(results[name]) - 1} files, exit {proc.returncode}", flush=True)
    if action == "record":
        golden.write_text(json.dumps(results, indent=1, sort_keys=True))
        print(f"recorded {len(results)} cases in {golden}")
        return 0
    expected = json.loads(golden.read_text())
    differ = [name for name in sorted(set(expected) | set(results)) if expected.get(name) != results.get(name)]
    for name in differ:
        want, got = expected.get(name, {}), results.get(name, {})
        files = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
        print(f"DIFFERS {name}: {len(files)} files, e.g. {files[:3]}")
    print(f"{len(results) - len(differ)}/{len(results)} cases identical")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
