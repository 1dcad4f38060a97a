"""What another run writes to the same S3 prefix after this run's background listing was taken (hostile review of
the round-trip work: the listing is a snapshot from the start of the run, the finish must not act on it alone)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from augment.books.outdir import write_box_labels
from augment.plan.selection import Shard
from augment.sinks.s3 import S3Sink
from augment.storage.s3_url import parse_s3_url

pytestmark = pytest.mark.xdist_group("s3")

BUCKET = "edge-snapshot"
_BOX = [{"label": "cat", "x": 1, "y": 2, "width": 3, "height": 4}]


@pytest.fixture(scope="module")
def bucket(s3server) -> str:
    s3server.client().create_bucket(Bucket=BUCKET)
    return BUCKET


def _line(output: str) -> str:
    return json.dumps({"output": output, "boxes": _BOX})


def test_labels_files_hold_a_shard_that_finished_after_the_listing(s3server, bucket, monkeypatch):
    """Shard 0 lists the destination as it starts (``prefetch``); shard 1 finishes meanwhile, its manifest and
    labels file stored; shard 0, last to finish, writes the union: shard 1's boxes must be in it."""
    for name, value in s3server.env().items():
        monkeypatch.setenv(name, value)
    url = parse_s3_url(f"s3://{bucket}/late-shard/")
    first = S3Sink(url)
    first.prefetch()
    assert first.manifests("") == []  # the listing is taken: an empty destination
    second = S3Sink(url)
    header = json.dumps({"type": "run", "fingerprint": "f"})
    second.write_lines("manifest.shard-1-of-2.jsonl", [header, _line("cat/b.png")])
    write_box_labels(second, [_line("cat/b.png")], Shard(1, 2))
    write_box_labels(first, [_line("cat/a.png")], Shard(0, 2))
    labels = json.loads(S3Sink(url).read_text("cat/bounding_boxes.labels") or "{}")
    assert sorted(labels["boundingBoxes"]) == ["a.png", "b.png"]


@pytest.mark.parametrize("name", ["manifest.jsonl", "manifest.shard-0-of-2.jsonl"])
def test_another_run_that_starts_writing_after_the_listing_is_refused(s3server, bucket, tmp_path, name):
    """Run A lists its destination at once, then its source (1,001 objects: a second page, 2 s away); another
    run of other settings puts its manifest header there meanwhile. A must still refuse to write beside it
    (exit 1, one line), as when that header was there before A started; before, A answered "no manifest"
    from its snapshot and wrote over that header and beside its files."""
    from tests.support.blockrun import ROOT, ei_env
    from tests.support.latency_proxy import LatencyProxy
    from tests.test_stop_phases import seeded

    client = s3server.client()
    source = seeded(s3server, tmp_path, f"late-{name.replace('.', '-')}")
    source_bucket = source.split("/")[2]
    with ThreadPoolExecutor(24) as pool:  # a second page of source listing
        list(
            pool.map(lambda n: client.put_object(Bucket=source_bucket, Key=f"raw/zz/{n:04}.txt", Body=b""), range(1001))
        )
    dest = f"late-{name}/"
    foreign = json.dumps({"type": "run", "fingerprint": "another-run"}) + "\n"
    with LatencyProxy(s3server.ports["s3.port"], delay=1.0) as far:
        env = ei_env(s3server.env(AWS_ENDPOINT_URL=far.url))
        args = ["--source", source, "--dest", f"s3://{bucket}/{dest}", "--copies", "1", "--workers", "1"]
        proc = subprocess.Popen(
            [sys.executable, "-u", str(ROOT / "transform.py"), *args],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 60
        while not any(f"prefix={dest.rstrip('/')}" in e.line and e.end > e.start for e in far.exchanges):
            assert proc.poll() is None and time.monotonic() < deadline, "the destination was never listed"
            time.sleep(0.02)
        client.put_object(Bucket=bucket, Key=dest + name, Body=foreign.encode())  # the source's 2nd page is 2 s off
        output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1, output
    assert "another run" in output or "another recipe" in output, output
    assert "Traceback" not in output
    objects = client.list_objects_v2(Bucket=bucket, Prefix=dest).get("Contents", [])
    assert [o["Key"] for o in objects] == [dest + name]
    assert client.get_object(Bucket=bucket, Key=dest + name)["Body"].read() == foreign.encode()


def test_a_refused_header_writes_nothing(s3server, bucket, tmp_path):
    """Credentials that may list and read the destination, not write it: the manifest header, now put in the
    background while the sources are read, is refused (403); the run stops in one line, exit 1, nothing written
    (no output went up before the header, none after its refusal)."""
    from tests.support.blockrun import ei_env, run_block
    from tests.support.s3server import READER_KEY
    from tests.test_stop_phases import seeded

    source = seeded(s3server, tmp_path, "refused-header")
    env = ei_env(s3server.env(AWS_ACCESS_KEY_ID=READER_KEY))
    args = ["--source", source, "--dest", f"s3://{bucket}/refused/", "--copies", "1"]
    result = run_block(args, workdir=tmp_path, env=env)
    assert result.returncode == 1, result.output
    errors = [line for line in result.stdout.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and "manifest.jsonl" in errors[0], result.output
    assert "Traceback" not in result.output and READER_KEY not in result.output
    assert not s3server.client().list_objects_v2(Bucket=bucket, Prefix="refused/").get("Contents")


def test_a_refused_part_delete_fails_the_run_before_any_report(s3server, bucket, tmp_path, monkeypatch):
    """The journal parts (of a run that resumed a journal with a part) are deleted in the background: when the
    store refuses (a role without s3:DeleteObject; SeaweedFS cannot refuse a delete alone, so the client's
    answer stands in for it), the run fails with one line and no report.json says it went well (hostile
    review)."""
    from augment.cli import parse
    from augment.config import build_config
    from augment.errors import BlockError
    from augment.run.runner import run
    from augment.storage.s3_client import S3Client
    from tests.conftest import gradient
    from tests.test_s3_kill_phases import half_recorded

    src = tmp_path / "in" / "cat"
    src.mkdir(parents=True)
    for i in range(3):
        gradient(seed=i).save(src / f"{i}.png")
    env = dict(s3server.env())
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    args, _ = parse(["--in-directory", str(tmp_path / "in"), "--dest", f"s3://{bucket}/refused/", "--copies", "1"])
    assert run(build_config(args, env), print) == 0  # a journal with a part to delete: a run stopped midway's
    half_recorded(s3server.client(), bucket, "refused/")
    refusal = {"Key": "", "Code": "AccessDenied", "Message": "Access Denied"}
    monkeypatch.setattr(S3Client, "delete", lambda self, bucket, keys: [{**refusal, "Key": k} for k in keys])
    lines: list[str] = []
    with pytest.raises(BlockError) as failed:
        run(build_config(args, env), lines.append)
    assert failed.value.exit_code == 1 and "s3:DeleteObject" in str(failed.value)
    keys = [o["Key"] for o in s3server.client().list_objects_v2(Bucket=bucket, Prefix="refused/").get("Contents", [])]
    assert "refused/manifest.jsonl" in keys and "refused/report.json" not in keys
