"""Peak memory of the block's process tree against copies and pixels.

    python bench/memory.py [--cases photos4,photos40,flat85] [--workers 2] [--block other/transform.py]

- ``photos4`` / ``photos40``: two 12 MP (4000x3000) camera-like JPEGs, ``--copies 4`` / ``--copies 40``;
  with outputs streamed one at a time, the peak should not depend on the copies. ``photos4png`` /
  ``photos40png``: the same written as PNG (about 20 MB an output, where holding every copy showed most).
- ``flat85``: one 85 MP (10600x8000) flat-colour PNG (a few hundred KB on disk), ``--preset heavy``.

Each case runs ``transform.py`` in a subprocess; peak RSS is sampled from /proc every 20 ms over the whole
process tree (main process + workers), CPU seconds are the children's user+system time. The machine may be
shared: compare CPU seconds and peaks within one invocation (``--block`` runs another checkout the same way).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.procfs import watch_memory  # noqa: E402

CASES = {  # name: (dataset, extra arguments)
    "photos4": ("photos", ["--copies", "4"]),
    "photos40": ("photos", ["--copies", "40"]),
    "photos4png": ("photos", ["--copies", "4", "--image-format", "png"]),
    "photos40png": ("photos", ["--copies", "40", "--image-format", "png"]),
    "flat85": ("flat", ["--preset", "heavy"]),
}


def photo(seed: int, size: tuple[int, int] = (4000, 3000)) -> Image.Image:
    """A camera-like frame: smooth shading plus fine grain (so copies compress like photos, not like flat)."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 128 + 60 * np.sin(x / (97 + seed)) * np.cos(y / 131)
    rgb = np.stack([base, base * 0.8 + 30, 255 - base], axis=-1)
    rgb += rng.normal(0, 12, rgb.shape).astype(np.float32)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


def make(dataset: str, folder: Path) -> Path:
    root = folder / dataset
    if root.exists():
        return root
    (root / "a").mkdir(parents=True)
    if dataset == "photos":
        for i in range(2):
            photo(i).save(root / "a" / f"photo{i}.jpg", quality=90)
    else:
        Image.new("RGB", (10600, 8000), (90, 140, 200)).save(root / "a" / "flat.png")
    return root


def run(block: Path, src: Path, out: Path, workers: int, extra: list[str]) -> tuple[float, float, int, str]:
    """Wall s, CPU s (children), peak tree RSS (KiB), the last log line."""
    argv = [sys.executable, "-u", str(block), "--in-directory", str(src), "--out-directory", str(out)]
    argv += ["--workers", str(workers), "--seed", "1", *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    peak = watch_memory(proc)
    output = proc.communicate()[0].decode()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"block failed ({proc.returncode}):\n{output[-2000:]}")
    return wall, cpu, peak()[0], output.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default="photos4,photos40,photos4png,photos40png,flat85")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--block", type=Path, default=ROOT / "transform.py")
    parser.add_argument("--data", type=Path, help="where the datasets are made (kept between invocations)")
    args = parser.parse_args()
    data = args.data or Path(tempfile.gettempdir()) / "edge-augment-memory-bench"
    print(f"block {args.block}, {args.workers} workers")
    print("| case | wall s | CPU s | peak tree RSS |")
    print("|---|---|---|---|")
    for case in args.cases.split(","):
        dataset, extra = CASES[case]
        src = make(dataset, data)
        with tempfile.TemporaryDirectory() as tmp:
            wall, cpu, peak, last = run(args.block, src, Path(tmp) / "out", args.workers, extra)
            shutil.rmtree(tmp, ignore_errors=True)
        print(f"| {case} | {wall:.1f} | {cpu:.1f} | {peak / 1024:.0f} MiB |  ({last})", flush=True)


if __name__ == "__main__":
    main()
