"""S3 source and sink called from 32 threads of one process at once, as the run's I/O threads call them,
against the real SeaweedFS behind the 50 ms latency proxy (so requests really overlap): one client per
source or sink, one listing of the destination, every object whole."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest

from augment.plan.samples import Sample
from augment.sinks.s3 import S3Sink
from augment.sources.s3 import S3Source
from augment.storage.diskmap import DiskMap
from augment.storage.s3_client import S3Client
from augment.storage.s3_url import parse_s3_url
from tests.support.s3server import SlowS3
from tests.test_s3 import bucket_bytes, png8, put_all

pytestmark = pytest.mark.xdist_group("s3")

BUCKET = "edge-threads"
THREADS = 32
COUNT = 96  # 3 per thread
SEEDED_SAME, SEEDED_OTHER = 10, 3  # destination objects already there: identical / with other bytes


def test_sink_and_source_from_32_threads(slow_s3: SlowS3, monkeypatch: pytest.MonkeyPatch):
    direct = slow_s3.direct.client()
    direct.create_bucket(Bucket=BUCKET)
    source_objects = {f"src/c{i % 3}/img{i:03}.png": png8(5000 + i) for i in range(COUNT)}
    put_all(direct, BUCKET, source_objects)
    names = [key[len("src/") :] for key in source_objects]
    seeded = {n: source_objects["src/" + n] for n in names[:SEEDED_SAME]}
    seeded |= {n: png8(9000 + i) for i, n in enumerate(names[SEEDED_SAME : SEEDED_SAME + SEEDED_OTHER])}
    put_all(direct, BUCKET, {"dst/" + n: data for n, data in seeded.items()})

    for name, value in slow_s3.env().items():
        monkeypatch.setenv(name, value)
    calls: Counter[str] = Counter()  # requests, and clients made: "store <bucket>" (obstore), "bucket <bucket>"
    lock = threading.Lock()

    def counted(name: str, label: Any) -> Any:
        real = getattr(S3Client, name)

        def call(self: S3Client, *args: Any) -> Any:
            with lock:
                calls[label(*args)] += 1
            return real(self, *args)

        monkeypatch.setattr(S3Client, name, call)

    counted("pages", lambda bucket, prefix, *_: f"list {prefix}")
    counted("put", lambda *_: "put")
    counted("get", lambda *_: "get")
    counted("_make_store", lambda clients, bucket: f"store {bucket}")
    counted("_make_bucket", lambda clients, bucket: f"bucket {bucket}")
    source = S3Source(parse_s3_url(f"s3://{BUCKET}/src/"), endpoint=slow_s3.endpoint)
    sink = S3Sink(parse_s3_url(f"s3://{BUCKET}/dst/"), endpoint=slow_s3.endpoint)
    barrier = threading.Barrier(THREADS)
    sizes: dict[str, int | None] = {}
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            barrier.wait()  # all 32 start together: the first client and the listing are raced for
            for name in names[index::THREADS]:
                data = source.read(Sample(name, name.split("/")[0]))
                sink.write(name, data)
                sizes[name] = sink.size(name)
        except BaseException as e:  # noqa: BLE001  (reported by the main thread)
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors

    # One object store for the bucket (the source's and the sink's S3Client share it: same endpoint) and one
    # listing client for it, whatever the number of threads.
    assert calls[f"store {BUCKET}"] == 1 and calls[f"bucket {BUCKET}"] == 1
    assert calls["list dst/"] == 1  # the destination was listed once, not once per thread
    assert calls["get"] == COUNT and calls["put"] == COUNT - SEEDED_SAME  # identical objects are not re-sent
    assert bucket_bytes(direct, BUCKET, "dst/") == {n: source_objects["src/" + n] for n in names}
    assert sizes == {n: len(source_objects["src/" + n]) for n in names}
    assert all(sink.exists(n) for n in names) and not sink.exists("c0/missing.png")

    present = sink._present
    assert isinstance(present, DiskMap) and len(present) == COUNT
    sink.write_text("manifest.jsonl", "{}\n")
    assert sink.size("manifest.jsonl") == 3 and calls["list dst/"] == 1  # kept up to date, not re-listed
    sink.release()
    assert sink._present is None  # a later call lists again
