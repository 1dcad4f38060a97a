"""augment.pool: the render workers. ``stream`` turns bytes into parts (a bad input is the last part's error,
never an exception); the pool renders in real worker processes, in the order submitted, and huge images one
at a time across workers."""

from __future__ import annotations

import dataclasses
import io
import os
import subprocess
import sys
import threading
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from augment.plan.samples import Sample
from augment.plan.tasks import PlannedOutput
from augment.render.codec import EncodeOptions
from augment.render.recipe import Step
from augment.run.pool import _PART_BYTES, Part, RenderJob, RenderOptions, RenderPool, is_huge, stream
from tests.conftest import gradient

ROOT = Path(__file__).resolve().parent.parent

OPTIONS = RenderOptions(seed=7, encode=EncodeOptions(), min_box_visibility=0.3, huge_pixels=16_000_000)


def png(size: tuple[int, int], seed: int = 0, noise: bool = False) -> bytes:
    image = gradient("RGB", size, seed)
    if noise:  # incompressible: the encoded output is about as large as its pixels
        image = Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def job(key: str, data: bytes, copies: int = 0) -> RenderJob:
    """The original and ``copies`` flipped copies of ``data`` (as PNG)."""
    flip = (Step("hflip", {}),)
    todo = [PlannedOutput(f"{key}.orig.png", "orig", -1, None, "PNG")]
    todo += [PlannedOutput(f"{key}.aug{i}.png", f"aug{i}", i, flip, "PNG") for i in range(copies)]
    return RenderJob(Sample(key, "a", len(data)), data, tuple(todo))


def test_stream_sends_outputs_in_order_in_bounded_parts_and_ends_with_a_done_part():
    parts = list(stream(OPTIONS, job("a/big.png", png((700, 600), noise=True), copies=3)))
    assert [p.done for p in parts] == [False] * (len(parts) - 1) + [True]
    assert len(parts) > 1 and parts[-1].error is None
    for part in parts[:-1]:  # a part is sent once it holds _PART_BYTES (one larger output goes alone)
        assert sum(len(o.data) for o in part.outputs) >= _PART_BYTES
        assert sum(len(o.data) for o in part.outputs[:-1]) < _PART_BYTES
    names = [o.output.name for p in parts for o in p.outputs]
    assert names == ["a/big.png.orig.png"] + [f"a/big.png.aug{i}.png" for i in range(3)]


@pytest.mark.parametrize(
    ("data", "error"),
    [(b"not an image", "not an image this block reads"), (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "PNG")],
)
def test_a_bad_input_is_the_last_parts_error_with_no_outputs(data: bytes, error: str):
    parts = list(stream(OPTIONS, job("a/x.png", data, copies=2)))
    assert len(parts) == 1 and parts[0].done and parts[0].outputs == []
    assert parts[0].error is not None and error in parts[0].error


def test_a_job_with_nothing_to_make_renders_nothing():
    (part,) = stream(OPTIONS, RenderJob(Sample("a/x.png", "a"), b"anything", ()))
    assert part.done and part.error is None and part.outputs == []


def test_is_huge_reads_the_header_only():
    assert is_huge(png((41, 30)), 40 * 30) and not is_huge(png((40, 30)), 40 * 30)
    assert not is_huge(b"not an image", 40 * 30)


def _render_all(pool: RenderPool, jobs: list[RenderJob], take) -> None:
    futures: list[Future[None]] = [pool.submit(j, take(j.sample.key)) for j in jobs]
    for future in futures:
        future.result(timeout=120)


class _WatchedLock:
    """The pool's huge-image lock, noting each lane that comes to it (``events``: ("lock", "")) before taking it."""

    def __init__(self, lock, events: list[tuple[str, str]], changed: threading.Condition) -> None:
        self.lock, self.events, self.changed = lock, events, changed

    def __enter__(self) -> None:
        with self.changed:
            self.events.append(("lock", ""))
            self.changed.notify_all()
        self.lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


def _overlap(huge_pixels: str, monkeypatch) -> list[tuple[str, str]]:
    """Render two small images with two workers; the first one's receiver waits for the other to start, or to
    come to the huge-image lock the first holds (then it cannot start before the first ends). Returns the order
    of ("start" | "end", key): interleaved when the two render at once."""
    events: list[tuple[str, str]] = []
    changed = threading.Condition()
    count = lambda kind: sum(e[0] == kind for e in events)  # noqa: E731

    def take(key: str):
        def receive(part: Part) -> None:
            with changed:
                events.append(("start", key))
                changed.notify_all()
                changed.wait_for(lambda: count("start") >= 2 or count("lock") >= 2, timeout=60)
                if part.done:
                    events.append(("end", key))

        return receive

    pool = RenderPool(dataclasses.replace(OPTIONS, huge_pixels=int(huge_pixels)), workers=2)
    pool._huge = _WatchedLock(pool._huge, events, changed)  # type: ignore[assignment]
    try:
        _render_all(pool, [job("a/0.png", png((40, 30), 0)), job("a/1.png", png((40, 30), 1))], take)
    finally:
        pool.shutdown()
    return [e for e in events if e[0] != "lock"]


def test_huge_images_render_one_at_a_time_across_workers(monkeypatch):
    """Two workers render two images at once; counted as huge (EDGE_AUGMENT_HUGE_PIXELS=100), the second starts
    only once the first has ended, though the first waits for it (without the lock it would start at once)."""
    both = _overlap("16000000", monkeypatch)
    assert [kind for kind, _ in both[:2]] == ["start", "start"]  # not huge: the test sees them render at once
    order = _overlap("100", monkeypatch)
    first, second = order[0][1], order[2][1]
    assert order == [("start", first), ("end", first), ("start", second), ("end", second)] and first != second


def test_the_pool_hands_each_sample_its_own_parts_and_shuts_down_cleanly():
    got: dict[str, list[Part]] = {}
    lock = threading.Lock()

    def take(key: str):
        def receive(part: Part) -> None:
            with lock:
                got.setdefault(key, []).append(part)

        return receive

    pool = RenderPool(OPTIONS, workers=2)
    try:
        jobs = [job(f"a/{i}.png", png((40, 30), i), copies=2) for i in range(5)] + [job("a/bad.png", b"nope")]
        _render_all(pool, jobs, take)
    finally:
        pool.shutdown()
    for i in range(5):
        names = [o.output.name for p in got[f"a/{i}.png"] for o in p.outputs]
        assert names == [f"a/{i}.png.orig.png", f"a/{i}.png.aug0.png", f"a/{i}.png.aug1.png"]
        assert got[f"a/{i}.png"][-1].done and got[f"a/{i}.png"][-1].error is None
    assert got["a/bad.png"][-1].error is not None and not got["a/bad.png"][-1].outputs


_FAULTS = """
import resource, sys
import numpy as np
from augment.run import pool
if sys.argv[1] == "reuse":
    pool._reuse_freed_memory()
def output():  # the arrays of a 1080p output, made and freed
    frame = np.ones(1080 * 1920 * 4, np.uint8)  # decoded, in Pillow's layout
    color = np.ones(1080 * 1920 * 3, np.uint8)  # converted for a kernel
    noise = np.ones(1080 * 1920 * 3, np.int16)  # its deviates
    del frame, color, noise
    encoded = [np.ones(n * 65536, np.uint8) for n in range(1, 6)]  # an encoder's growing buffers
for _ in range(3):
    output()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    output()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_workers_reuse_freed_frames_without_new_pages():
    """A worker's freed pixel arrays are reused from its heap, not mapped afresh from the kernel for each
    array (a page fault for every 4 KiB of every frame); counted, not timed."""
    faults = {}
    for mode in ("default", "reuse"):
        run = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, check=True)
        faults[mode] = int(run.stdout)
    assert faults["default"] > 20 * 1000, faults  # glibc's own thresholds: ~2,000 fresh pages an output
    assert faults["reuse"] < 200, faults


def _rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of process ``pid`` in KiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim, /proc")
def test_a_worker_gives_back_the_memory_of_a_huge_image():
    """Huge images render one at a time across workers to bound memory; a worker keeps freed arrays in its heap
    for speed, so after a huge image it hands them back, or two workers would each hold a huge image's worth."""
    import multiprocessing
    import time

    pool = RenderPool(dataclasses.replace(OPTIONS, huge_pixels=1_000_000), workers=1)
    try:
        _render_all(pool, [job("a/big.png", png((2400, 1600), noise=True), copies=3)], lambda key: lambda part: None)
        (worker,) = [p for p in multiprocessing.active_children() if p.name == "render"]
        deadline = time.monotonic() + 10
        while (rss := _rss_kib(worker.pid))[0] > rss[1] - 24 * 1024 and time.monotonic() < deadline:
            time.sleep(0.1)  # the worker trims after sending its last part
        assert rss[0] <= rss[1] - 24 * 1024, rss  # well under its peak: the image's 11 MiB frames went back
    finally:
        pool.shutdown()


_STARTUP_PROBE = """
import os, sys
spawned = []
sys.addaudithook(lambda event, args: spawned.append(args[0]) if event == "subprocess.Popen" else None)
import transform  # what the entrypoint imports, numpy and OpenCV among them
from augment.run import pool
from augment.sinks import local
pool._reuse_freed_memory()
pool._trim_heap()
pool.exit_with_parent(os.getppid())
print(len(os.listdir("/proc/self/task")), spawned, local._LIBC is not None)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="/proc, glibc")
def test_the_block_starts_one_thread_and_no_child_process():
    """numpy's and OpenCV's OpenBLAS would start a spinning thread per core at import (0.16 CPU-s a run), and
    ctypes.util.find_library forks ``ldconfig`` on each call; the block's parallelism is its workers."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    probe = subprocess.run(
        [sys.executable, "-c", _STARTUP_PROBE], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert probe.stdout.strip() == "1 [] True", probe.stderr  # threads, processes started, syncfs found


_NO_SYMBOLS_PROBE = """
import ctypes, os, sys, threading
from augment.run import pool
from augment.sinks import local
no_symbols = ctypes.CDLL(sys.argv[1])  # the dynamic loader: a real library, no prctl/mallopt/malloc_trim/syncfs
pool.libc = local.libc = lambda: no_symbols
pool._reuse_freed_memory()
pool._trim_heap()
pool.exit_with_parent(os.getppid())
print(threading.active_count(), local._libc())
"""

_NO_DLOPEN_PROBE = """
import ctypes
def no_dlopen(*args, **kwargs):
    raise OSError("Dynamic loading not supported")  # a statically linked interpreter (musl static builds)
ctypes.CDLL = no_dlopen
from augment.libc import libc
from augment.sinks import local
print(libc(), local._LIBC)
"""


_LOADER = next(iter(sorted(Path("/").glob("lib*/ld-linux*.so*"))), None)  # depends on no C library


@pytest.mark.skipif(sys.platform != "linux" or _LOADER is None, reason="Linux's dynamic loader as the library")
@pytest.mark.parametrize("probe", [_NO_SYMBOLS_PROBE, _NO_DLOPEN_PROBE], ids=["no-symbols", "no-dlopen"])
def test_a_c_library_without_the_calls_falls_back_instead_of_failing(probe: str):
    """A C library that lacks prctl/mallopt/malloc_trim/syncfs, or an interpreter that cannot dlopen at all:
    the worker watches its parent with a thread, memory tuning is skipped, the sink uses os.sync."""
    done = subprocess.run([sys.executable, "-c", probe, str(_LOADER)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == (["2", "None"] if probe is _NO_SYMBOLS_PROBE else ["None", "None"])


def test_importing_the_package_leaves_the_thread_settings_to_its_importer():
    """Only the block's own process (transform.py) sets one OpenBLAS thread: a library user's is left alone."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    probe = "import os, augment.cli, augment.run.pool; print(os.environ.get('OPENBLAS_NUM_THREADS'))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "None"
