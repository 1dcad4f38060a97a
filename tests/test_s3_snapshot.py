"""What another run writes to the same S3 prefix after this run's background listing was taken (hostile review of
the round-trip work: the listing is a snapshot from the start of the run, the finish must not act on it alone)."""

from __future__ import annotations

import json

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
