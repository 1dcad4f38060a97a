"""A hostile review of issue #22's fixes (ingestion answers, time limits): answers that are almost right and
Retry-After headers no clock can hold, each tried against the parser and, where a process is needed, against
the loopback ingestion service (tests/support/ingestion_server.py)."""

from __future__ import annotations

import fcntl
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from augment.sinks.ingestion_answers import FAILED, LANDED, UNCONFIRMED, answer_results
from augment.sinks.lock import LOCK_FILE
from tests.support.blockrun import ROOT, ei_env
from tests.support.ingestion_server import IngestionServer
from tests.test_ingestion import KEY, manifest_lines, upload
from tests.test_outdir import make_inputs, outputs, wait_for
from tests.test_overlap import _block, _pngs


def _results(names: list[str], body: object) -> list[str] | None:
    found = answer_results(names, False, json.dumps(body), "application/json")
    return None if found is None else [r[0] for r in found]


def test_a_request_refused_as_a_whole_lands_nothing_even_if_its_files_say_success():
    """EI's clients count ``success: false`` at the top as a failure whatever the files say (ei-contract 4.2)."""
    ok = {"success": True}
    assert _results(["a.png"], {"success": False, "error": "quota", "files": [ok]}) == [FAILED]
    assert _results(["a.png"], {"success": False, "error": "quota", "files": [ok, ok]}) == [FAILED]  # extra entry
    assert _results(["a.png", "b.png"], {"success": False, "error": "quota", "files": [ok, ok]}) == [FAILED] * 2
    # a top-level false explained by a file's own failure keeps the others' results
    bad = {"success": False, "error": "invalid image"}
    assert _results(["a.png", "b.png"], {"success": False, "files": [ok, bad]}) == [LANDED, FAILED]


def test_an_answer_that_names_another_file_of_the_request_is_not_taken_for_this_one():
    """Results matched by position, but an entry naming another part of the same request (a reordered answer)
    would book the wrong file as stored: those files are unconfirmed (sent again), never landed."""
    ok, bad = {"success": True}, {"success": False, "error": "invalid image"}
    reordered = {"success": False, "files": [ok | {"fileName": "b.png"}, bad | {"fileName": "a.png"}]}
    assert _results(["a.png", "b.png"], reordered) == [UNCONFIRMED, UNCONFIRMED]
    in_order = {"success": False, "files": [ok | {"fileName": "a.png"}, bad | {"fileName": "b.png"}]}
    assert _results(["a.png", "b.png"], in_order) == [LANDED, FAILED]
    twice = {"success": True, "files": [ok | {"fileName": "a.png"}, ok | {"fileName": "a.png"}]}
    assert _results(["a.png", "b.png"], twice) == [LANDED, UNCONFIRMED]
    # one file's result missing, the labels part's in its place: not that file's
    labels = {"success": True, "files": [ok | {"fileName": "a.png"}, ok | {"fileName": "bounding_boxes.labels"}]}
    found = answer_results(["a.png", "b.png"], True, json.dumps(labels), "application/json")
    assert [r[0] for r in found] == [LANDED, UNCONFIRMED]


@pytest.mark.parametrize("retry_after", ["9" * 5000, "Fri, 31 Dec 99999 23:59:59 GMT"])
def test_a_retry_after_no_clock_can_hold_falls_back_to_the_backoff(sample_dir: Path, tmp_path: Path, retry_after: str):
    """A 429 whose Retry-After is a number of thousands of digits or a date past year 9999: the backoff is used
    (as for any Retry-After that is not a time), every file lands; the run is not stopped by a ValueError."""
    out = tmp_path / "o"
    with IngestionServer(KEY) as server:
        server.storm(429, 2, retry_after=retry_after)
        result = upload(server, sample_dir, ["--upload-concurrency", "1"], tmp_path / "w", out)
        assert result.returncode == 0, result.output
        assert "ValueError" not in result.output and "Traceback" not in result.output
        assert (
            len(server.stored)
            == len(manifest_lines(out))
            == json.loads((out / "report.json").read_text())["upload"]["landed"]
        )


def test_a_file_symlink_in_the_input_to_an_output_is_not_read(sample_dir: Path, tmp_path: Path):
    """Like a folder link into the output, a link to one output file is skipped, named: a rerun never
    augments the last run's outputs (24 images each time, not 25, and no output of an output)."""
    out = tmp_path / "out"
    assert _block(sample_dir, out, tmp_path).returncode == 0
    made = next(p for p in sorted((out / "circle").glob("*.png")) if not (sample_dir / "circle" / p.name).exists())
    (sample_dir / "circle" / "zz-linked.png").symlink_to(made)
    for _ in range(2):
        result = _block(sample_dir, out, tmp_path)
        assert result.returncode == 0, result.output
        assert "24 images" in result.output, result.output
        assert "skipped circle/zz-linked.png: symlink into the output folder" in result.output
    assert len(_pngs(out)) == 24 * 3


def test_a_finished_run_exits_at_once_while_another_run_is_checking_the_folder(tmp_path: Path):
    """Another run holds the folder's check byte (it is taking its place, or is stopped while it does, e.g. a
    frozen container): a run that has finished its work must not wait for it (up to EDGE_AUGMENT_LOCK_WAIT)
    just to decide whether to remove the lock file; the other run is using that file, so it stays."""
    make_inputs(tmp_path / "in")
    out = tmp_path / "out"
    argv = [sys.executable, "-u", str(ROOT / "transform.py"), "--in-directory", str(tmp_path / "in")]
    argv += ["--out-directory", str(out), "--workers", "1", "--preset", "heavy"]
    env = ei_env({"EDGE_AUGMENT_LOCK_WAIT": "3600"})
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: len(outputs(out)) >= 1)  # past its own check: it is writing
        fd = os.open(out / LOCK_FILE, os.O_RDWR)
        try:
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, 0, 1, 0))
            stdout, _ = proc.communicate(timeout=120)  # hang guard: with the defect it waits 3600 s
        finally:
            os.close(fd)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, stdout.decode()
    assert (out / LOCK_FILE).exists()  # in use by the other run: left for it


def test_since_redoes_a_changed_source_whose_outputs_another_runs_manifest_records(sample_dir: Path, tmp_path: Path):
    """Two shards made the folder; an unsharded --since refresh (the same settings) adopts their records. A
    source whose bytes changed since must still be redone, as when its own manifest records it, not kept
    with outputs of its old bytes."""
    from tests.test_determinism import images
    from tests.test_refresh import OLD, _age, _now, _run

    _age(sample_dir)
    out = tmp_path / "out"
    for index in ("0", "1"):
        _run(sample_dir, out, "--since", "off", "--shard-count", "2", "--shard-index", index)
    before = images(out)
    since = _now()
    changed = sample_dir / "circle" / "03.png"
    changed.write_bytes((sample_dir / "square" / "05.png").read_bytes())  # new bytes in place
    os.utime(changed, (OLD, OLD))  # its mtime kept old (cp -p): only ctime says it changed
    _run(sample_dir, out, "--since", since)
    after = images(out)
    redone = {k for k in before if after[k] != before[k]}
    assert redone == {"circle/circle.03.orig.png", "circle/circle.03.aug00.png"}
    fresh = tmp_path / "fresh"
    _run(sample_dir, fresh, "--since", "off")
    assert images(fresh).items() <= after.items()
