"""Worker processes in a whole run: they exit when the main process is SIGKILLed (real processes, a real
signal), a killed one fails only its image, and they start after a caller used OpenCV's threads. (How the
pool renders, huge images one at a time included: tests/test_pool.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import gradient
from tests.support.blockrun import ROOT, ei_env


def children(pid: int) -> list[int]:
    """Live (not zombie) processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_workers_exit_when_the_main_process_is_killed(tmp_path):
    folder = tmp_path / "in" / "a"
    folder.mkdir(parents=True)
    for i in range(40):
        gradient("RGB", (400, 400), seed=i).save(folder / f"{i:02d}.png")
    argv = [sys.executable, "-u", str(ROOT / "transform.py"), "--in-directory", str(tmp_path / "in")]
    argv += ["--out-directory", str(tmp_path / "out"), "--workers", "2", "--preset", "heavy"]
    main = subprocess.Popen(argv, cwd=tmp_path, env=ei_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(workers := children(main.pid)) < 2:
        assert time.monotonic() < deadline and main.poll() is None, "no workers started"
        time.sleep(0.05)
    time.sleep(0.5)  # let them get busy
    os.kill(main.pid, signal.SIGKILL)
    main.wait()
    deadline = time.monotonic() + 10
    try:
        while any(alive(pid) for pid in workers):
            assert time.monotonic() < deadline, f"workers still running after the main process died: {workers}"
            time.sleep(0.1)
    finally:
        for pid in filter(alive, workers):  # a failed test leaves no orphans behind
            os.kill(pid, signal.SIGKILL)


def rss_mib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def run_and_kill_the_busy_worker(tmp_path, out, workers):
    """Run on a big image and two small ones; SIGKILL the worker that holds the big one (the one whose memory
    grew by over 30 MiB, as the kernel's OOM killer would choose; with two workers, once the small ones are
    written). The exit code and output."""
    argv = [sys.executable, "-u", str(ROOT / "transform.py"), "--in-directory", str(tmp_path / "in")]
    argv += ["--out-directory", str(out), "--workers", workers, "--preset", "heavy", "--copies", "3"]
    main = subprocess.Popen(argv, cwd=tmp_path, env=ei_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    started: dict[int, int] = {}  # worker -> its RSS when first seen
    try:
        deadline = time.monotonic() + 120
        while True:
            for pid in children(main.pid):
                started.setdefault(pid, rss_mib(pid))
            busy = [pid for pid in started if rss_mib(pid) - started[pid] > 30]
            if busy and (workers == "1" or len(list(out.rglob("a.small*"))) == 8):
                break
            assert time.monotonic() < deadline and main.poll() is None, "no worker took the big image"
            time.sleep(0.01)
        os.kill(busy[0], signal.SIGKILL)
        output = main.communicate(timeout=120)[0].decode()
    finally:
        if main.poll() is None:
            main.kill()
    return main.returncode, output


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_killed_worker_fails_its_image_by_name_and_the_run_goes_on(tmp_path, workers):
    """A worker killed by SIGKILL mid-render (what the OOM killer does) fails the image it held, named, with
    none of its outputs left; the other images are done, report.json is written, the exit code says 1, and a
    rerun that meets the same kill records the image as failed again instead of dying on it."""
    import json

    import numpy as np
    from PIL import Image

    folder = tmp_path / "in" / "a"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (1500, 2000, 3), dtype=np.uint8)).save(folder / "big.png")
    for i in range(2):
        gradient("RGB", (32, 32), seed=i).save(folder / f"small{i}.png")
    out = tmp_path / "out"
    for attempt in range(2):
        code, output = run_and_kill_the_busy_worker(tmp_path, out, workers)
        assert code == 1, output
        assert "Traceback" not in output and "BrokenProcessPool" not in output, output
        assert "ERROR a/big.png: the worker rendering it was killed by SIGKILL" in output, output
        report = json.loads((out / "report.json").read_text())
        assert [e["source"] for e in report["errors"]] == ["a/big.png"], attempt
        assert report["totals"]["written"] == (2 * 4 if attempt == 0 else 0)
        assert not list(out.rglob("*big*")), "a failed image must leave no outputs"
    result = subprocess.run(
        [sys.executable, "-u", str(ROOT / "transform.py"), "--in-directory", str(tmp_path / "in"), "--out-directory",
         str(out), "--workers", workers, "--preset", "heavy", "--copies", "3"],
        cwd=tmp_path, env=ei_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(list(out.rglob("a.big.*"))) == 4


FORK_AFTER_OPENCV = """
import sys
import cv2
import numpy as np
from augment.cli import parse
from augment.config import build_config
from augment.run.runner import run

cv2.setNumThreads(2)  # a caller that used OpenCV's thread pool before the run
cv2.GaussianBlur(np.zeros((1500, 2000, 3), np.uint8), (0, 0), 3)
args, _ = parse(["--in-directory", sys.argv[1], "--out-directory", sys.argv[2], "--workers", "2", "--copies", "1"])
sys.exit(run(build_config(args, {}), lambda line: None))
"""


def test_workers_start_after_the_caller_used_opencv_threads(tmp_path):
    """Workers are forked: one that inherits OpenCV's thread pool with its threads gone would hang in its
    first OpenCV call. The pool is set to one thread before forking, so the run finishes."""
    src = tmp_path / "in" / "a"
    src.mkdir(parents=True)
    for i in range(3):
        gradient("RGB", (64, 48), seed=i).save(src / f"g{i}.png")
    command = [sys.executable, "-c", FORK_AFTER_OPENCV, str(tmp_path / "in"), str(tmp_path / "out")]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(list((tmp_path / "out").rglob("*.png"))) == 6
