"""The pictures of the docs, from what bench/results holds (``make figures``; matplotlib, a bench-only tool).

    python bench/figures.py [--out docs/images]

- ``presets-field.png``: accuracy per field condition for each preset (bench/results/quality.jsonl, 5 seeds);
- ``copies-curve.png``: clean and field accuracy of ``trivial`` against its copies per original;
- ``speed.png``: outputs per CPU-second of the block, its peer (the workshop notebook) and the I/O floors
  (bench/results/speed.json);
- ``preview-<preset>.jpg``: the block's own preview sheet (``--preview 1 --dry-run 1``) for each preset, on one
  image per class of the built-in demo set (the same copies a run over the whole demo set makes).

The numbers are the tables' of docs/quality.md and docs/performance.md; nothing here is measured anew.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
from augment.demo import write_sample_set  # noqa: E402
from bench import field, quality  # noqa: E402

PRESETS = ["none", "workshop", "light", "medium", "heavy", "trivial"]
COPIES = {"trivial@2": 2, "trivial@4": 4, "trivial": 8, "trivial@14": 14}
SEEDS, STEPS = range(5), 705
PREVIEWS = {  # file stem -> the block's arguments
    "trivial": ["--preset", "trivial"],
    "trivial-any": ["--preset", "trivial", "--orientation", "any"],
    "light": ["--preset", "light"],
    "medium": ["--preset", "medium"],
    "heavy": ["--preset", "heavy"],
    "workshop": ["--preset", "workshop"],
}


def accuracy(results: Path, conditions: list[str]) -> dict[str, dict[str, list[float]]]:
    """Per condition: clean, field and each field condition's accuracy (%) for each of seeds 0-4 at 705 steps,
    EI's model (not the --standardize what-if), as the tables of docs/quality.md."""
    rows = quality.load_results(results)
    out = {}
    for condition in conditions:
        mine = [rows[(seed, condition, STEPS)] for seed in SEEDS if (seed, condition, STEPS) in rows]
        if not mine:
            continue
        columns = {"clean": [r["clean"] for r in mine], "field": [r["field"] for r in mine]}
        columns.update({n: [r["per_condition"][n] for r in mine] for n in field.CONDITIONS})
        out[condition] = {k: [100 * v for v in values] for k, values in columns.items()}
    return out


def presets_chart(acc: dict[str, dict[str, list[float]]], path: Path) -> None:
    import matplotlib.pyplot as plt

    columns = ["clean", "field", *field.CONDITIONS]
    names = [c for c in PRESETS if c in acc]
    grid = np.array([[np.mean(acc[c][k]) for k in columns] for c in names])
    fig, ax = plt.subplots(figsize=(12, 0.5 * len(names) + 2.2), dpi=100)
    ax.imshow(grid, cmap="RdYlGn", vmin=20, vmax=100, aspect="auto")
    for (i, j), v in np.ndenumerate(grid):
        ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=9, color="black")
    ax.set_xticks(range(len(columns)), [c.replace("_", " ") for c in columns], rotation=40, ha="right")
    ax.set_yticks(range(len(names)), [f"{c} (default)" if c == "trivial" else c for c in names])
    ax.axvline(1.5, color="white", lw=3)
    ax.set_title(
        "Accuracy (%) of the workshop CNN trained on each preset's output: clean held-out photos, the field set's "
        "mean,\nand each field condition (5 paired seeds, 705 steps; random presets with --orientation any)",
        fontsize=10,
        loc="left",
    )
    _save(fig, path)


def copies_chart(acc: dict[str, dict[str, list[float]]], path: Path) -> None:
    import matplotlib.pyplot as plt

    names = [c for c in COPIES if c in acc]
    x = [COPIES[c] for c in names]
    fig, ax = plt.subplots(figsize=(6.5, 3.6), dpi=100)
    for key, colour in (("clean", "tab:blue"), ("field", "tab:orange")):
        mean = [np.mean(acc[c][key]) for c in names]
        std = [np.std(acc[c][key], ddof=1) for c in names]
        ax.errorbar(x, mean, yerr=std, marker="o", capsize=4, color=colour, label=f"{key} photos")
    ax.set_xticks(x)
    ax.set_xlabel("copies per original (--copies)")
    ax.set_ylabel("accuracy %  (mean ± std, 5 seeds)")
    ax.set_title("trivial: accuracy levels off at 8 copies (the default)", fontsize=10, loc="left")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    _save(fig, path)


def speed_chart(results: Path, path: Path) -> None:
    """One panel per job of bench/results/speed.json: outputs per CPU-second of each contender."""
    import matplotlib.pyplot as plt

    panels = json.loads(results.read_text())["panels"]
    colours = {"floor": "tab:gray", "peer": "tab:red", "block": "tab:blue"}
    heights = [0.42 * len(p["rows"]) + 0.9 for p in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, sum(heights) + 0.8), dpi=100, height_ratios=heights)
    for ax, panel in zip(np.atleast_1d(axes), panels, strict=True):
        rows = panel["rows"]
        y = np.arange(len(rows))[::-1]
        ax.barh(y, [r["out_per_cpu_s"] for r in rows], color=[colours[r["kind"]] for r in rows])
        top = max(r["out_per_cpu_s"] for r in rows)
        for yi, r in zip(y, rows, strict=True):
            wall = f"  ({r['wall_s']} s wall)" if "wall_s" in r else ""
            ax.text(r["out_per_cpu_s"] + top / 100, yi, f"{r['out_per_cpu_s']:,}{wall}", va="center", fontsize=8)
        ax.set_yticks(y, [r["run"] for r in rows], fontsize=8)
        ax.set_xlim(0, 1.25 * top)
        ax.set_title(panel["title"], fontsize=9, loc="left")
    np.atleast_1d(axes)[-1].set_xlabel("outputs per CPU-second (higher is faster)")
    fig.suptitle(
        "The block (blue), its peers (red) and the I/O floors (grey), each measured side by side in one run",
        fontsize=10,
        x=0.01,
        ha="left",
    )
    _save(fig, path)


def previews(out: Path) -> None:
    """The block's preview sheet for each preset, on the first image of each class of the demo set."""
    with tempfile.TemporaryDirectory(prefix="figures-") as tmp:
        demo, one = Path(tmp) / "demo", Path(tmp) / "one"
        write_sample_set(demo)
        for image in sorted(demo.glob("*/00.png")):
            (one / image.parent.name).mkdir(parents=True)
            shutil.copy(image, one / image.parent.name / image.name)
        for stem, args in PREVIEWS.items():
            dest = Path(tmp) / stem
            cmd = [sys.executable, str(ROOT / "transform.py"), "--in-directory", str(one), "--out-directory"]
            cmd += [str(dest), "--seed", "42", "--preview", "1", "--dry-run", "1", *args]
            subprocess.run(cmd, check=True, capture_output=True)
            Image.open(dest / "preview.png").convert("RGB").save(out / f"preview-{stem}.jpg", quality=88)


def _save(fig: object, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})  # no version stamp: a rerun on the same data gives the same file
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "images", help="folder (default: %(default)s)")
    p.add_argument("--quality", type=Path, default=BENCH / "results" / "quality.jsonl")
    p.add_argument("--speed", type=Path, default=BENCH / "results" / "speed.json")
    opts = p.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    opts.out.mkdir(parents=True, exist_ok=True)
    acc = accuracy(opts.quality, PRESETS + list(COPIES))
    presets_chart(acc, opts.out / "presets-field.png")
    copies_chart(acc, opts.out / "copies-curve.png")
    speed_chart(opts.speed, opts.out / "speed.png")
    previews(opts.out)
    print(f"wrote preview-{{{','.join(PREVIEWS)}}}.jpg in {opts.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
