"""Temp files of a killed run are removed by the next run even when pids say otherwise: every run of a
container is pid 1, and a zombie keeps its pid. Liveness is a lock held on the folder's lock file, never a
pid. Real processes: a pid namespace (the block as pid 1), a real zombie, live shards."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.blockrun import MIXED_UIDS, ROOT, ei_env, host_runner_only
from tests.test_outdir import (
    assert_manifest_matches_files,
    kill_under_way,
    make_inputs,
    outputs,
    run,
    start,
    wait_for,
)


def _as_pid_1(tmp_path: Path, *args: str) -> subprocess.Popen:
    """The block as pid 1 of a new pid namespace (as in a container); SIGKILL to the returned process kills it."""
    if subprocess.run(["unshare", "--pid", "--fork", "--kill-child", "true"], capture_output=True).returncode:
        pytest.skip("no pid namespace here (unshare --pid needs privileges)")
    argv = [sys.executable, "-u", str(ROOT / "transform.py"), "--in-directory", str(tmp_path / "in")]
    argv += ["--out-directory", str(tmp_path / "out"), "--workers", "1", "--preset", "heavy", *args]
    code = "import os, sys; assert os.getpid() == 1; os.execv(sys.argv[1], sys.argv[1:])"
    wrapped = ["unshare", "--pid", "--fork", "--kill-child", sys.executable, "-c", code, *argv]
    return subprocess.Popen(wrapped, cwd=tmp_path, env=ei_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_a_killed_pid_1_runs_temps_are_removed_by_the_next_pid_1_run(tmp_path):
    make_inputs(tmp_path / "in")
    out = tmp_path / "out"
    kill_under_way(_as_pid_1(tmp_path, "--seed", "1"), out)
    # What a kill mid-write leaves, in this version's and an earlier version's names (both from pid 1).
    strays = [out / "a" / ".tmp-u-1-7.png", out / "a" / ".tmp-1-8.png"]
    for stray in strays:
        stray.write_bytes(b"half an image")
    again = _as_pid_1(tmp_path, "--seed", "1")
    text = again.communicate(timeout=300)[0].decode()
    assert again.returncode == 0, text
    assert "temp file(s) left by an interrupted run" in text
    assert not any(s.exists() for s in strays) and not list(out.rglob(".tmp-*"))
    assert_manifest_matches_files(out)


def test_temps_behind_a_zombie_writer_are_removed(tmp_path):
    make_inputs(tmp_path / "in", count=2, size=32)
    assert run(tmp_path, "--copies", "1").returncode == 0
    folder = tmp_path / "out" / "a"
    script = 'touch "$0/.tmp-$$-3.png" "$0/.tmp-u-$$-3.png"'  # a writer that dies, unreaped: a zombie
    zombie = subprocess.Popen(["sh", "-c", script, str(folder)])
    stat = Path(f"/proc/{zombie.pid}/stat")
    wait_for(lambda: stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")
    strays = [folder / f".tmp-{zombie.pid}-3.png", folder / f".tmp-u-{zombie.pid}-3.png"]
    assert all(s.exists() for s in strays)
    result = run(tmp_path, "--copies", "1")
    assert result.returncode == 0, result.output
    assert "removed 2 temp file(s)" in result.stdout
    assert not any(s.exists() for s in strays)
    zombie.wait()


@host_runner_only(MIXED_UIDS)
def test_a_shard_keeps_a_live_siblings_temps_and_removes_the_dead_ones(tmp_path):
    make_inputs(tmp_path / "in")
    out = tmp_path / "out"
    live = start(tmp_path, "--shard-index", "0", "--shard-count", "2")
    wait_for(lambda: outputs(out))
    sibling = out / f".tmp-s0of2-{live.pid}-999.png"  # as the live shard 0 is writing it
    dead = [out / ".tmp-s1of2-1-5.png", out / ".tmp-s0of3-1-5.png", out / ".tmp-u-1-5.png"]
    for path in (sibling, *dead):
        path.write_bytes(b"half an image")
    result = run(tmp_path, "--shard-index", "1", "--shard-count", "2")
    assert result.returncode == 0, result.output
    assert "removed 3 temp file(s)" in result.stdout
    assert sibling.exists() and not any(p.exists() for p in dead)
    assert live.wait(300) == 0, live.stdout.read().decode()
    time.sleep(0.1)
    again = run(tmp_path, "--shard-index", "1", "--shard-count", "2")  # shard 0 is gone now
    assert again.returncode == 0 and "removed 1 temp file(s)" in again.stdout, again.output
    assert not list(out.rglob(".tmp-*"))


def test_a_run_stopped_while_it_checks_the_folder_does_not_hold_others_for_ever(tmp_path):
    """Another process holds the folder's check byte (as a run stopped mid-check would): a new run waits
    EDGE_AUGMENT_LOCK_WAIT seconds, then exits 1 saying so; once it is let go, runs go ahead."""
    import fcntl
    import os
    import struct

    from tests.support.blockrun import run_block

    make_inputs(tmp_path / "in", count=2, size=32)
    out = tmp_path / "out"
    out.mkdir()
    fd = os.open(out / ".edge-augment.lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack("hhqqi4x", fcntl.F_WRLCK, 0, 0, 1, 0))
    argv = ["--in-directory", str(tmp_path / "in"), "--out-directory", str(out), "--copies", "1"]
    try:
        held = run_block(argv, workdir=tmp_path, env=ei_env({"EDGE_AUGMENT_LOCK_WAIT": "1"}))
        assert held.returncode == 1, held.output
        assert "another run has been checking it for over 1 s" in held.stdout and "Traceback" not in held.output
    finally:
        os.close(fd)
    assert run_block(argv, workdir=tmp_path).returncode == 0
