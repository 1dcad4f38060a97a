"""Ingestion answers are matched only on what EI documents: HTTP 200 = stored, and the files of a request
are its ``data`` parts in order (the ``bounding_boxes.labels`` part last). Every answer shape the loopback
service gives (EI's CLI shape, one with extra fields, the documented text/plain one) lands every file once,
one file a request (the default) and batched, with per-file failures named."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from augment.sinks.ingestion_answers import FAILED, LANDED, UNCONFIRMED, answer_results
from tests.support.boxes_data import detection_folder
from tests.support.ingestion_server import ANSWERS, IngestionServer
from tests.test_ingestion import KEY, manifest_lines, upload

OK, BAD, DUP = {"success": True}, {"success": False, "error": "invalid image"}, {"success": False, "error": "dup"}


def test_answer_results_rely_on_part_order_and_explicit_success_only():
    landed, unsure = (LANDED, "", None), UNCONFIRMED
    two, one = ["a.png", "b.png"], ["a.png"]

    def results(names, labels, body, ctype="application/json"):
        return answer_results(names, labels, body if isinstance(body, str) else json.dumps(body), ctype)

    # the documented text/plain answer names its files; a file it does not name is not taken as stored
    assert results(two, False, "Stored a.png\nStored b.png", "text/plain; charset=utf-8") == [landed, landed]
    assert [r[0] for r in results(two, False, "Stored a.png", "text/plain")] == [LANDED, unsure]
    assert results(one, False, "Stored xa.png.bak", "text/plain")[0][0] == unsure  # inside another name
    # EI's JSON: per-file success, matched by position; labels part listed last or left out; extras ignored
    assert results(one, False, {"success": False, "error": "nope"}) == [(FAILED, "nope", None)]
    assert results(two, False, {"success": False, "error": "nope"}) is None  # which one? ask each
    cli = {"success": False, "files": [OK, BAD, OK]}
    assert results(two, True, cli) == [landed, (FAILED, "invalid image", None)]
    named = {"files": [OK | {"sampleId": 7, "fileName": "zzz"}, DUP | {"fileName": "a.png"}]}
    assert results(two, True, named)[0] == (LANDED, "", 7)
    assert results(two, True, named)[1][0] == unsure  # it names a.png in b.png's place: b.png's result unknown
    assert results(two, False, {"files": [OK, OK, OK]}) is None  # a count that does not fit
    assert results(one, False, {"files": [OK, OK]}) == [landed]
    broken_labels = {"files": [OK, {"success": False, "error": "bad labels"}]}
    assert results(one, True, broken_labels) == [(FAILED, "bounding_boxes.labels: bad labels", None)]
    assert results(two, True, {"files": [OK, OK, BAD]}) is None
    # anything that does not say "stored" for a file leaves it unconfirmed (sent again, never booked)
    assert [r[0] for r in results(two, False, {"files": ["junk", OK]})] == [unsure, LANDED]
    assert [r[0] for r in results(two, False, {"files": [{"success": "yes"}, OK]})] == [unsure, LANDED]
    for body, ctype in [
        ({"success": True}, "application/json"),  # no per-file result
        ({"files": []}, "application/json"),
        ({"ok": True}, "application/json"),
        ([True], "application/json"),
        ('{"success": true, "files": [{"succ', "application/json"),  # truncated
        ("", "application/json"),
        ("", "text/plain"),
        ("<html><body>a.png b.png</body></html>", "text/html"),  # names the files, but a web page
        ("a.png b.png", ""),  # untyped
    ]:
        assert [r[0] for r in results(two, False, body, ctype)] == [unsure, unsure], body


@pytest.mark.parametrize("batch", ["1", "5"])
@pytest.mark.parametrize("shape", ANSWERS)
def test_every_answer_shape_lands_every_file_once_with_failures_named(tmp_path: Path, shape: str, batch: str):
    src = detection_folder(tmp_path / "in", 4)
    out = tmp_path / "stage"
    with IngestionServer(KEY, answer=shape, reject=".aug01.") as server:
        args = ["--test-fraction", "0", "--batch-size", batch]
        result = upload(server, src, args, tmp_path / "w", out)
        assert result.returncode == 1, result.output  # the refused files fail the run
        lines = manifest_lines(out)
        refused = {Path(line["output"]).name for line in lines if ".aug01." in line["output"]}
        stored = Counter(s.name for s in server.stored)
        assert refused and set(stored) == {Path(line["output"]).name for line in lines} - refused
        assert set(stored.values()) == {1}
        boxes = {Path(line["output"]).name: line["boxes"] for line in lines}
        assert all(s.boxes == boxes[s.name] for s in server.stored)  # annotations attached, per file
        up = json.loads((out / "report.json").read_text())["upload"]
        assert up["failed"] == len(refused) and up["landed"] + up["duplicates"] == len(stored)
        assert {f["output"].rsplit("/", 1)[-1] for f in up["failures"]} == refused
        assert all(f["error"].endswith("Failed to process file: invalid image") for f in up["failures"])
        if batch == "1":
            assert up["landed"] == len(stored) and up["requests"] == len(lines)
        # A rerun sends only the refused files again.
        before = len(server.seen)
        again = upload(server, src, args, tmp_path / "w2", out)
        # (a batch the text answer refuses is sent again file by file: at most one more request each)
        assert again.returncode == 1 and 1 <= len(server.seen) - before <= 2 * len(refused)
        assert Counter(s.name for s in server.stored) == stored


def test_the_service_enforces_eis_documented_limits():
    """At most 1000 files a request (docs); more is a 400, and nothing is stored."""
    import requests

    with IngestionServer(KEY) as server:
        parts = [("data", (f"f{i}.png", b"x", "image/png")) for i in range(1001)]
        answer = requests.post(f"{server.url}/api/training/files", headers={"x-api-key": KEY}, files=parts, timeout=30)
        assert answer.status_code == 400 and not server.stored
        answer = requests.post(
            f"{server.url}/api/training/files", headers={"x-api-key": KEY}, files=parts[:2], timeout=30
        )
        assert answer.status_code == 200 and len(server.stored) == 2
        assert [f["success"] for f in answer.json()["files"]] == [True, True]
