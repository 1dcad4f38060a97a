"""Upload throughput into an Edge Impulse project, against the loopback ingestion service of the tests.

    python bench/ingestion.py [--files 400] [--latency 0.05] [--data ../shared/data/electronic-components-png]

1. Upload phase alone: the same staged files (the workshop's PNGs, else generated ones) committed to the
   ingestion sink and sent: serial one file a request (--batch-size 1 --upload-concurrency 1), the block's
   defaults (one file a request, 20 at once, as EI's CLI uploader) and opt-in batching (50 files a request,
   4 at once). The server adds --latency to every answer.
2. The whole block (render + upload overlapped) with the defaults, against a local-folder run.
3. A 429 storm: the server answers a share of requests 429 (Retry-After: 1); files landed / duplicates /
   failures as the block reports them, and whether every file is stored exactly once.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from augment.demo import write_sample_set  # noqa: E402
from augment.sinks import OutputEntry  # noqa: E402
from augment.sinks.ingestion import DEFAULT_BATCH, DEFAULT_CONCURRENCY, IngestionSink, UploadSettings  # noqa: E402
from augment.sinks.ingestion_api import DEFAULT_RETRY_TIME, DEFAULT_TIMEOUT  # noqa: E402
from augment.sinks.local import LocalSink  # noqa: E402
from tests.support.ingestion_server import IngestionServer  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "electronic-components-png"
KEY = "bench-key-not-real"


def stage(data: Path, files: int, folder: Path) -> list[OutputEntry]:
    """Up to ``files`` images copied into ``folder`` (label/name); the manifest entry of each."""
    import hashlib

    images = sorted(p for p in data.rglob("*.png"))[:files]
    entries = []
    for path in images:
        name = f"{path.parent.name}/{path.name}"
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, folder / name)
        body = path.read_bytes()
        sha = hashlib.sha256(body).hexdigest()
        entries.append(OutputEntry(name, name, path.parent.name, "orig", 42, (), sha, len(body), sha))
    return entries


def _send(entries: list[OutputEntry], folder: Path, url: str, batch: int, threads: int, seed: int) -> dict:
    """Upload every staged entry through a fresh IngestionSink; its summary."""
    settings = UploadSettings(
        url, KEY, "training", batch, threads, DEFAULT_TIMEOUT, DEFAULT_RETRY_TIME, 0.5, "bench", seed
    )
    (folder / "uploads.jsonl").unlink(missing_ok=True)
    sink = IngestionSink(settings, LocalSink(folder), log=lambda line: None)
    for entry in entries:
        sink.commit(entry)
    return sink.close()


def upload_phase(entries: list[OutputEntry], folder: Path, latency: float, batch: int, threads: int) -> dict:
    with IngestionServer(KEY, latency=latency) as server:
        start = time.perf_counter()
        summary = _send(entries, folder, server.url, batch, threads, seed=42)
        seconds = time.perf_counter() - start
        assert len(server.stored) == len(entries) == summary["landed"], (len(server.stored), summary)
        return {"seconds": seconds, "files_per_s": len(entries) / seconds, "requests": len(server.seen)}


def client_cpu(entries: list[OutputEntry], folder: Path, latency: float, batch: int, threads: int) -> float:
    """Milliseconds of this process's CPU per file sent, with the service in another process (as on EI)."""
    code = (
        "import sys, time; sys.path.insert(0, sys.argv[1])\n"
        "from tests.support.ingestion_server import IngestionServer\n"
        "with IngestionServer('" + KEY + "', latency=float(sys.argv[2])) as s:\n"
        "    print(s.url, flush=True); time.sleep(3600)"
    )
    server = subprocess.Popen([sys.executable, "-c", code, str(ROOT), str(latency)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        start = time.process_time()
        summary = _send(entries, folder, url, batch, threads, seed=batch)
        assert summary["failed"] == 0 and summary["landed"] + summary["duplicates"] == len(entries), summary
        return (time.process_time() - start) * 1000 / len(entries)
    finally:
        server.kill()
        server.wait()


def block(args: list[str], env: dict[str, str], workdir: Path) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-u", str(ROOT / "transform.py"), *args],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    return time.perf_counter() - start, proc


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=400)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--storm", type=float, default=0.4, help="share of requests answered 429")
    opts = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        data = opts.data
        if not data.is_dir():
            data = tmp_path / "generated"
            write_sample_set(data, per_class=max(1, opts.files // 3))
        staged = tmp_path / "staged"
        entries = stage(data, opts.files, staged)
        print(f"{len(entries)} files ({sum(e.size for e in entries) / len(entries) / 1024:.1f}"
              f" KiB each) from {data}; server latency {opts.latency * 1000:.0f} ms a request")  # fmt: skip

        serial = upload_phase(entries, staged, opts.latency, 1, 1)
        default = upload_phase(entries, staged, opts.latency, DEFAULT_BATCH, DEFAULT_CONCURRENCY)
        batched = upload_phase(entries, staged, opts.latency, 50, 4)
        print("\n1. upload phase alone")
        runs = (
            ("serial, 1 file a request", serial),
            (f"defaults, {DEFAULT_BATCH} a request x {DEFAULT_CONCURRENCY}", default),
            ("batched, 50 a request x 4", batched),
        )
        for name, r in runs:
            print(f"   {name:<28} {r['seconds']:7.2f} s  {r['files_per_s']:8.1f} files/s  {r['requests']:5} requests")
        cpu = {
            b: client_cpu(entries, staged, opts.latency, b, t)
            for b, t in ((DEFAULT_BATCH, DEFAULT_CONCURRENCY), (50, 4))
        }
        print(f"   the block's own CPU per file (service in another process): defaults {cpu[DEFAULT_BATCH]:.2f} ms,"
              f" batched {cpu[50]:.2f} ms")  # fmt: skip
        print(f"   ratio defaults / serial: {default['files_per_s'] / serial['files_per_s']:.1f}x, "
              f"batched / defaults: {batched['files_per_s'] / default['files_per_s']:.1f}x")  # fmt: skip

        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "EI_PROJECT_API_KEY": KEY}
        src = tmp_path / "src"
        for name in (e.output for e in entries):
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(staged / name, src / name)
        common = ["--in-directory", str(src), "--copies", "4", "--seed", "42", "--workers", "0"]
        local_s, local = block([*common, "--out-directory", str(tmp_path / "local")], env, tmp_path)
        assert local.returncode == 0, local.stdout
        with IngestionServer(KEY, latency=opts.latency) as server:
            up = [*common, "--out-directory", str(tmp_path / "up"), "--dest", "ei", "--ingestion-url", server.url]
            ei_s, ei = block(up, env, tmp_path)
            assert ei.returncode == 0, ei.stdout
            outputs = json.loads((tmp_path / "up" / "report.json").read_text())["upload"]["landed"]
        with IngestionServer(KEY, latency=opts.latency) as server:
            up = [*common, "--out-directory", str(tmp_path / "up50"), "--dest", "ei", "--ingestion-url", server.url]
            batch_s, batch = block([*up, "--batch-size", "50", "--upload-concurrency", "4"], env, tmp_path)
            assert batch.returncode == 0, batch.stdout
        print("\n2. whole block, --copies 4 (render + upload overlapped)")
        print(f"   local folder              {local_s:7.2f} s  {outputs / local_s:8.1f} outputs/s")
        print(
            f"   --dest ei (defaults)      {ei_s:7.2f} s  {outputs / ei_s:8.1f} outputs/s  ({ei_s / local_s:.2f}x time)"
        )
        print(
            f"   --dest ei, 50 a request   {batch_s:7.2f} s  {outputs / batch_s:8.1f} outputs/s"
            f"  ({batch_s / local_s:.2f}x time)"
        )

        with IngestionServer(KEY, latency=opts.latency, rate_limit=opts.storm, rate_limit_after="1") as server:
            args = [*common, "--out-directory", str(tmp_path / "storm"), "--dest", "ei", "--ingestion-url", server.url]
            storm_s, storm = block(args, env, tmp_path)
            report = json.loads((tmp_path / "storm" / "report.json").read_text())["upload"]
            once = Counter((s.category, s.name, s.sha256) for s in server.stored)
            statuses = Counter(s.status for s in server.seen)
        print(f"\n3. 429 storm: {opts.storm:.0%} of requests answered 429, Retry-After: 1")
        print(f"   exit {storm.returncode}, {storm_s:.2f} s; requests {dict(sorted(statuses.items()))}")
        print(f"   landed {report['landed']}, duplicates {report['duplicates']}, failed {report['failed']}, "
              f"not sent {report['not_sent']}; retries {report['retries']}")  # fmt: skip
        print(f"   stored on the server: {len(once)} distinct, each exactly once: {set(once.values()) == {1}}")


if __name__ == "__main__":
    main()
