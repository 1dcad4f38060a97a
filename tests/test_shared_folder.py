"""Sharded and unsharded runs into one destination see each other: one lock file for every run of a folder,
and every run checks every manifest already there, whether the runs go at once or one after the other; no
run rewrites a file another run's manifest records. Real processes; S3 on the real SeaweedFS."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.blockrun import MIXED_UIDS, ei_env, host_runner_only, run_block
from tests.support.s3server import SeaweedServer
from tests.test_outdir import make_inputs, outputs, run, start, wait_for

SHARDS = [("--shard-index", str(i), "--shard-count", "2") for i in range(2)]


def _state(out: Path) -> dict[str, tuple[int, int, bytes]]:
    """Each image's inode, mtime and bytes: a file rewritten in place, even with equal bytes, shows."""
    return {
        p.relative_to(out).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in outputs(out)
    }


def _records(out: Path) -> dict[str, str]:
    """Every manifest's output -> sha256; a name two manifests record differently raises."""
    found: dict[str, str] = {}
    for manifest in sorted(out.glob("manifest*.jsonl")):
        for line in manifest.read_text().splitlines()[1:]:
            entry = json.loads(line)
            assert found.setdefault(entry["output"], entry["sha256"]) == entry["sha256"], entry["output"]
    return found


def _small(tmp_path: Path) -> None:
    make_inputs(tmp_path / "in", count=8, size=48)


def test_shards_after_an_unsharded_run_adopt_its_files_and_never_rewrite_them(tmp_path):
    _small(tmp_path)
    out = tmp_path / "out"
    assert run(tmp_path, "--copies", "2").returncode == 0
    before = _state(out)
    for shard in SHARDS:
        result = run(tmp_path, "--copies", "2", *shard)
        assert result.returncode == 0, result.output
        assert (
            "0 written" in result.stdout or '"written": 0' in (out / f"report.shard-{shard[1]}-of-2.json").read_text()
        )
    assert _state(out) == before  # same inodes: adopted, not rewritten
    records = _records(out)
    assert set(records) == set(before)  # the shard manifests together record every file the single run did
    shard_names = [
        json.loads(x)["output"]
        for i in range(2)
        for x in (out / f"manifest.shard-{i}-of-2.jsonl").read_text().splitlines()[1:]
    ]
    assert sorted(shard_names) == sorted(before)


@pytest.mark.parametrize("first_sharded", [False, True])
def test_runs_of_other_settings_are_refused_one_after_the_other(tmp_path, first_sharded):
    _small(tmp_path)
    out = tmp_path / "out"
    firsts = SHARDS if first_sharded else [()]
    for shard in firsts:
        assert run(tmp_path, "--copies", "1", "--seed", "1", *shard).returncode == 0
    before, manifests = _state(out), sorted(p.name for p in out.glob("manifest*"))
    seconds = [()] if first_sharded else SHARDS
    for shard in seconds:
        for extra in ((), ("--overwrite", "1")):
            result = run(tmp_path, "--copies", "1", "--seed", "2", *shard, *extra)
            assert result.returncode == 1, result.output
            assert "of another run with another recipe, seed, format or layout" in result.stdout
            assert "Traceback" not in result.output
    assert _state(out) == before and sorted(p.name for p in out.glob("manifest*")) == manifests


def test_overwrite_redoes_a_sharded_job_shard_by_shard(tmp_path):
    _small(tmp_path)
    out = tmp_path / "out"
    for shard in SHARDS:
        assert run(tmp_path, "--copies", "1", "--seed", "1", *shard).returncode == 0
    for shard in SHARDS:  # the sibling's manifest still has the old seed while the first shard is redone
        result = run(tmp_path, "--copies", "1", "--seed", "2", "--overwrite", "1", *shard)
        assert result.returncode == 0, result.output
    assert {json.loads(p.read_text().splitlines()[0])["seed"] for p in out.glob("manifest*.jsonl")} == {2}
    assert set(_records(out)) == set(_state(out))


_TWO_UIDS = host_runner_only(MIXED_UIDS)


@pytest.mark.parametrize(
    ("first", "second", "busy"),
    [
        ((), SHARDS[0], True),  # an unsharded run holds the folder: no shard beside it
        (SHARDS[0], (), True),  # and the other way round
        (SHARDS[0], ("--shard-index", "0", "--shard-count", "3"), True),  # shards of another count
        (SHARDS[0], SHARDS[0], True),  # the same shard twice
        pytest.param(SHARDS[0], SHARDS[1], False, marks=_TWO_UIDS),  # shards of one job share the folder
    ],
)
def test_runs_at_once_share_one_lock(tmp_path, first, second, busy):
    make_inputs(tmp_path / "in")
    out = tmp_path / "out"
    live = start(tmp_path, "--seed", "1", *first)
    wait_for(lambda: outputs(out))
    result = run(tmp_path, "--seed", "1", *second)
    if busy:
        assert result.returncode == 1, result.output
        assert f"in use by another run (pid {live.pid}" in result.stdout
    else:
        assert result.returncode == 0, result.output
    assert live.wait(300) == 0, live.stdout.read().decode()
    _records(out)  # every manifest agrees with every other
    assert set(_records(out)) == set(_state(out))
    assert not list(out.glob(".edge-augment*.lock"))  # the last run out removes the lock file


def test_a_shard_started_beside_a_live_sibling_of_other_settings_is_refused(tmp_path):
    make_inputs(tmp_path / "in")
    out = tmp_path / "out"
    live = start(tmp_path, "--seed", "1", *SHARDS[0])
    wait_for(lambda: outputs(out))
    result = run(tmp_path, "--seed", "2", *SHARDS[1])
    assert result.returncode == 1 and "manifest.shard-0-of-2.jsonl of another run" in result.stdout, result.output
    assert live.wait(300) == 0


@pytest.mark.xdist_group("s3")
def test_s3_runs_check_every_manifest_under_the_prefix(s3server: SeaweedServer, tmp_path):
    from tests.test_s3 import png8, put_all

    client = s3server.client()
    for bucket in ("shared-in", "shared-out"):
        client.create_bucket(Bucket=bucket)
    put_all(client, "shared-in", {f"{c}/{i}.png": png8(i) for c in "ab" for i in range(4)})
    base = ["--source", "s3://shared-in/", "--dest", "s3://shared-out/v1/", "--copies", "1"]

    def block(*extra: str):
        return run_block([*base, *extra], workdir=tmp_path, env=ei_env(s3server.env()))

    assert block("--seed", "1").returncode == 0
    listed = {o["Key"]: o["ETag"] for o in client.list_objects_v2(Bucket="shared-out")["Contents"]}
    refused = block("--seed", "2", *SHARDS[0])
    assert refused.returncode == 1 and "v1/ holds manifest.jsonl of another run" in refused.stdout, refused.output
    same = block("--seed", "1", *SHARDS[1])
    assert same.returncode == 0, same.output
    after = {o["Key"]: o["ETag"] for o in client.list_objects_v2(Bucket="shared-out")["Contents"]}
    assert {k: v for k, v in after.items() if k.endswith(".png")} == {
        k: v for k, v in listed.items() if k.endswith(".png")
    }
    assert "v1/manifest.shard-1-of-2.jsonl" in after


def test_many_runs_racing_into_one_folder_never_mix(tmp_path):
    """Six runs started together (unsharded, shards of 2 and of 3, two seeds): each finishes or is refused
    with one line, and whatever finished leaves files that every manifest there agrees with."""
    _small(tmp_path)
    out = tmp_path / "out"
    mixes = [(), SHARDS[0], SHARDS[1], ("--shard-index", "2", "--shard-count", "3"), ("--seed", "2"), SHARDS[0]]
    procs = [start(tmp_path, "--copies", "1", *extra) for extra in mixes]
    texts = [p.communicate(timeout=300)[0].decode() for p in procs]
    for proc, text in zip(procs, texts, strict=True):
        assert proc.returncode in (0, 1), text
        assert "Traceback" not in text
        if proc.returncode:
            assert "in use by another run" in text or "of another recipe" in text or "with another recipe" in text, text
    assert any(p.returncode == 0 for p in procs)
    seeds = {json.loads(p.read_text().splitlines()[0])["seed"] for p in out.glob("manifest*.jsonl")}
    assert len(seeds) == 1  # never two settings in one folder
    assert set(_records(out)) == set(_state(out))  # every file recorded, every record a file, all agree
    assert not list(out.rglob(".tmp-*")) and not list(out.glob(".edge-augment*.lock"))


def test_box_labels_stay_complete_when_a_shard_follows_an_unsharded_run(tmp_path):
    from tests.support.boxes_data import detection_folder

    src = detection_folder(tmp_path / "in", 8)
    out = tmp_path / "out"
    base = ["--in-directory", str(src), "--out-directory", str(out), "--copies", "1", "--workers", "1"]
    assert run_block(base, workdir=tmp_path).returncode == 0
    labels = {p: p.read_text() for p in out.rglob("bounding_boxes.labels")}
    assert labels
    result = run_block([*base, *SHARDS[0]], workdir=tmp_path)
    assert result.returncode == 0, result.output
    assert {p: p.read_text() for p in out.rglob("bounding_boxes.labels")} == labels  # shard 1's boxes kept


def test_a_run_leaving_while_another_checks_leaves_no_lock_file(tmp_path, monkeypatch):
    """The interleaving behind a lock file left after racing runs: run A leaves while run B holds the check
    byte; B takes its place at the worst moment, after A's failed try for the check byte and before A's file is
    closed. A's place must already be gone then (else B is refused and nobody removes the file)."""
    from augment.plan.selection import Shard
    from augment.sinks import lock

    out = tmp_path / "out"
    first = lock.FolderLock(out, Shard(), 1.0)
    first.acquire()
    second = lock.FolderLock(out, Shard(), 1.0)
    real_lock = lock._lock
    entered: list[str] = []

    def interleave(fd: int, kind: int, start: int, length: int = 1) -> bool:
        taken = real_lock(fd, kind, start, length)
        if fd == first.fd and start == lock._CHECK and not taken and not entered:
            entered.append("B takes its place")
            second._take_place(fd_b)  # refused (FolderBusyError) if A still holds its place
            second.fd = fd_b
        return taken

    fd_b = lock.os.open(second.path, lock.os.O_RDWR)
    second._hold_check(fd_b)
    monkeypatch.setattr(lock, "_lock", interleave)
    first.release()
    monkeypatch.setattr(lock, "_lock", real_lock)
    assert entered and second.fd == fd_b  # B got its place while A was leaving
    assert (out / lock.LOCK_FILE).exists()  # B's, while it runs
    second.release()
    assert not (out / lock.LOCK_FILE).exists()


def test_a_refused_run_removes_the_lock_file_when_the_run_in_its_way_has_left(tmp_path):
    """B is refused by A's place; A leaves while B still holds the check byte (so A keeps the file for B): B,
    on its way out, finds no place taken and removes the file."""
    from augment.plan.selection import Shard
    from augment.sinks import lock

    out = tmp_path / "out"
    first = lock.FolderLock(out, Shard(), 1.0)
    first.acquire()
    second = lock.FolderLock(out, Shard(), 1.0)
    real_take = second._take_place

    def refused_after_a_leaves(fd: int) -> None:
        try:
            real_take(fd)
        finally:
            first.release()  # while B holds _CHECK: A cannot take it and leaves the file

    second._take_place = refused_after_a_leaves
    with pytest.raises(lock.FolderBusyError):
        second.acquire()
    assert not (out / lock.LOCK_FILE).exists()
