"""S3 and the EI ingestion sink at a distance: the same job local -> local, S3 -> S3 direct (0 ms) and through
a 50 ms round trip, and --dest ei through the same delay, measured in one run.

    python bench/s3_latency.py [--data ../shared/data/electronic-components-png] [--workers 2] [--delay 0.025]
                               [--repeat 1] [--skip-ingestion] [--times 1]

SeaweedFS (`weed`, as the tests) and the loopback ingestion service of the tests run on 127.0.0.1; the delay
comes from ``tests.support.latency_proxy`` (``--delay`` each way). Every run is ``transform.py`` as a subprocess with
the default preset and ``--workers``; outputs/s is outputs written / wall time (interpreter start, listing
and manifest included). Every remote run's outputs are checked byte for byte against the local run. The
proxy logs every request: each S3 run through it also says how many requests it made while nothing else was
in flight (each a 50 ms round trip waited for). Issue #23's targets: S3 -> S3 block CPU <= 1.3x local's,
direct >= 0.6x the local wall, through 50 ms >= 0.9x of direct. ``--times N`` runs the dataset N times over
(a job N times as long: what latency costs is a fixed number of round trips a run, not a share of it). Exits 0
with a note when the dataset is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
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
from bench.run import compile_block  # noqa: E402
from bench.s3 import BUCKET, digests_local, digests_s3  # noqa: E402
from tests.support.ingestion_server import IngestionServer  # noqa: E402
from tests.support.latency_proxy import LatencyProxy, measure_delay, serial_round_trips  # noqa: E402
from tests.support.s3server import SeaweedServer, running_server  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "electronic-components-png"
KEY = "bench-key-not-real"


CPU: dict[str, float] = {}  # CPU seconds of the last run: the block (with its workers), the store, the proxy


def run(args: list[str], env: dict[str, str], cwd: Path) -> float:
    """Wall seconds of one block run (exits the bench if the block fails); its CPU seconds go to ``CPU``."""
    compile_block()
    before = _cpu()
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-u", str(ROOT / "transform.py"), *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=3600,
    )  # fmt: skip
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"block failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
    after = _cpu()
    CPU.update({k: after[k] - before[k] for k in after})
    return wall


WAITS: list[str] = []  # the requests of each S3 run through the proxy, and how many were made one at a time
STORE_PIDS: list[int] = []  # the S3 server's process (its CPU is counted per run)


def _cpu() -> dict[str, float]:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = resource.getrusage(resource.RUSAGE_SELF)  # the proxy and the ingestion service run in this process
    return {
        "block": children.ru_utime + children.ru_stime,
        "store": sum(_proc_cpu(pid) for pid in STORE_PIDS),
        "bench": own.ru_utime + own.ru_stime,
    }


def _proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a whole number of at least 1, not {text!r}")
    return int(text)


def _images(data: Path) -> list[Path]:
    """The images the bench uploads and repeats (what the block reads, bar labels files)."""
    return sorted(p for p in data.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def repeated(data: Path, times: int, target: Path) -> Path:
    """``data`` with every image ``times`` times (``<stem>-<i><suffix>``, same class folders and root name)."""
    root = target / data.name
    for path in _images(data):
        folder = root / path.parent.relative_to(data)
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(times):
            shutil.copyfile(path, folder / f"{path.stem}-{i}{path.suffix}")
    return root


def seed(client, data: Path, prefix: str) -> int:
    files = _images(data)

    def put(path: Path) -> None:
        key = prefix + path.relative_to(data).as_posix()
        client.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes(), ContentType=content_type(key))

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, files))
    return len(files)


Row = tuple[str, int, float, bool | None, dict[str, float]]  # label, outputs, wall s, same as local, CPU s


def report(rows: list[Row], local: float, images: int) -> None:
    """One line a run; each rate also as a ratio to the local rate (its fastest run: other jobs share the CPU).
    S3 requests/s counts a GetObject per image and a PutObject per output (the listings and the manifest's
    few requests aside)."""
    print(
        f"{'run':<26} {'wall':>9} {'outputs/s':>10} {'vs local':>8}  CPU s: block store proxy+service  same bytes"
        "  S3 req/s"
    )
    for label, outputs, wall, same, cpu in rows:
        check = "" if same is None else str(same)
        requests = f"{(outputs + images) / wall:8.0f}" if label.startswith("S3") else ""
        print(
            f"{label:<26} {wall:7.2f} s {outputs / wall:10.1f} {local / wall:7.2f}x  "
            f"{cpu['block']:10.1f} {cpu['store']:5.1f} {cpu['bench']:13.1f}  {check:<10} {requests}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--workers", default="2")
    parser.add_argument("--delay", type=float, default=0.025, help="seconds each way (0.025: 50 ms round trip)")
    parser.add_argument("--skip-ingestion", action="store_true")
    parser.add_argument("--repeat", type=int, default=1, help="run local and S3 this many times, interleaved")
    parser.add_argument("--times", type=_count, default=1, help="the dataset this many times (a longer job)")
    opts = parser.parse_args()
    if not opts.data.is_dir():
        print(f"skipped: dataset not found at {opts.data}")
        return
    if not _images(opts.data):
        print(f"skipped: no images in {opts.data}")
        return
    work = Path(tempfile.mkdtemp(prefix="bench-s3-latency-"))
    try:
        if opts.times > 1:
            opts.data = repeated(opts.data, opts.times, work / "times")
        with running_server(work / "weed") as server, LatencyProxy(server.ports["s3.port"], opts.delay) as proxy:
            STORE_PIDS.extend([server.proc.pid] if server.proc is not None else [])
            measure(opts, work, server, proxy)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(opts: argparse.Namespace, work: Path, server: SeaweedServer, proxy: LatencyProxy) -> None:
    client = server.client()
    client.create_bucket(Bucket=BUCKET)
    prefix = opts.data.name + "/"  # the local folder's name: the same root name, the same labels
    images = seed(client, opts.data, prefix)
    rtt = (measure_delay(proxy.port) - measure_delay(server.ports["s3.port"])) * 1000
    print(
        f"{images} images from {opts.data}; --workers {opts.workers}, default preset; proxy adds {rtt:.1f} ms a request"
    )

    base = {"PATH": "/usr/bin:/bin", "HOME": str(work), "LANG": "C.UTF-8"}
    base |= {k: v for k, v in os.environ.items() if k == "EDGE_AUGMENT_IO_THREADS"}  # to try other settings
    common = ["--workers", opts.workers, "--seed", "42"]
    local = [*common, "--in-directory", str(opts.data), "--out-directory"]
    first = run([*local, str(work / "local")], base, work)
    expected = digests_local(work / "local")
    outputs = json.loads((work / "local" / "report.json").read_text())["totals"]["written"]
    rows: list[Row] = [("local -> local (first)", outputs, first, None, dict(CPU))]
    source = ["--source", f"s3://{BUCKET}/{prefix}"]
    ms = f"{2000 * opts.delay:.0f} ms"
    for n in range(opts.repeat):  # interleaved, so that a burst of load elsewhere hits every kind of run
        if n:
            rows.append(
                ("local -> local", outputs, run([*local, str(work / f"local-{n}")], base, work), None, dict(CPU))
            )
        for label, endpoint, dest in (("S3 -> S3, direct", server.endpoint, "d"), (f"S3 -> S3, {ms}", proxy.url, "s")):
            env = {**base, **server.env(AWS_ENDPOINT_URL=endpoint)}
            first = len(proxy.exchanges)
            wall = run([*common, *source, "--dest", f"s3://{BUCKET}/{dest}{n}/"], env, work)
            rows.append((label, outputs, wall, digests_s3(client, f"{dest}{n}/") == expected, dict(CPU)))
            if endpoint == proxy.url:
                alone = serial_round_trips(proxy.exchanges[first:])
                books = [e for e in alone if not e.line.split(" ")[1].lower().endswith(tuple(IMAGE_EXTENSIONS))]
                WAITS.append(f"{len(proxy.exchanges) - first} requests, {len(alone)} alone ({len(books)} not images)")
    if not opts.skip_ingestion:
        rows += ingestion(opts, work, base, common, expected)
    last = run([*local, str(work / "local-again")], base, work)
    rows.append(("local -> local (last)", outputs, last, digests_local(work / "local-again") == expected, dict(CPU)))
    print(f"\n{outputs} outputs a run; S3 -> S3 through the proxy: {'; '.join(WAITS)}")
    print("(alone: made while no other request was in flight, a round trip waited for; not images: listings, the")
    print(" manifest, its parts, the report, deletes; image reads and writes alone mean rendering was the wait)")
    report(rows, min(r[2] for r in rows if r[0].startswith("local")), images)
    if opts.repeat > 1:
        medians(rows)


def medians(rows: list[Row]) -> None:
    """The median wall and block CPU of each kind of run, and their ratios to local's (robust to a busy machine)."""
    kinds: dict[str, list[Row]] = {}
    for row in rows:
        kinds.setdefault(row[0].partition(" (")[0], []).append(row)
    wall = {k: statistics.median(r[2] for r in v) for k, v in kinds.items()}
    cpu = {k: statistics.median(r[4]["block"] for r in v) for k, v in kinds.items()}
    local, direct = "local -> local", "S3 -> S3, direct"
    print(f"\nmedians of {len(kinds[local])} runs each: wall s (vs local wall, vs direct wall), block CPU s (vs local)")
    for kind in kinds:
        ratios = f"{wall[local] / wall[kind]:5.2f}x {wall[direct] / wall[kind]:5.2f}x"
        print(f"{kind:<26} {wall[kind]:7.2f} s {ratios}  {cpu[kind]:5.1f} {cpu[kind] / cpu[local]:5.2f}x")


def ingestion(
    opts: argparse.Namespace,
    work: Path,
    base: dict[str, str],
    common: list[str],
    expected: dict[str, str],
) -> list[Row]:
    """--dest ei through the proxy: every output stored once, with the local run's bytes (all to training,
    so that the job is the local one; the default hold-out would send some originals to testing uncopied)."""
    env = {**base, "EI_PROJECT_API_KEY": KEY}
    images = [v for k, v in expected.items() if not k.endswith((".jsonl", ".json", ".labels"))]
    rows: list[Row] = []
    for label, delay in (("--dest ei, direct", 0.0), (f"--dest ei, {2000 * opts.delay:.0f} ms", opts.delay)):
        with IngestionServer(KEY) as service:
            port = int(service.url.rpartition(":")[2])
            with LatencyProxy(port, delay) as proxy:
                out = work / f"ei-{delay}"
                args = [*common, "--in-directory", str(opts.data), "--out-directory", str(out)]
                ei = ["--dest", "ei", "--ingestion-url", proxy.url, "--upload-category", "training"]  # no hold-out
                wall = run([*args, *ei], env, work)
            stored = sorted(s.sha256 for s in service.stored)
        landed = json.loads((out / "report.json").read_text())["upload"]
        same = stored == sorted(set(images)) and landed["failed"] == 0  # duplicates are refused as EI does
        rows.append((label, len(images), wall, same, dict(CPU)))
    return rows


if __name__ == "__main__":
    main()
