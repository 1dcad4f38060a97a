"""Memory and time per output as the dataset grows: 1x, 20x and 100x a set of tiny images.

    python bench/scale.py [--base 250] [--scales 1,20,100] [--copies 8] [--workers 2] [--resume]

Images are 16x16 PNGs (each with its own bytes), in 10 classes, so rendering costs little and the block's
own bookkeeping (listing, planning, names, manifest, resume look-ups) dominates. The block runs as
``transform.py`` in a subprocess, as a user runs it; peak RSS is sampled from /proc every 20 ms over its
whole process tree (main process + workers). Ratios are against the 1x run of the same invocation.
``--resume`` also times a rerun over the finished folder (everything recorded: look-ups only); ``--block``
measures another checkout's ``transform.py`` (its own modules are imported from beside it).
"""

from __future__ import annotations

import argparse
import io
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

CLASSES = 10


def make_dataset(folder: Path, count: int) -> None:
    """``count`` distinct 16x16 RGB PNGs in ``CLASSES`` class folders."""
    rng = np.random.default_rng(0)
    for c in range(CLASSES):
        (folder / f"class{c}").mkdir(parents=True)
    for i in range(count):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(buffer, "PNG")
        (folder / f"class{i % CLASSES}" / f"img{i:07d}.png").write_bytes(buffer.getvalue())


def run_block(src: Path, out: Path, copies: int, workers: int, block: Path) -> tuple[float, int, int]:
    """Wall seconds, peak tree RSS (KiB), outputs in the manifest."""
    argv = [sys.executable, "-u", str(block), "--in-directory", str(src)]
    argv += ["--out-directory", str(out), "--copies", str(copies), "--workers", str(workers), "--seed", "1"]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    peak = watch_memory(proc)
    output = proc.communicate()[0].decode()
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"block failed ({proc.returncode}):\n{output[-2000:]}")
    lines = sum(1 for _ in (out / "manifest.jsonl").open()) - 1
    return seconds, peak()[0], lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=int, default=250, help="images at 1x (default 250, the workshop's count)")
    parser.add_argument("--scales", default="1,20,100")
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--resume", action="store_true", help="also time a rerun with everything recorded")
    parser.add_argument(
        "--block", type=Path, default=ROOT / "transform.py", help="the entrypoint to measure (e.g. an older checkout's)"
    )
    args = parser.parse_args()
    scales = [int(s) for s in args.scales.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="edge-augment-scale-") as tmp:
        for scale in scales:
            src, out = Path(tmp) / f"in{scale}", Path(tmp) / f"out{scale}"
            make_dataset(src, args.base * scale)
            seconds, rss, outputs = run_block(src, out, args.copies, args.workers, args.block)
            resume = run_block(src, out, args.copies, args.workers, args.block)[0] if args.resume else None
            rows.append((scale, args.base * scale, outputs, seconds, rss, resume))
            print(f"{scale}x: {outputs} outputs in {seconds:.1f} s, peak RSS {rss / 1024:.0f} MiB", flush=True)
            shutil.rmtree(src)
            shutil.rmtree(out)
    _, _, base_outputs, base_seconds, base_rss, _ = rows[0]
    print(f"\n{'scale':>5} {'images':>8} {'outputs':>8} {'s':>7} {'ms/out':>7} {'x':>5} {'RSS MiB':>8} {'x':>5}"
          + (f" {'rerun ms/out':>12}" if args.resume else ""))  # fmt: skip
    for scale, images, outputs, seconds, rss, resume in rows:
        per = seconds / outputs * 1000
        ratio = per / (base_seconds / base_outputs * 1000)
        line = f"{scale:>4}x {images:>8} {outputs:>8} {seconds:>7.1f} {per:>7.3f} {ratio:>5.2f} {rss / 1024:>8.0f} "
        line += f"{rss / base_rss:>5.2f}"
        if resume is not None:
            line += f" {resume / outputs * 1000:>12.3f}"
        print(line)
    print("\ntargets (issue #14): from 1x to 20x, peak RSS <= 1.2x and time per output <= 1.15x")


if __name__ == "__main__":
    main()
