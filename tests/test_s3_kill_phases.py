"""SIGKILL and SIGTERM at each bookkeeping phase of an S3 -> S3 run made concurrent by the round-trip work (the
manifest header in flight, the whole manifest in flight; for a run resuming a journal with a part: the whole
manifest and the journal's last part in flight, the parts' deletes in flight), then a rerun: it finishes, every
output recorded is stored, nothing is left over, and the bytes are those of a run never stopped. The signal goes
when the request reaches the latency proxy (0.4 s each way), so the store may still receive it after the process is
gone, as after a real crash."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.support.blockrun import ei_env, run_block, sigterm_when
from tests.support.latency_proxy import LatencyProxy
from tests.support.s3server import SeaweedServer
from tests.test_stop_phases import seeded

pytestmark = pytest.mark.xdist_group("s3")

BUCKET = "edge-kill-phases"
ARGS = ["--copies", "1", "--workers", "1"]


def _in_flight(far: LatencyProxy, test, nth: int = 1):
    def ready() -> bool:
        return len([e for e in far.exchanges if test(e)]) >= nth

    return ready


def _manifest_put(e) -> bool:
    return e.method == "PUT" and e.line.split(" ")[1].split("?")[0].endswith("/manifest.jsonl")


def _part_put(e) -> bool:
    return e.method == "PUT" and ".part-" in e.line


def _delete(e) -> bool:
    return e.method == "POST" and "?delete" in e.line


PHASES = {  # (the request, its n-th, whether the run resumes a journal with a part)
    "header": (_manifest_put, 1, False),
    "final manifest": (_manifest_put, 2, False),
    "resumed final manifest": (_manifest_put, 1, True),
    "last part": (_part_put, 1, True),  # a fresh run shorter than a checkpoint stores no part, deletes none
    "deletes": (_delete, 1, True),
}


def half_recorded(client, bucket: str, prefix: str) -> None:
    """Turn a finished run's prefix into one a run stopped midway left: every output stored, the manifest's
    header alone and a journal part recording the first half of them."""
    lines = client.get_object(Bucket=bucket, Key=prefix + "manifest.jsonl")["Body"].read().splitlines(keepends=True)
    outputs = lines[1:]
    client.put_object(Bucket=bucket, Key=prefix + "manifest.jsonl", Body=lines[0])
    client.put_object(
        Bucket=bucket, Key=prefix + "manifest.jsonl.part-000001", Body=b"".join(outputs[: len(outputs) // 2])
    )
    client.delete_object(Bucket=bucket, Key=prefix + "report.json")


def _objects(client, prefix: str) -> dict[str, bytes]:
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix, MaxKeys=1000).get("Contents", [])
    return {
        o["Key"][len(prefix) :]: client.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()
        for o in listed
        if not o["Key"].endswith("report.json")
    }


@pytest.fixture(scope="module")
def reference(s3server: SeaweedServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    tmp = tmp_path_factory.mktemp("kill-ref")
    source = seeded(s3server, tmp, BUCKET, per_class=2)  # 6 images: every phase still has its request
    done = run_block(
        ["--source", source, "--dest", f"s3://{BUCKET}/ref/", *ARGS], workdir=tmp, env=ei_env(s3server.env())
    )
    assert done.returncode == 0, done.output
    return _objects(s3server.client(), "ref/")


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["KILL", "TERM"])
@pytest.mark.parametrize("phase", list(PHASES))
def test_a_stop_at_each_bookkeeping_phase_then_a_rerun(s3server, reference, tmp_path: Path, phase: str, signum):
    source = f"s3://{BUCKET}/raw/"
    dest = f"kill-{phase.replace(' ', '-')}-{signum.name}/"
    args = ["--source", source, "--dest", f"s3://{BUCKET}/{dest}", *ARGS]
    test, nth, resumed = PHASES[phase]
    client = s3server.client()
    if resumed:
        first = run_block(args, workdir=tmp_path, env=ei_env(s3server.env()))
        assert first.returncode == 0, first.output
        half_recorded(client, BUCKET, dest)
    with LatencyProxy(s3server.ports["s3.port"], delay=0.4) as far:
        env = ei_env(s3server.env(AWS_ENDPOINT_URL=far.url))
        stopped, _ = sigterm_when(args, workdir=tmp_path, env=env, ready=_in_flight(far, test, nth), signum=signum)
    assert "Traceback" not in stopped.output, stopped.output
    after_stop = _objects(client, dest)
    manifest = after_stop.get("manifest.jsonl")
    if manifest is not None:  # every output a stopped run's manifest (and parts) record is stored
        lines = b"".join(v for k, v in sorted(after_stop.items()) if k.startswith("manifest.jsonl")).splitlines()
        recorded = {json.loads(x)["output"] for x in lines[1:] if x.strip().startswith(b"{")}
        recorded.discard(None)
        assert recorded <= set(after_stop), sorted(recorded - set(after_stop))
    rerun = run_block(args, workdir=tmp_path, env=ei_env(s3server.env()))
    assert rerun.returncode == 0, rerun.output
    assert _objects(client, dest) == reference


def test_sigterm_while_the_books_are_written_still_writes_the_report(s3server, reference, tmp_path: Path):
    """SIGTERM when the whole manifest reaches the store (0.4 s each way): every output is done, so the manifest
    and report.json are finished (the report was lost: the signal was raised while they were written) and the
    run exits 143; the destination is that of a run never stopped."""
    dest = "books-TERM/"
    args = ["--source", f"s3://{BUCKET}/raw/", "--dest", f"s3://{BUCKET}/{dest}", *ARGS]
    with LatencyProxy(s3server.ports["s3.port"], delay=0.4) as far:
        env = ei_env(s3server.env(AWS_ENDPOINT_URL=far.url))
        stopped, _ = sigterm_when(args, workdir=tmp_path, env=env, ready=_in_flight(far, _manifest_put, 2))
    assert stopped.returncode == 143, stopped.output
    assert "interrupted (SIGTERM)" in stopped.stdout and "Traceback" not in stopped.output
    client = s3server.client()
    report = json.loads(client.get_object(Bucket=BUCKET, Key=dest + "report.json")["Body"].read())
    assert report["totals"]["written"] == len(reference) - 1  # every output (the manifest aside)
    assert _objects(client, dest) == reference
