"""The S3 requests a run waits for one after another, and the order the manifest's requests keep, read from
the latency proxy's log of every request (``tests.latency_proxy``: 50 ms a round trip, so each request made
while nothing else is in flight is 50 ms of wall time). Counts and orders only: nothing here is timed.

Request A is over before B starts when B reached the proxy after A's answer left it (``A.end <= B.start``):
the client could not have sent B before it had A's answer.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from augment.sinks import SinkError
from augment.sinks.s3 import S3Sink
from augment.sources import Listing
from augment.sources.s3 import S3Source
from augment.storage.s3_url import parse_s3_url
from tests.support.fault_proxy import FaultProxy
from tests.support.latency_proxy import Exchange, serial_round_trips
from tests.support.s3server import SlowS3
from tests.test_s3 import MIXED, block, mixed_bucket, put_all
from tests.test_s3_kill_phases import half_recorded

pytestmark = pytest.mark.xdist_group("s3")

BUCKET = "edge-round-trips"
OUTPUTS = 20  # MIXED: 10 images, --copies 1 and the originals


def _path(exchange: Exchange) -> str:
    return exchange.line.split(" ")[1]


def _object(exchange: Exchange, name: str) -> bool:
    return _path(exchange).endswith("/" + name) and exchange.method in ("GET", "PUT")


def _bookkeeping(exchange: Exchange) -> bool:
    """A request that is neither a source image read nor an output write: listings, deletes, the manifest
    and its parts, the report."""
    path = _path(exchange)
    return "list-type=2" in path or "?delete" in path or "/manifest.jsonl" in path or path.endswith("/report.json")


def _run(slow_s3: SlowS3, tmp_path: Path, dest: str, *extra: str) -> list[Exchange]:
    """One S3 -> S3 run through the proxy; the requests it made, in the order they reached the proxy."""
    first = len(slow_s3.proxy.exchanges)
    result = block(slow_s3, ["--source", f"s3://{BUCKET}/raw/", "--dest", f"s3://{BUCKET}/{dest}/", *extra], tmp_path)
    assert result.returncode == 0, result.output
    return sorted(slow_s3.proxy.exchanges[first:], key=lambda e: e.start)


@pytest.fixture(scope="module")
def seeded(slow_s3: SlowS3) -> SlowS3:
    return mixed_bucket(slow_s3, BUCKET)


def test_a_run_waits_for_few_bookkeeping_round_trips(seeded: SlowS3, tmp_path: Path):
    """A fresh run: the source and destination listed at once, the header, then at the end the final
    manifest (no journal part, no deletes: the run is shorter than a checkpoint), then the report. 11 lone
    requests before the round-trip work, 6 before the final manifest went up without a part."""
    exchanges = _run(seeded, tmp_path / "w", "fresh")
    puts = [e for e in exchanges if e.method == "PUT" and _path(e).endswith(".png")]
    assert len(puts) == OUTPUTS
    lone = [e for e in serial_round_trips(exchanges) if _bookkeeping(e)]
    print(f"\n{len(exchanges)} requests, {len(lone)} bookkeeping requests alone:", *(e.line for e in lone), sep="\n")
    assert len(lone) <= 6, [e.line for e in lone]  # 5 on a quiet machine; 11, then 6 before
    listings = [e for e in exchanges if "list-type=2" in _path(e)]
    # the source's and the destination's, and the manifests' again just before the header (a run that started
    # meanwhile: tests/test_s3_snapshot.py), nothing more
    assert len(listings) == 3, [e.line for e in listings]
    assert "prefix=fresh%2Fmanifest" in _path(listings[-1])
    # Whether the first two listings overlap in time depends on the scheduler (under load the background listing
    # may start just after the source's ends): the bound on lone requests above is what the overlap buys.


def test_a_fresh_run_reads_its_first_sources_while_it_checks_the_destination(
    seeded: SlowS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """No manifest in the destination: every source will be read, so the first ones are read while the
    destination's manifests are listed again and the header goes up (two round trips the reads used to
    wait for): the reads are started before that listing; each source is still read once."""
    from augment.cli import parse
    from augment.config import build_config
    from augment.run.runner import run

    events: list[tuple[str, object]] = []
    prefetch, refresh = S3Source.prefetch, S3Sink.refresh

    def record_prefetch(self: S3Source, samples: list) -> None:
        events.append(("prefetch", len(samples)))
        prefetch(self, samples)

    def record_refresh(self: S3Sink, prefix: str) -> None:
        events.append(("refresh", prefix))
        refresh(self, prefix)

    monkeypatch.setattr(S3Source, "prefetch", record_prefetch)
    monkeypatch.setattr(S3Sink, "refresh", record_refresh)
    env = dict(seeded.env())
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    first = len(seeded.proxy.exchanges)
    args, _ = parse(["--source", f"s3://{BUCKET}/raw/", "--dest", f"s3://{BUCKET}/ahead/"])
    assert run(build_config(args, env), lambda line: None) == 0
    assert events[:2] == [("prefetch", 10), ("refresh", "manifest")], events
    reads = [_path(e) for e in seeded.proxy.exchanges[first:] if e.method == "GET" and "/raw/" in _path(e)]
    assert len(reads) == len(set(reads)) == 10


def test_a_source_read_ahead_answers_each_read_once(seeded: SlowS3, monkeypatch: pytest.MonkeyPatch):
    """``S3Source.prefetch``: one GET per sample, ``read`` answers from it (a key gone meanwhile: the same
    FileNotFoundError as a read would raise); a second read of a sample asks the store again."""
    for name, value in seeded.env().items():
        monkeypatch.setenv(name, value)
    client = seeded.direct.client()
    put_all(client, BUCKET, {f"ahead-src/cat/{i}.png": MIXED[f"capacitor/c0{i}.png"] for i in range(3)})
    source = S3Source(parse_s3_url(f"s3://{BUCKET}/ahead-src/"))
    samples = sorted(source.scan(Listing()), key=lambda sample: sample.key)
    client.delete_object(Bucket=BUCKET, Key="ahead-src/cat/2.png")
    first = len(seeded.proxy.exchanges)
    source.prefetch(samples)
    assert [source.read(sample) for sample in samples[:2]] == [MIXED["capacitor/c00.png"], MIXED["capacitor/c01.png"]]
    with pytest.raises(FileNotFoundError, match=r"cat/2\.png no longer exists"):
        source.read(samples[2])
    assert sorted(_path(e) for e in seeded.proxy.exchanges[first:]) == [
        f"/{BUCKET}/ahead-src/cat/{i}.png" for i in range(3)
    ]
    source.read(samples[0])
    assert len(seeded.proxy.exchanges) == first + 4


def test_the_manifest_requests_keep_their_order(seeded: SlowS3, tmp_path: Path):
    """What must be stored before what, whatever now goes concurrently: the header before any output; every
    output before the final manifest; the final manifest before the report. A fresh run shorter than a
    checkpoint stores no journal part and deletes none (the final manifest holds every line)."""
    exchanges = _run(seeded, tmp_path / "w", "ordered")
    header = next(e for e in exchanges if _object(e, "manifest.jsonl") and e.method == "PUT")
    final = [e for e in exchanges if _object(e, "manifest.jsonl") and e.method == "PUT"][-1]
    assert final is not header
    outputs = [e for e in exchanges if e.method == "PUT" and _path(e).endswith(".png")]
    report = next(e for e in exchanges if _object(e, "report.json") and e.method == "PUT")
    assert all(header.end <= e.start for e in outputs)
    assert all(e.end <= final.start for e in outputs)
    assert report.start >= final.end
    assert not [e for e in exchanges if ".jsonl.part-" in _path(e) or "?delete" in _path(e)]
    objects = seeded.direct.client().list_objects_v2(Bucket=BUCKET, Prefix="ordered/").get("Contents", [])
    names = sorted(o["Key"][len("ordered/") :] for o in objects)
    assert len(names) == OUTPUTS + 2 and "manifest.jsonl" in names and "report.json" in names


def test_a_resumed_journal_is_stored_whole_before_its_parts_go(seeded: SlowS3, tmp_path: Path):
    """A run continuing a journal that has a part: the final manifest and the journal's last part (the
    outputs it made now) before the parts are deleted, the deletes before the report; no part left."""
    _run(seeded, tmp_path / "w1", "resumed")
    half_recorded(seeded.direct.client(), BUCKET, "resumed/")
    exchanges = _run(seeded, tmp_path / "w2", "resumed")
    final = next(e for e in exchanges if _object(e, "manifest.jsonl") and e.method == "PUT")
    parts = [e for e in exchanges if e.method == "PUT" and ".jsonl.part-" in _path(e)]
    deletes = [e for e in exchanges if "?delete" in _path(e)]
    report = next(e for e in exchanges if _object(e, "report.json") and e.method == "PUT")
    assert parts and deletes, [e.line for e in exchanges if _bookkeeping(e)]
    assert all(d.start >= max(final.end, *(p.end for p in parts)) for d in deletes)
    assert all(report.start >= d.end for d in deletes)
    objects = seeded.direct.client().list_objects_v2(Bucket=BUCKET, Prefix="resumed/").get("Contents", [])
    names = sorted(o["Key"][len("resumed/") :] for o in objects)
    assert len(names) == OUTPUTS + 2 and "manifest.jsonl" in names and "report.json" in names  # the parts gone


def test_a_rerun_reads_its_manifest_without_listing_it_again(seeded: SlowS3, tmp_path: Path):
    """A rerun over a finished destination: one listing each side, the manifest read, nothing rewritten
    but the manifest and the report."""
    _run(seeded, tmp_path / "w1", "again")
    exchanges = _run(seeded, tmp_path / "w2", "again")
    assert len([e for e in exchanges if "list-type=2" in _path(e)]) == 3  # (the manifests' again: see above)
    assert not [e for e in exchanges if e.method == "PUT" and _path(e).endswith(".png")]
    assert not [e for e in exchanges if "/raw/" in _path(e)]  # nothing to make: no source read, none ahead
    lone = [e for e in serial_round_trips(exchanges) if _bookkeeping(e)]
    assert len(lone) <= 8, [e.line for e in lone]
    report = json.loads(seeded.direct.client().get_object(Bucket=BUCKET, Key="again/report.json")["Body"].read())
    assert report["totals"]["existing"] == OUTPUTS and report["totals"]["written"] == 0


def test_a_resumed_run_reads_its_manifest_and_parts_once(seeded: SlowS3, tmp_path: Path):
    """A run resuming a journal: its manifest and part are read once (they were read twice, once to load them
    and once more when every manifest of the destination was checked, a round trip each)."""
    _run(seeded, tmp_path / "w1", "read-once")
    half_recorded(seeded.direct.client(), BUCKET, "read-once/")
    exchanges = _run(seeded, tmp_path / "w2", "read-once")
    reads = [_path(e) for e in exchanges if e.method == "GET" and ".jsonl" in _path(e) and "list-type" not in _path(e)]
    assert sorted(reads) == [f"/{BUCKET}/read-once/manifest.jsonl", f"/{BUCKET}/read-once/manifest.jsonl.part-000001"]


def test_a_manifests_version_changes_when_another_run_rewrites_it(seeded: SlowS3, monkeypatch: pytest.MonkeyPatch):
    """What lets a resumed run skip reading its manifest again: the version it read (listing entries of the
    manifest and its parts) differs after a refresh once another run wrote either, and only then."""
    for name, value in seeded.env().items():
        monkeypatch.setenv(name, value)
    client = seeded.direct.client()
    put_all(client, BUCKET, {"versions/manifest.jsonl": b'{"fingerprint": "a"}\n'})
    sink = S3Sink(parse_s3_url(f"s3://{BUCKET}/versions/"))
    sink.prefetch()
    read = sink.version("manifest.jsonl")
    sink.refresh("manifest")
    assert read and sink.version("manifest.jsonl") == read
    put_all(client, BUCKET, {"versions/manifest.jsonl.part-000001": b'{"output": "x.png"}\n'})
    sink.refresh("manifest")
    assert sink.version("manifest.jsonl") != read
    read = sink.version("manifest.jsonl")
    put_all(client, BUCKET, {"versions/manifest.jsonl": b'{"fingerprint": "b"}\n'})
    sink.refresh("manifest")
    assert sink.version("manifest.jsonl") != read


def test_no_write_goes_before_the_header_nor_after_it_failed(seeded: SlowS3, monkeypatch: pytest.MonkeyPatch):
    """The header goes up in the background: a write made meanwhile is held until it is stored; when it
    cannot be stored, every later write and ``settle`` fail with its one-line error, and nothing is written."""
    for name, value in seeded.env().items():
        monkeypatch.setenv(name, value)
    sink = S3Sink(parse_s3_url(f"s3://{BUCKET}/held/"))
    sink.open_journal("manifest.jsonl", '{"type": "run"}')
    sink.write_text("report.json", "{}")  # held until the header is stored
    objects = seeded.direct.client().list_objects_v2(Bucket=BUCKET, Prefix="held/")["Contents"]
    assert sorted(o["Key"] for o in objects) == ["held/manifest.jsonl", "held/report.json"]
    header, report = sorted((o for o in objects), key=lambda o: o["Key"])
    assert header["LastModified"] <= report["LastModified"]

    with FaultProxy(seeded.direct.ports["s3.port"], ["pass", "503"]) as proxy:  # the parts' listing, the header
        failing = S3Sink(parse_s3_url(f"s3://{BUCKET}/unheaded/"), endpoint=proxy.url, attempts=1)
        failing.open_journal("manifest.jsonl", '{"type": "run"}')
        for attempt in (lambda: failing.write_text("report.json", "{}"), failing.settle):
            with pytest.raises(SinkError) as error:
                attempt()
            text = str(error.value)
            assert text.startswith(f"cannot write s3://{BUCKET}/unheaded/manifest.jsonl: "), text
            assert "\n" not in text
        assert proxy.faults == ["503"]
    assert not seeded.direct.client().list_objects_v2(Bucket=BUCKET, Prefix="unheaded/").get("Contents")


def test_the_labels_files_of_a_detection_run_go_up_together(seeded: SlowS3, tmp_path: Path):
    """A detection dataset in three folders: its three bounding_boxes.labels are written at once."""
    from tests.support.boxes_data import detection_folder

    client = seeded.direct.client()
    for folder in ("a", "b", "c"):
        local = detection_folder(tmp_path / "seed" / folder, n=2)
        put_all(client, BUCKET, {f"boxes/{folder}/{p.name}": p.read_bytes() for p in local.iterdir()})
    first = len(seeded.proxy.exchanges)
    args = ["--source", f"s3://{BUCKET}/boxes/", "--dest", f"s3://{BUCKET}/boxes-out/"]
    result = block(seeded, args, tmp_path / "w")
    assert result.returncode == 0, result.output
    labels = [e for e in seeded.proxy.exchanges[first:] if e.method == "PUT" and "bounding_boxes.labels" in e.line]
    assert len(labels) == 3, [e.line for e in labels]


def test_the_labels_files_are_written_at_once_not_one_after_another(tmp_path: Path):
    """Each write of a labels file waits until all three have started: written one after another, the first
    would wait for the others forever (the barrier breaks after 20 s and the test fails); written at once,
    they meet however loaded the machine (was: a check of overlapping times at the proxy, flaky at load 33)."""
    import threading

    from augment.books.outdir import write_box_labels
    from augment.plan.selection import Shard
    from augment.sinks.local import LocalSink

    meet = threading.Barrier(3, timeout=20)

    class MeetingSink(LocalSink):
        def write_text(self, name: str, text: str) -> None:
            meet.wait()
            super().write_text(name, text)

    box = [{"label": "cat", "x": 1, "y": 2, "width": 3, "height": 4}]
    lines = [json.dumps({"output": f"{folder}/a.png", "boxes": box}) for folder in ("a", "b", "c")]
    write_box_labels(MeetingSink(tmp_path), lines, Shard())
    assert sorted(p.parent.name for p in tmp_path.rglob("bounding_boxes.labels")) == ["a", "b", "c"]


def test_another_runs_manifest_found_in_the_listing_is_refused(seeded: SlowS3, tmp_path: Path):
    """The destination's manifests come from its listing now: a shard's manifest of other settings there
    still stops a run of other settings before it writes anything (one line, exit 1)."""
    source = ["--source", f"s3://{BUCKET}/raw/", "--dest", f"s3://{BUCKET}/mixed-runs/"]
    first = block(seeded, [*source, "--shard-index", "0", "--shard-count", "2"], tmp_path / "w1")
    assert first.returncode == 0, first.output
    client = seeded.direct.client()
    before = client.list_objects_v2(Bucket=BUCKET, Prefix="mixed-runs/")["Contents"]
    assert "mixed-runs/manifest.shard-0-of-2.jsonl" in {o["Key"] for o in before}
    other = block(seeded, [*source, "--seed", "8"], tmp_path / "w2")
    assert other.returncode == 1, other.output
    assert "manifest.shard-0-of-2.jsonl of another run" in other.stdout and "Traceback" not in other.output
    after = client.list_objects_v2(Bucket=BUCKET, Prefix="mixed-runs/")["Contents"]
    assert [(o["Key"], o["ETag"]) for o in after] == [(o["Key"], o["ETag"]) for o in before]
