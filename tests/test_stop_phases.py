"""SIGTERM in every phase of a run, with real processes and real signals: listing a slow bucket, rendering,
drawing the preview, uploading (tests/test_ingestion_hostile.py). Each run must exit 143 (128 + SIGTERM),
leave no partial outputs (no temp files; on disk exactly what the manifest records), and print no traceback.
The seconds from the signal to the exit are printed (run with ``-s``; Kubernetes allows 30, the README
promises 5), never asserted: ``sigterm_when``'s guard only stops a hang from stalling the suite."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from augment.demo import write_sample_set
from tests.support.blockrun import ROOT, ei_env, sigterm_when
from tests.support.latency_proxy import LatencyProxy
from tests.support.s3server import SeaweedServer

pytestmark = pytest.mark.xdist_group("s3")  # shares the session's SeaweedFS with test_s3.py


def seeded(s3server: SeaweedServer, tmp_path: Path, bucket: str, per_class: int = 8) -> str:
    """The demo set (3 classes x ``per_class`` images) under s3://bucket/raw/; the source URL."""
    local = tmp_path / "seed"
    write_sample_set(local, per_class=per_class)
    client = s3server.client()
    client.create_bucket(Bucket=bucket)
    for path in sorted(local.rglob("*.png")):
        client.put_object(Bucket=bucket, Key=f"raw/{path.relative_to(local).as_posix()}", Body=path.read_bytes())
    return f"s3://{bucket}/raw/"


def assert_no_partial_outputs(out: Path) -> None:
    assert not list(out.rglob(".tmp*")), list(out.rglob(".tmp*"))
    images = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png") if p.name != "preview.png")
    manifest = out / "manifest.jsonl"
    recorded = [json.loads(x)["output"] for x in manifest.read_text().splitlines()[1:]] if manifest.exists() else []
    assert images == sorted(recorded)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_while_listing_a_slow_bucket(s3server: SeaweedServer, tmp_path: Path, signum: int, code: int):
    """SIGTERM (Kubernetes) or SIGINT (Ctrl-C) in the middle of a listing request: no traceback, nothing written."""
    source = seeded(s3server, tmp_path, f"stop-listing-{code}")
    with LatencyProxy(s3server.ports["s3.port"], delay=3.0) as far:  # a listing page takes 6 s
        out = tmp_path / "out"
        args = ["--source", source, "--out-directory", str(out), "--copies", "1", "--workers", "1"]
        env = ei_env(s3server.env(AWS_ENDPOINT_URL=far.url))
        started = lambda: far.connections > 0 and time.sleep(0.3) is None  # noqa: E731 - the request is in flight
        stopped, seconds = sigterm_when(args, workdir=tmp_path, env=env, ready=started, guard=60, signum=signum)
    name = signal.Signals(signum).name
    print(f"\n{name} while listing (a 6 s round trip): exited in {seconds:.1f} s")
    assert stopped.returncode == code, stopped.output
    assert f"interrupted ({name})" in stopped.stdout and "Traceback" not in stopped.output
    assert not out.exists() or not [p for p in out.rglob("*") if p.is_file() and not p.name.startswith(".")]
    assert_no_partial_outputs(out)


def test_sigterm_while_waiting_for_the_destination_listing(s3server: SeaweedServer, tmp_path: Path):
    """An S3 destination is listed in the background while the source is: the source's one page is in, the
    destination's second page (of 1,001 objects) is 2 s away when SIGTERM comes (sent once that page is asked
    for: an event, whatever the delay). Exit 143 at once, in one line, nothing written."""
    source = seeded(s3server, tmp_path, "stop-dest-listing")
    client = s3server.client()
    with ThreadPoolExecutor(24) as pool:  # two listing pages
        list(
            pool.map(
                lambda n: client.put_object(Bucket="stop-dest-listing", Key=f"out/old/{n:04}.txt", Body=b""),
                range(1001),
            )
        )
    with LatencyProxy(s3server.ports["s3.port"], delay=1.0) as far:
        args = ["--source", source, "--dest", "s3://stop-dest-listing/out/", "--copies", "1", "--workers", "1"]
        env = ei_env(s3server.env(AWS_ENDPOINT_URL=far.url))

        def waiting() -> bool:
            pages = [e for e in far.exchanges if "list-type=2" in e.line]
            source_done = any("prefix=raw" in e.line and e.end > e.start for e in pages)
            return source_done and any("continuation-token" in e.line for e in pages)

        stopped, seconds = sigterm_when(args, workdir=tmp_path, env=env, ready=waiting, guard=60)
    print(f"\nSIGTERM while waiting for the destination's listing (2 s a page): exited in {seconds:.1f} s")
    assert stopped.returncode == 143, stopped.output
    assert "interrupted (SIGTERM)" in stopped.stdout and "Traceback" not in stopped.output
    written = client.list_objects_v2(Bucket="stop-dest-listing", Prefix="out/", MaxKeys=1100).get("Contents", [])
    assert len(written) == 1001  # only what was there


def test_sigterm_while_drawing_the_preview(s3server: SeaweedServer, tmp_path: Path):
    """The preview reads its originals from a bucket 0.6 s a round trip away: the signal lands while it draws.
    The outputs and manifest are complete; the report says interrupted; no preview, half or whole."""
    source = seeded(s3server, tmp_path, "stop-preview")
    with LatencyProxy(s3server.ports["s3.port"], delay=0.3) as far:
        out = tmp_path / "out"
        args = ["--source", source, "--out-directory", str(out), "--copies", "1", "--preview", "1"]
        env = ei_env(s3server.env(AWS_ENDPOINT_URL=far.url))
        drawing = lambda x: x.startswith("preview: drawing")  # noqa: E731
        stopped, seconds = sigterm_when(args, workdir=tmp_path, env=env, line=drawing, guard=90)
    print(f"\nSIGTERM while drawing the preview: exited in {seconds:.1f} s")
    assert stopped.returncode == 143, stopped.output
    assert "interrupted (SIGTERM) during the preview" in stopped.stdout and "Traceback" not in stopped.output
    assert not (out / "preview.png").exists()
    assert_no_partial_outputs(out)
    report = json.loads((out / "report.json").read_text())
    assert report["interrupted"] == "SIGTERM" and report["totals"]["written"] == 24 * 2


def stall_after_listing(proxy: LatencyProxy, seconds: float) -> tuple[Callable[[str], bool], Callable[[], bool]]:
    """(a line watcher that makes ``proxy`` ``seconds`` slow each way once the run has listed and starts to
    render, a check that this happened over 1 s ago)."""
    since: list[float] = []

    def line(text: str) -> bool:
        if text.startswith("edge-augment ") and not since:
            proxy.delay = seconds
            since.append(time.monotonic())
        return False

    return line, lambda: bool(since) and time.monotonic() - since[0] > 1.0


@pytest.mark.parametrize("delay", [1.0, 20.0])
def test_sigterm_while_rendering_from_a_slow_or_stalled_bucket(s3server: SeaweedServer, tmp_path: Path, delay: float):
    """1 s into rendering, with every S3 read taking 2 x ``delay`` s: the reads under way are cut, not retried;
    what was rendered is recorded."""
    source = seeded(s3server, tmp_path, f"stop-rendering-{int(delay)}")
    with LatencyProxy(s3server.ports["s3.port"], delay=0.01) as far:
        out = tmp_path / "out"
        args = ["--source", source, "--out-directory", str(out), "--copies", "4", "--workers", "2"]
        env = ei_env(s3server.env(AWS_ENDPOINT_URL=far.url))
        line, rendering = stall_after_listing(far, delay)
        stopped, seconds = sigterm_when(args, workdir=tmp_path, env=env, line=line, ready=rendering, guard=120)
    print(f"\nSIGTERM while rendering (S3 reads {2 * delay:g} s a round trip): exited in {seconds:.1f} s")
    assert stopped.returncode == 143, stopped.output
    assert "interrupted (SIGTERM)" in stopped.stdout and "Traceback" not in stopped.output
    assert_no_partial_outputs(out)
    assert json.loads((out / "report.json").read_text())["interrupted"] == "SIGTERM"


def test_an_s3_request_has_a_total_time_limit(s3server: SeaweedServer, tmp_path: Path):
    """EDGE_AUGMENT_S3_TIMEOUT=2 against reads that stall for 40 s: each try is cut at 2 s; the run stops
    naming the object instead of waiting 2 x 40 s a read (or for ever, were the bytes trickled)."""
    source = seeded(s3server, tmp_path, "limit-stalled")
    with LatencyProxy(s3server.ports["s3.port"], delay=0.01) as far:
        out = tmp_path / "out"
        args = ["--source", source, "--out-directory", str(out), "--copies", "1", "--workers", "1"]
        env = ei_env(s3server.env(AWS_ENDPOINT_URL=far.url, EDGE_AUGMENT_S3_TIMEOUT="2", AWS_MAX_ATTEMPTS="2"))
        line, _ = stall_after_listing(far, 20.0)
        proc = subprocess.Popen(
            [sys.executable, "-u", str(ROOT / "transform.py"), *args],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert proc.stdout is not None
        lines = [text for text in proc.stdout if not line(text)]
        code = proc.wait(timeout=120)
    output = "".join(lines)
    assert code == 1, output
    assert "cannot read s3://limit-stalled/raw/" in output and "Traceback" not in output
    assert_no_partial_outputs(out)


def test_the_s3_limits_find_their_way_into_botocore():
    """The limits hook into botocore's pool manager (no public hook exists): if an upgrade moves it, this fails
    instead of the limits silently going away."""
    from augment.storage import s3_limits
    from tests.support.s3server import s3_client

    client = s3_client("http://127.0.0.1:9")
    assert s3_limits.install(client)
    manager = client._endpoint.http_session._manager
    assert all(
        cls.__name__.endswith("Pool") and hasattr(cls, "_get_conn") for cls in manager.pool_classes_by_scheme.values()
    )
    assert {c.__qualname__.split(".")[0] for c in manager.pool_classes_by_scheme.values()} == {"_tracked_classes"}
