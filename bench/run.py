"""Throughput of the block on the workshop dataset, as ratios against an I/O floor measured in the same run.

    python bench/run.py [--copies 16] [--data ../shared/data/electronic-components-png]

I/O floor: decode each original once and encode it `copies` times unchanged (same format and PNG level),
single process: what any augmenter must pay at least. The block runs as a subprocess (`transform.py`),
so its numbers include interpreter start and listing. Wall and CPU time are both reported, since machines
are shared: outputs per CPU-second is the fairer comparison.
"""

from __future__ import annotations

import argparse
import io
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "electronic-components-png"


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def io_floor(files: list[Path], copies: int, out: Path) -> tuple[float, float, int]:
    start, cpu = time.perf_counter(), time.process_time()
    n = 0
    for path in files:
        image = Image.open(path)
        image.load()
        for i in range(copies):
            buffer = io.BytesIO()
            image.save(buffer, "PNG", compress_level=6)
            (out / f"{path.parent.name}.{path.stem}.{i}.png").write_bytes(buffer.getvalue())
            n += 1
    return time.perf_counter() - start, time.process_time() - cpu, n


def block(data: Path, out: Path, copies: int, workers: int, preset: str) -> tuple[float, float, int]:
    cpu0 = children_cpu()
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, str(ROOT / "transform.py"), "--in-directory", str(data), "--out-directory", str(out),
         "--copies", str(copies), "--workers", str(workers), "--preset", preset, "--include-originals", "0"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    wall = time.perf_counter() - start
    return wall, children_cpu() - cpu0, sum(1 for _ in out.rglob("*.png"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=16)
    parser.add_argument("--preset", default="medium")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"no dataset at {args.data} (pass --data)")
    files = sorted(args.data.rglob("*.png"))
    print(f"{len(files)} originals from {args.data}, --copies {args.copies}, preset {args.preset}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        floor_dir = Path(tmp) / "floor"
        floor_dir.mkdir()
        wall, cpu, n = io_floor(files, args.copies, floor_dir)
        rows.append(("I/O floor (decode once, encode N, 1 proc)", wall, cpu, n))
        for workers in (1, 2):
            out = Path(tmp) / f"w{workers}"
            wall, cpu, n = block(args.data, out, args.copies, workers, args.preset)
            rows.append((f"block --workers {workers}", wall, cpu, n))
            shutil.rmtree(out)
    floor_cpu_rate = rows[0][3] / rows[0][2]
    print(f"{'run':<44} {'outputs':>8} {'wall s':>7} {'out/s':>7} {'cpu s':>7} {'out/cpu-s':>9} {'vs floor':>8}")
    for name, wall, cpu, n in rows:
        rate = n / cpu
        print(
            f"{name:<44} {n:>8} {wall:>7.2f} {n / wall:>7.0f} {cpu:>7.2f} {rate:>9.0f} {rate / floor_cpu_rate:>7.2f}x"
        )
    print(f"workers 2 vs 1, wall: {rows[1][1] / rows[2][1]:.2f}x")


if __name__ == "__main__":
    main()
