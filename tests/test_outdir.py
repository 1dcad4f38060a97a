"""The output folder: one run at a time (a real lock between real processes), the manifest header before
any output, unrecorded files after a SIGKILL, stale temp files, and images no manifest records."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import gradient
from tests.support.blockrun import ROOT, ei_env, run_block


def make_inputs(folder: Path, count: int = 24, size: int = 320) -> None:
    for label in ("a", "b"):
        (folder / label).mkdir(parents=True)
        for i in range(count // 2):
            gradient("RGB", (size, size), seed=i).save(folder / label / f"{i:02d}.png")


def start(tmp_path: Path, *args: str) -> subprocess.Popen:
    argv = [sys.executable, "-u", str(ROOT / "transform.py"), "--in-directory", str(tmp_path / "in")]
    argv += ["--out-directory", str(tmp_path / "out"), "--workers", "1", "--preset", "heavy", *args]
    return subprocess.Popen(argv, cwd=tmp_path, env=ei_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def kill_under_way(proc: subprocess.Popen, out: Path) -> None:
    """SIGKILL ``proc`` once it has written a few outputs into ``out``; reap it."""
    wait_for(lambda: len(outputs(out)) >= 3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def outputs(out: Path) -> list[Path]:
    return [p for p in out.rglob("*.png") if not p.name.startswith(".")]


def assert_manifest_matches_files(out: Path) -> None:
    lines = (out / "manifest.jsonl").read_text().splitlines()
    entries = [json.loads(line) for line in lines[1:]]
    assert {e["output"] for e in entries} == {p.relative_to(out).as_posix() for p in outputs(out)}
    for e in entries:
        assert hashlib.sha256((out / e["output"]).read_bytes()).hexdigest() == e["sha256"], e["output"]


def run(tmp_path: Path, *args: str):
    argv = ["--in-directory", str(tmp_path / "in"), "--out-directory", str(tmp_path / "out"), "--workers", "1"]
    return run_block([*argv, "--preset", "heavy", *args], workdir=tmp_path)


def test_a_second_run_is_refused_while_the_first_holds_the_folder(tmp_path):
    make_inputs(tmp_path / "in")
    first = start(tmp_path, "--seed", "1")
    wait_for(lambda: outputs(tmp_path / "out"))
    second = run(tmp_path, "--seed", "2")
    assert second.returncode == 1, second.output
    assert f"in use by another run (pid {first.pid} on {socket.gethostname()}" in second.stdout
    assert first.wait(120) == 0, first.stdout.read().decode()
    assert_manifest_matches_files(tmp_path / "out")
    assert not list((tmp_path / "out").glob(".edge-augment*.lock"))  # released


def test_after_a_sigkill_the_header_is_there_the_lock_is_stale_and_temps_are_cleaned(tmp_path):
    make_inputs(tmp_path / "in")
    out = tmp_path / "out"
    first = start(tmp_path, "--seed", "1")
    kill_under_way(first, out)
    header = json.loads((out / "manifest.jsonl").read_text().splitlines()[0])
    assert header["type"] == "run" and header["seed"] == 1  # written before the first output
    stray = out / "a" / f".tmp-{first.pid}-7.png"
    stray.write_bytes(b"half an image")
    other = run(tmp_path, "--seed", "2")
    assert other.returncode == 1 and "another recipe, seed or format" in other.stdout, other.output
    assert re.search(r"removed [1-9]\d* temp file\(s\) left by an interrupted run", other.stdout)  # lock holder cleans
    again = run(tmp_path, "--seed", "1")
    assert again.returncode == 0, again.output
    assert not stray.exists() and not list(out.rglob(".tmp-*"))
    assert_manifest_matches_files(out)


def test_images_no_manifest_records_are_refused_not_mixed(tmp_path):
    make_inputs(tmp_path / "in", count=2, size=32)
    stranger = tmp_path / "out" / "a" / "a.00.aug99.png"
    stranger.parent.mkdir(parents=True)
    gradient("RGB", (8, 8)).save(stranger)
    result = run(tmp_path, "--copies", "1")
    assert result.returncode == 1, result.output
    assert "holds 1 image(s) that no manifest there records" in result.stdout and "a/a.00.aug99.png" in result.stdout
    assert sorted(p.name for p in outputs(tmp_path / "out")) == ["a.00.aug99.png"]


def test_planned_outputs_left_unrecorded_are_regenerated(tmp_path):
    make_inputs(tmp_path / "in", count=2, size=32)
    assert run(tmp_path, "--copies", "1").returncode == 0
    out = tmp_path / "out"
    body = (out / "manifest.jsonl").read_text().splitlines()
    (out / "manifest.jsonl").write_text(body[0] + "\n")  # as after a SIGKILL before the first checkpoint
    (out / "a" / "a.00.aug00.png").write_bytes(b"")
    result = run(tmp_path, "--copies", "1")
    assert result.returncode == 0, result.output
    assert_manifest_matches_files(out)


def test_a_lock_file_left_behind_is_stale_and_taken_over(tmp_path):
    make_inputs(tmp_path / "in", count=2, size=32)
    (tmp_path / "out").mkdir()
    lock = {"pid": os.getpid(), "host": "elsewhere", "started": "2026-01-01T00:00:00Z"}
    (tmp_path / "out" / ".edge-augment.lock").write_text(json.dumps(lock))  # nobody holds it
    result = run(tmp_path, "--copies", "1")
    assert result.returncode == 0, result.output


def test_rerun_checks_sizes_always_and_sha256_on_request(tmp_path):
    make_inputs(tmp_path / "in", count=2, size=32)
    assert run(tmp_path, "--copies", "2").returncode == 0
    out = tmp_path / "out"
    emptied, altered = out / "a" / "a.00.aug00.png", out / "b" / "b.00.aug01.png"
    good_empty, good_altered = emptied.read_bytes(), altered.read_bytes()
    emptied.write_bytes(b"")  # recorded, then truncated: made again on every rerun
    altered.write_bytes(bytes(reversed(good_altered)))  # same size, other bytes: only a sha256 check sees it
    plain = run(tmp_path, "--copies", "2")
    assert plain.returncode == 0, plain.output
    assert emptied.read_bytes() == good_empty and altered.read_bytes() != good_altered
    verified = run(tmp_path, "--copies", "2", "--verify-outputs", "1")
    assert verified.returncode == 0, verified.output
    assert altered.read_bytes() == good_altered
    assert_manifest_matches_files(out)


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_outputs_reach_the_disk_before_the_manifest_records_them(tmp_path):
    """Traced system calls of a real run: the manifest file is made once, with its header, before any output
    (a syncfs and an fsync before the rename, an fsync of the folder after), then only appended to; at the
    end every output is flushed (syncfs) before the appended lines (fsync)."""
    make_inputs(tmp_path / "in", count=4, size=32)
    trace = tmp_path / "trace.txt"
    argv = ["strace", "-f", "-e", "trace=syncfs,fsync,rename", "-o", str(trace), sys.executable, "-u"]
    argv += [str(ROOT / "transform.py"), "--in-directory", str(tmp_path / "in"), "--out-directory"]
    argv += [str(tmp_path / "out"), "--copies", "1", "--workers", "2"]
    done = subprocess.run(argv, cwd=tmp_path, env=ei_env(), capture_output=True, text=True, timeout=120)
    if done.returncode != 0 and "ptrace" in done.stderr:
        pytest.skip(f"strace cannot trace here: {done.stderr.strip()[:200]}")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line.split(None, 1) for line in trace.read_text().splitlines()]
    lines = [(pid, c) for pid, c in lines if "exited" not in c and "resumed>" not in c and "+++" not in c]
    main = next(pid for pid, c in lines if c.startswith("rename(") and 'manifest.jsonl"' in c)
    outputs = [i for i, (_, c) in enumerate(lines) if c.startswith("rename(") and '.png"' in c.split(", ")[1]]
    calls = [c for pid, c in lines if pid == main]  # the main process, which saves the manifest
    saves = [i for i, c in enumerate(calls) if c.startswith("rename(") and 'manifest.jsonl"' in c]
    assert len(saves) == 1 and len(outputs) == 8  # the header, before any output; the lines are appended
    for i in saves:
        assert calls[i - 2].startswith("syncfs(") and calls[i - 1].startswith("fsync("), calls[i - 3 : i + 2]
        assert calls[i + 1].startswith("fsync("), calls[i : i + 2]
    last_syncfs = max(i for i, (pid, c) in enumerate(lines) if pid == main and c.startswith("syncfs("))
    assert max(outputs) < last_syncfs  # at the end: every output flushed, then the appended lines
    assert any(pid == main and c.startswith("fsync(") for pid, c in lines[last_syncfs + 1 :])


def test_a_recorded_output_that_cannot_be_remade_leaves_the_manifest(tmp_path):
    """Its file is gone and its source has become unreadable: the rerun fails that image, and the manifest
    (rewritten at the end of a resumed run) no longer lists the output."""
    make_inputs(tmp_path / "in", count=4, size=32)
    assert run(tmp_path, "--copies", "1").returncode == 0
    out = tmp_path / "out"
    gone = out / "a" / "a.00.aug00.png"
    gone.unlink()
    (tmp_path / "in" / "a" / "00.png").write_bytes(b"not an image any more")
    again = run(tmp_path, "--copies", "1", "--max-failures", "1")
    assert again.returncode == 0 and "ERROR a/00.png" in again.stdout, again.output
    recorded = [json.loads(x)["output"] for x in (out / "manifest.jsonl").read_text().splitlines()[1:]]
    assert "a/a.00.aug00.png" not in recorded and len(recorded) == len(set(recorded))
    assert_manifest_matches_files(out)
