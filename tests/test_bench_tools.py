"""The bench tools' own edges, each run as the bench is (a subprocess): compile_block in a read-only checkout,
bench/s3_latency.py --times on odd datasets."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

_PROBE = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from bench.run import compile_block
for _ in range(3):  # three block runs
    compile_block(Path(sys.argv[2]))
print("ran")
"""


def _read_only_copy(parent: Path) -> Path:
    """A copy of the block's sources with no __pycache__, every folder read-only (and readable by anyone)."""
    copy = parent / "checkout"
    shutil.copytree(ROOT / "augment", copy / "augment", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "transform.py", copy / "transform.py")
    for folder in [copy, *(p for p in copy.rglob("*") if p.is_dir())]:
        folder.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    return copy


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_a_read_only_checkout_is_benched_with_one_note_not_an_error_per_module():
    as_user = []
    if os.geteuid() == 0:  # root writes through permissions: run the bench's part as nobody
        if shutil.which("setpriv") is None:
            pytest.skip("root without setpriv")
        as_user = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]
    parent = Path(tempfile.mkdtemp(prefix="ro-checkout-"))
    try:
        parent.chmod(0o755)
        copy = _read_only_copy(parent)
        done = subprocess.run(
            [*as_user, sys.executable, "-c", _PROBE, str(ROOT), str(copy)], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.splitlines() == ["ran"], done.stdout[-2000:]
        assert len(done.stderr.splitlines()) == 1, done.stderr[-2000:]
        assert "could not byte-compile" in done.stderr
        assert not list(copy.rglob("__pycache__"))
    finally:
        for folder in [parent, *(p for p in parent.rglob("*") if p.is_dir())]:
            folder.chmod(0o755)
        shutil.rmtree(parent)


def _s3_latency(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(ROOT / "bench" / "s3_latency.py"), *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("times", ["1", "3"])
def test_s3_latency_on_a_dataset_without_images_says_so_and_starts_nothing(tmp_path: Path, times: str):
    """Not a failed block run naming a temp folder the bench made (``--times``), after starting SeaweedFS: a
    note, as for an absent dataset."""
    data = tmp_path / "data"
    (data / "a" / "nested").mkdir(parents=True)
    (data / "a" / "nested" / "notes.txt").write_text("not an image")
    done = _s3_latency("--data", str(data), "--times", times, "--skip-ingestion")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stdout.splitlines() == [f"skipped: no images in {data}"], done.stdout[-2000:]


@pytest.mark.parametrize("times", ["0", "-2", "x"])
def test_s3_latency_refuses_a_times_that_is_not_a_positive_count(tmp_path: Path, times: str):
    done = _s3_latency("--data", str(tmp_path), "--times", times)
    assert done.returncode == 2 and "--times" in done.stderr, done.stderr[-2000:]
