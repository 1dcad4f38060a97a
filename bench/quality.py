"""Outcome benchmark: what the block's output does to a model (``make quality``).

For each seed, the workshop dataset is split per class (``--holdout`` originals of every class held out, never
augmented); the rest goes through the block (``transform.py``, as a user runs it) under each condition; the
workshop's CNN, as EI builds it for 96x96 greyscale input, is trained on the result for the same number of
optimizer steps whatever the condition (a recipe cannot win by making more images); and it is scored on the
clean held-out photos and on the field set (``bench/field.py``: the same photos as a deployed camera sees
them). Seeds are paired: one split, one initialisation and one batch order per seed, whatever the condition.

    python bench/quality.py                              # the docs table: 5 seeds, the default conditions
    python bench/quality.py --conditions trivial@2,trivial@14 --reference trivial   # the copies curve
    python bench/quality.py --seed-list 0,3 --conditions my-recipe                # bench/recipes/my-recipe.json

With ``--results FILE``, each (seed, condition) is appended to FILE as a JSON line and reused when a later run
asks for the same seed, condition and steps, so a table can be grown one condition at a time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench import field, mixlight  # noqa: E402

RECIPES = Path(__file__).resolve().parent / "recipes"  # <name>.json here is a condition called <name>
DATA = ROOT.parent / "shared" / "data" / "electronic-components-png"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}

# Every pose of a part seen from above, as --orientation any gives the random presets.
DIHEDRAL = [
    {"op": "hflip", "p": 0.5},
    {"op": "vflip", "p": 0.5},
    {"op": "rotate", "angles": [0, 90, 180, 270], "fill": "reflect"},
]

# TrivialAugment-style (Mueller & Hutter 2021): one op per copy, chosen uniformly, its magnitude uniform over
# a wide range; parameter-free apart from the ranges.
TRIVIAL_REFLECT = {
    "name": "trivial-reflect",
    "pipeline": [
        *DIHEDRAL,
        {
            "one_of": [
                {"op": "rotate", "degrees": [-45, 45], "fill": "reflect"},
                {"op": "zoom", "scale": [1.0, 1.5]},
                {"op": "translate", "x": [-0.3, 0.3], "y": [-0.3, 0.3], "fill": "reflect"},
                {"op": "shear", "x": [-20, 20], "y": [-20, 20], "fill": "reflect"},
                {"op": "brightness", "factor": [0.3, 1.7]},
                {"op": "contrast", "factor": [0.3, 1.7]},
                {"op": "gamma", "gamma": [0.4, 2.5]},
                {"op": "hue_saturation", "hue": [-0.1, 0.1], "saturation": [0.3, 1.7]},
                {"op": "blur", "sigma": [0.3, 2.5]},
                {"op": "sharpen", "amount": [0.3, 2.0]},
                {"op": "gaussian_noise", "sigma": [0.01, 0.1]},
                {"op": "cutout", "count": [1, 2], "size": [0.1, 0.3]},
            ]
        },
    ],
}

# A candidate screened on one seed and dropped: the (new) medium chain with shifts on most copies, a farther
# zoom-out, shear, and lighting further into flat and dim light.
WIDE2 = {
    "name": "wide2",
    "pipeline": [
        *DIHEDRAL,
        {"op": "translate", "x": [-0.25, 0.25], "y": [-0.25, 0.25], "fill": "reflect", "p": 0.6},
        {
            "some_of": [
                {"op": "rotate", "degrees": [-45, 45], "fill": "reflect"},
                {"op": "scale", "factor": [0.55, 1.0], "fill": "reflect"},
                {"op": "zoom", "scale": [1.0, 1.3]},
                {"op": "shear", "x": [-15, 15], "y": [-15, 15], "fill": "reflect"},
            ],
            "k": [1, 2],
        },
        {
            "some_of": [
                {"op": "brightness", "factor": [0.4, 1.6]},
                {"op": "contrast", "factor": [0.35, 1.3]},
                {"op": "gamma", "gamma": [0.5, 2.0]},
                {"op": "hue_saturation", "hue": [-0.05, 0.05], "saturation": [0.6, 1.4]},
            ],
            "k": [1, 2],
            "p": 0.9,
        },
        {"one_of": [{"op": "blur", "sigma": [0.5, 2.0]}, {"op": "sharpen", "amount": [0.3, 1.0]}], "p": 0.3},
        {
            "one_of": [
                {"op": "gaussian_noise", "sigma": [0.01, 0.06]},
                {"op": "poisson_noise", "peak": 0},
                {"op": "salt_pepper", "amount": [0.002, 0.01]},
            ],
            "p": 0.3,
        },
    ],
}

# name -> the block's arguments (None: the originals alone). A name may end in @N for --copies N.
CONDITIONS: dict[str, list[str] | None] = {
    "none": None,
    "workshop": ["--preset", "workshop"],
    "light": ["--preset", "light", "--orientation", "any"],
    "medium": ["--preset", "medium", "--orientation", "any"],
    "heavy": ["--preset", "heavy", "--orientation", "any"],
    "trivial": ["--preset", "trivial", "--orientation", "any"],
    "trivial-reflect": ["--recipe", json.dumps(TRIVIAL_REFLECT)],
    # References: upright, edge fill. Every candidate screened (medium-v1 = medium before the bench, medium-flat,
    # medium-frame, trivial-flat, duo, ws-light, ...) is a frozen recipe in bench/recipes/, so a condition of its
    # name; docs/quality.md says what each one is and what it measured.
    "medium-upright": ["--preset", "medium"],
    "trivial-upright": ["--preset", "trivial"],
    "medium-edge": ["--preset", "medium", "--orientation", "any", "--fill", "edge"],
    "wide2": ["--recipe", json.dumps(WIDE2)],
}
DEFAULT_CONDITIONS = "none,workshop,light,medium,heavy,trivial"
# Not a recipe: the training originals plus every field-set condition applied to them (bench/field.py), i.e.
# trained on the very transformations it is tested with (on other photos): a strong reference for what
# augmentation can do for this model at the same steps, not a candidate (and not a strict upper bound).
ORACLE = "field-oracle"
# Bench-side prototypes (not block features): the block makes the geometry (a recipe of bench/recipes/), then
# a function of the output folder and the seed changes the copies in place. Screened before anything is built.
PROTOTYPES = {"mixlight-proto": ("duo-geo", mixlight.apply_to_folder)}


def block_args(condition: str) -> list[str] | None:
    """The block's arguments for ``condition`` (``name`` or ``name@copies``)."""
    name, _, copies = condition.partition("@")
    if name == ORACLE:
        if copies:
            raise SystemExit(f"{condition!r}: {ORACLE} makes no copies (no @N)")
        return None
    if name in PROTOTYPES:
        name = PROTOTYPES[name][0]
    recipe_file = RECIPES / f"{name}.json"
    if name not in CONDITIONS and recipe_file.is_file():
        return ["--recipe", str(recipe_file), *(["--copies", copies] if copies else [])]
    if name not in CONDITIONS:
        known = [*CONDITIONS, ORACLE, *sorted(p.stem for p in RECIPES.glob("*.json"))]
        raise SystemExit(f"unknown condition {name!r}; choose from {', '.join(known)} (optionally @copies)")
    args = CONDITIONS[name]
    if args is None or not copies:
        return args
    return [*args, "--copies", copies]


def split(data: Path, seed: int, holdout: int) -> tuple[dict[str, list[Path]], dict[str, list[Path]]]:
    """Per class, ``holdout`` originals to test (ranked by a seeded hash of the name) and the rest to train."""
    train: dict[str, list[Path]] = {}
    test: dict[str, list[Path]] = {}
    for folder in sorted(p for p in data.iterdir() if p.is_dir()):
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        files.sort(key=lambda p: hashlib.sha256(f"{seed}/{folder.name}/{p.name}".encode()).digest())
        test[folder.name], train[folder.name] = files[:holdout], files[holdout:]
    return train, test


def grey(rgb: np.ndarray) -> np.ndarray:
    """EI's image DSP in greyscale mode: ITU-R 601 luma, which is Pillow's RGB -> L."""
    return np.asarray(Image.fromarray(rgb).convert("L"))


def rgb_of(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def training_set(folder: Path, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Every image the block wrote under ``folder/<class>/``, greyscale, with its class index."""
    images, labels = [], []
    for index, name in enumerate(classes):
        for path in sorted((folder / name).rglob("*")):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                images.append(grey(rgb_of(path)))
                labels.append(index)
    return np.stack(images), np.asarray(labels)


def augment(train: dict[str, list[Path]], work: Path, seed: int, args: list[str], workers: int) -> float:
    """Run the block over the training originals into ``work/out``; returns its wall time in seconds."""
    src = work / "train"
    if not src.exists():
        for label, files in train.items():
            (src / label).mkdir(parents=True)
            for path in files:
                shutil.copyfile(path, src / label / path.name)
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-u", str(ROOT / "transform.py"), "--in-directory", str(src), "--out-directory"]
    cmd += [str(out), "--seed", str(seed), "--workers", str(workers), "--since", "off", "--preview", "0", *args]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the block failed ({done.returncode}): {' '.join(cmd)}\n{done.stdout}\n{done.stderr}")
    return time.perf_counter() - start


def run_one(seed: int, condition: str, opts: argparse.Namespace, work: Path) -> dict:
    """Train and score one (seed, condition)."""
    from bench import trainer  # PyTorch: only where a model is trained (the tables, splits and conditions need none)

    train, test = split(opts.data, seed, opts.holdout)
    classes = sorted(train)
    args = block_args(condition)
    if args is None:
        photos = {f"{c}/{p.name}": rgb_of(p) for c in classes for p in train[c]}
        x = np.stack([grey(v) for v in photos.values()])
        y = np.asarray([classes.index(key.split("/")[0]) for key in photos])
        aug_s = 0.0
        if condition == ORACLE:
            x, y = _oracle_set(photos, classes, seed, x, y)
    else:
        aug_s = augment(train, work, seed, args, opts.workers)
        prototype = PROTOTYPES.get(condition.partition("@")[0])
        if prototype:
            start = time.perf_counter()
            prototype[1](work / "out", seed)
            aug_s += time.perf_counter() - start
        x, y = training_set(work / "out", classes)
    originals = {f"{c}/{p.name}": rgb_of(p) for c in classes for p in test[c]}
    truth = {key: classes.index(key.split("/")[0]) for key in originals}
    start = time.perf_counter()
    model = trainer.train(x, y, len(classes), seed=seed, steps=opts.steps, standardize=opts.standardize)
    train_s = time.perf_counter() - start
    clean = trainer.accuracy(model, np.stack([grey(v) for v in originals.values()]), np.asarray(list(truth.values())))
    per_condition = {}
    for name, images in _field_set(opts.data, seed, opts.holdout, originals).items():
        labels = np.asarray([truth["/".join(k.split("/")[:2])] for k in images])
        per_condition[name] = trainer.accuracy(model, np.stack([grey(v) for v in images.values()]), labels)
    return {
        "seed": seed,
        "condition": condition,
        "steps": opts.steps,
        **({"standardize": True} if opts.standardize else {}),
        "args": args,
        "train_images": len(x),
        "augment_s": round(aug_s, 2),
        "train_s": round(train_s, 1),
        "clean": clean,
        "field": float(np.mean(list(per_condition.values()))),
        "per_condition": per_condition,
    }


def _oracle_set(
    photos: dict[str, np.ndarray], classes: list[str], seed: int, x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The training originals (``x``, ``y``) plus every field condition's instances of ``photos`` (the reference)."""
    images, labels = [x], [y]
    for instances in field.field_set(photos, seed + 1000).values():
        images.append(np.stack([grey(v) for v in instances.values()]))
        labels.append(np.asarray([classes.index(k.split("/")[0]) for k in instances]))
    return np.concatenate(images), np.concatenate(labels)


_FIELD: dict[tuple[Path, int, int], dict[str, dict[str, np.ndarray]]] = {}


def _field_set(data: Path, seed: int, holdout: int, originals: dict[str, np.ndarray]) -> dict:
    """The field set of one split, made once per seed (every condition of that seed is scored on it)."""
    key = (data, seed, holdout)
    if key not in _FIELD:
        _FIELD.clear()
        _FIELD[key] = field.field_set(originals, seed)
    return _FIELD[key]


def run_task(seed: int, condition: str, opts: argparse.Namespace) -> dict:
    """Train and score one (seed, condition) in this process; the row is appended to ``--results`` at once."""
    import torch

    torch.set_num_threads(opts.threads)
    with tempfile.TemporaryDirectory(prefix=f"quality-{seed}-") as tmp:
        r = run_one(seed, condition, opts, Path(tmp))
    if opts.results:
        with opts.results.open("a") as f:  # one short line per write: O_APPEND keeps lines whole
            f.write(json.dumps(r) + "\n")
    print(
        f"seed {seed} {condition:>16}: clean {100 * r['clean']:5.1f}  field {100 * r['field']:5.1f}  "
        f"({r['train_images']} images, augment {r['augment_s']:.1f} s, train {r['train_s']:.0f} s)",
        flush=True,
    )
    return r


def load_results(path: Path, standardize: bool = False) -> dict[tuple[int, str, int], dict]:
    """The rows of ``path`` measured with the same model (EI's, or the --standardize what-if)."""
    if not path.exists():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(r["seed"], r["condition"], r["steps"]): r for r in rows if r.get("standardize", False) == standardize}


def _stat(values: list[float]) -> str:
    return f"{100 * np.mean(values):.1f} ± {100 * np.std(values, ddof=1 if len(values) > 1 else 0):.1f}"


def table(rows: list[dict], conditions: list[str], reference: str = "workshop") -> str:
    """Markdown: per condition, mean ± std over seeds of clean, field and worst-condition accuracy, and the
    paired difference in field accuracy from ``reference`` (same seeds: split, initial weights, batch order)."""
    ref = {r["seed"]: r["field"] for r in rows if r["condition"] == reference}
    lines = [
        f"| condition | seeds | images | augment s | clean % | field % | field Δ vs {reference} | worst condition % |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for condition in conditions:
        mine = [r for r in rows if r["condition"] == condition]
        if not mine:
            continue
        names = list(mine[0]["per_condition"])
        means = {n: np.mean([r["per_condition"][n] for r in mine]) for n in names}
        worst = min(means, key=means.get)
        deltas = [r["field"] - ref[r["seed"]] for r in mine if r["seed"] in ref]
        lines.append(
            f"| {condition} | {len(mine)} | {mine[0]['train_images']} | {np.mean([r['augment_s'] for r in mine]):.1f} "
            f"| {_stat([r['clean'] for r in mine])} | {_stat([r['field'] for r in mine])} "
            f"| {_stat(deltas) if deltas else 'n/a'} | {_stat([r['per_condition'][worst] for r in mine])} ({worst}) |"
        )
    names = list(rows[0]["per_condition"]) if rows else []
    lines += ["", "| condition | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for condition in conditions:
        mine = [r for r in rows if r["condition"] == condition]
        if mine:
            cells = [f"{100 * np.mean([r['per_condition'][n] for r in mine]):.0f}" for n in names]
            lines.append(f"| {condition} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DATA, help="class folders of photos (default: %(default)s)")
    p.add_argument("--conditions", default=DEFAULT_CONDITIONS, help="comma-separated (default: %(default)s)")
    p.add_argument("--seeds", type=int, default=5, help="paired seeds 0..N-1 (default: %(default)s)")
    p.add_argument("--seed-list", help="these seeds instead, comma-separated (e.g. 0,3 for a screen)")
    p.add_argument("--steps", type=int, default=705, help="optimizer steps per model (default: %(default)s)")
    p.add_argument("--holdout", type=int, default=10, help="originals per class held out (default: %(default)s)")
    p.add_argument("--workers", type=int, default=2, help="the block's --workers (default: %(default)s)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="models trained at once (default: CPUs)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per job (default: %(default)s)")
    p.add_argument(
        "--standardize",
        action="store_true",
        help="what-if: the model standardises each image first (not EI's model; its rows are kept apart)",
    )
    p.add_argument("--results", type=Path, help="JSON lines to append to, and to reuse finished runs from")
    p.add_argument("--reference", default="workshop", help="paired field differences from this condition")
    p.add_argument("--table-only", action="store_true", help="print the table of what --results holds; train nothing")
    opts = p.parse_args(argv)
    seeds = [int(s) for s in opts.seed_list.split(",")] if opts.seed_list else list(range(opts.seeds))
    seeds = list(dict.fromkeys(seeds))  # a seed or condition named twice is trained and counted once
    conditions = list(dict.fromkeys(c.strip() for c in opts.conditions.split(",") if c.strip()))
    for condition in conditions:
        block_args(condition)  # unknown names fail before any work
    if opts.results:
        opts.results.parent.mkdir(parents=True, exist_ok=True)
    done = load_results(opts.results, opts.standardize) if opts.results else {}
    if opts.table_only:
        rows = [r for (seed, c, steps), r in sorted(done.items()) if steps == opts.steps and seed in seeds]
        print(table(rows, conditions, opts.reference))
        return 0
    if not opts.data.is_dir():
        print(f"no dataset at {opts.data}: nothing to measure", file=sys.stderr)
        return 0
    todo = [(seed, c) for seed in seeds for c in conditions if (seed, c, opts.steps) not in done]
    started = time.perf_counter()
    jobs = max(1, min(opts.jobs, len(todo)))
    if jobs == 1:
        finished = [run_task(seed, c, opts) for seed, c in todo]
    else:
        # Tasks in seed order across `jobs` processes, each training on its own thread(s): small batches use one
        # core best, and a process that gets the next condition of the same seed reuses that seed's field set.
        # Spawned, so no worker inherits the parent's OpenMP state. (The "augment s" column is then measured
        # while the jobs share the CPUs.)
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            tasks = [seed for seed, _ in todo], [c for _, c in todo], [opts] * len(todo)
            finished = list(pool.map(run_task, *tasks))
    done.update({(r["seed"], r["condition"], opts.steps): r for r in finished})
    rows = [done[(seed, c, opts.steps)] for seed in seeds for c in conditions]
    print(f"\n{len(seeds)} seeds x {opts.steps} steps, {time.perf_counter() - started:.0f} s\n")
    print(table(rows, conditions, opts.reference))
    return 0


if __name__ == "__main__":
    sys.exit(main())
