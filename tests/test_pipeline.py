"""augment.pipeline: results come back in plan order; recorded outputs still there are kept, not rewritten;
--since redoes every output of a source whose bytes changed (decided at the read); a source that cannot be
read or decoded fails alone and leaves no output behind."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from augment.books.report import Status, TaskResult
from augment.plan.samples import Sample
from augment.plan.tasks import PlannedOutput, Task
from augment.render.codec import EncodeOptions
from augment.render.recipe import Step
from augment.run.pipeline import _CHUNK, _CHUNK_BYTES, Chunk, StreamOptions, chunked, execute
from augment.run.pool import RenderOptions
from augment.sinks import OutputEntry
from augment.sinks.local import LocalSink
from augment.sources.local import LocalSource
from tests.conftest import gradient


def task(key: str, size: int = 0) -> Task:
    flip = (Step("hflip", {}),)
    outputs = (
        PlannedOutput(f"{key}.orig.png", "orig", -1, None, "PNG"),
        PlannedOutput(f"{key}.aug0.png", "aug0", 0, flip, "PNG"),
    )
    return Task(Sample(key, key.split("/")[0], size), outputs)


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    source, out = tmp_path / "in", tmp_path / "out"
    (source / "a").mkdir(parents=True)
    out.mkdir()
    for i in range(12):
        gradient("RGB", (40, 30), seed=i).save(source / "a" / f"{i:02d}.png")
    return source, out


def options(source: Path, out: Path, **changes) -> StreamOptions:
    render = RenderOptions(5, EncodeOptions(), 0.3, 16_000_000)
    return StreamOptions(LocalSource(source), LocalSink(out), render, False, **{"io_threads": 8, **changes})


def run(tasks: list[Task], opts: StreamOptions, recorded: dict[str, OutputEntry] | None = None) -> list[TaskResult]:
    return list(execute([Chunk(tasks, recorded or {})], opts, workers=2, late=[]))


def entries(results: list[TaskResult]) -> dict[str, OutputEntry]:
    return {r.name: r.entry for result in results for r in result.records if r.entry is not None}


def test_chunks_hold_a_few_tasks_or_fewer_large_ones():
    small = [task(f"a/{i}.png", 10) for i in range(2 * _CHUNK + 1)]
    assert [len(c) for c in chunked(small)] == [_CHUNK, _CHUNK, 1]
    large = [task(f"a/{i}.png", _CHUNK_BYTES // 2) for i in range(5)]
    assert [len(c) for c in chunked(large)] == [2, 2, 1]


def test_results_come_in_plan_order_with_an_entry_per_output_written(folders):
    source, out = folders
    tasks = [task(f"a/{i:02d}.png") for i in reversed(range(12))]
    results = list(execute((Chunk(c, {}) for c in chunked(tasks)), options(source, out), workers=2, late=[]))
    assert [r.key for r in results] == [t.sample.key for t in tasks]
    for result in results:
        assert [r.status for r in result.records] == [Status.WRITTEN, Status.WRITTEN] and result.error is None
        sha = hashlib.sha256((source / result.key).read_bytes()).hexdigest()
        for record in result.records:
            assert record.entry.sha256 == hashlib.sha256((out / record.name).read_bytes()).hexdigest()
            assert (record.entry.source, record.entry.source_sha256, record.entry.seed) == (result.key, sha, 5)


def test_recorded_outputs_still_there_are_kept_and_a_truncated_one_is_made_again(folders):
    source, out = folders
    tasks = [task("a/00.png"), task("a/01.png")]
    recorded = entries(run(tasks, options(source, out)))
    (out / "a/01.png.aug0.png").write_bytes(b"cut")
    before = (out / "a/00.png.orig.png").stat().st_mtime_ns
    again = run(tasks, options(source, out), recorded)
    assert [[r.status for r in result.records] for result in again] == [
        [Status.EXISTING, Status.EXISTING],
        [Status.EXISTING, Status.WRITTEN],
    ]
    assert again[0].records[0].entry == recorded["a/00.png.orig.png"]  # what the manifest said: committed again
    assert (out / "a/00.png.orig.png").stat().st_mtime_ns == before
    assert (out / "a/01.png.aug0.png").read_bytes() != b"cut"


@pytest.mark.parametrize("since", [False, True])
def test_since_redoes_every_output_of_a_source_whose_bytes_changed(folders, since: bool):
    source, out = folders
    tasks = [task("a/00.png"), task("a/01.png")]
    recorded = entries(run(tasks, options(source, out)))
    gradient("RGB", (40, 30), seed=99).save(source / "a" / "01.png")  # new bytes, same name
    again = run(tasks, options(source, out, since=since), recorded)
    assert [r.status for r in again[0].records] == [Status.EXISTING, Status.EXISTING]
    changed = again[1].records
    if not since:  # a plain run keeps what is recorded and still there
        assert [r.status for r in changed] == [Status.EXISTING, Status.EXISTING]
        return
    assert [r.status for r in changed] == [Status.WRITTEN, Status.WRITTEN]
    sha = hashlib.sha256((source / "a/01.png").read_bytes()).hexdigest()
    assert all(r.entry.source_sha256 == sha != recorded[r.name].source_sha256 for r in changed)


def test_since_with_a_source_that_no_longer_decodes_keeps_its_recorded_outputs(folders):
    source, out = folders
    tasks = [task("a/00.png")]
    recorded = entries(run(tasks, options(source, out)))
    (source / "a/00.png").write_bytes(b"not an image any more")
    (result,) = run(tasks, options(source, out, since=True), recorded)
    assert result.error is not None and [r.status for r in result.records] == [Status.EXISTING, Status.EXISTING]
    assert (out / "a/00.png.orig.png").exists()


def test_a_source_that_cannot_be_read_or_decoded_fails_alone_with_no_output(folders):
    source, out = folders
    (source / "a/01.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    (source / "a/02.png").unlink()
    results = run([task("a/00.png"), task("a/01.png"), task("a/02.png")], options(source, out))
    assert results[0].error is None and len(results[0].records) == 2
    assert results[1].error is not None and results[1].records == []
    assert results[2].error.startswith("cannot read") and results[2].records == []
    assert sorted(p.name for p in (out / "a").iterdir()) == ["00.png.aug0.png", "00.png.orig.png"]


def test_after_a_stop_no_result_is_handed_out_and_every_output_written_is_in_a_result(folders):
    source, out = folders
    tasks = [task(f"a/{i:02d}.png") for i in range(12)]
    late: list[TaskResult] = []
    handed = []
    stop = [False]
    for result in execute((Chunk(c, {}) for c in chunked(tasks)), options(source, out), 2, late, lambda: stop[0]):
        handed.append(result)
        stop[0] = True
    keys = [r.key for r in handed + late]
    assert len(handed) == 1 and keys == sorted(set(keys))  # in plan order, each once (those cut are left out)
    written = {r.name for result in handed + late for r in result.records}
    assert {p.relative_to(out).as_posix() for p in out.rglob("*.png")} == written  # none unaccounted for
