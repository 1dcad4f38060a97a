"""The rendering side of a run: worker processes that turn source bytes into output bytes.

Workers do no I/O: the main process reads sources and writes outputs (``augment.pipeline``), so a worker
never waits on a store and the number of requests in flight does not follow the CPU count. A worker renders
all outputs of a sample or none, so a bad image never leaves some of its outputs behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import hashlib
import io
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from augment.boxes import DEFAULT_MIN_BOX_VISIBILITY
from augment.codec import DecodeError, EncodeOptions
from augment.engine import Rendered, render
from augment.plan import PlannedOutput
from augment.samples import Sample


@dataclass(frozen=True)
class RenderSettings:
    """What a worker needs besides the bytes: fixed for the run."""

    seed: int
    encode: EncodeOptions
    min_box_visibility: float = DEFAULT_MIN_BOX_VISIBILITY


@dataclass(frozen=True)
class RenderJob:
    """One sample to render: its bytes, the outputs still to make, and (--since) what to compare."""

    sample: Sample
    data: bytes
    todo: tuple[PlannedOutput, ...]
    everything: tuple[PlannedOutput, ...]  # all its planned outputs: made again if the source changed
    made_from: str | None = None  # --since: sha256 of the bytes its recorded outputs were made from


@dataclass
class RenderResult:
    source_sha256: str
    outputs: list[Rendered] = field(default_factory=list)
    redo_all: bool = False  # --since: the source's bytes changed, so every output was made again
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


def render_job(settings: RenderSettings, job: RenderJob) -> RenderResult:
    """Render ``job``'s outputs; a bad input becomes ``error`` (never an exception)."""
    result = RenderResult(hashlib.sha256(job.data).hexdigest())
    todo = job.todo
    if job.made_from is not None and job.made_from != result.source_sha256:
        todo, result.redo_all = job.everything, True
    if not todo:
        return result
    one_at_a_time = _HUGE_LOCK if _HUGE_LOCK is not None and _is_huge(job.data) else contextlib.nullcontext()
    sample = job.sample
    try:
        with one_at_a_time:
            result.outputs = render(
                sample.key,
                job.data,
                todo,
                settings.seed,
                settings.encode,
                sample.boxes,
                settings.min_box_visibility,
                result.warnings,
            )
    except DecodeError as e:
        result.error = str(e)
    except (OSError, ValueError, TypeError, ArithmeticError, MemoryError) as e:  # e.g. an encoder refusing a mode
        result.error = f"augmentation failed: {type(e).__name__}: {e}"
    return result


def render_pool(settings: RenderSettings, workers: int) -> Executor:
    """``workers`` processes (one thread in this process for 1) that run ``render_jobs``."""
    if workers <= 1:
        _init_settings(settings)
        return ThreadPoolExecutor(1, thread_name_prefix="render")
    huge = multiprocessing.get_context().Lock()  # one huge image at a time across workers (see huge_pixels)
    pool = ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(settings, os.getpid(), huge))
    pool.submit(int).result()  # start the workers now, from this thread, before the run starts its threads
    return pool


def render_jobs(jobs: list[RenderJob]) -> list[RenderResult]:
    """In a worker (or the render thread): render a chunk of samples."""
    assert _SETTINGS is not None
    return [render_job(_SETTINGS, job) for job in jobs]


_SETTINGS: RenderSettings | None = None
_HUGE_LOCK: Any = None  # a multiprocessing lock shared by the workers, or None with one worker


def _init_settings(settings: RenderSettings, huge: Any = None) -> None:
    global _SETTINGS, _HUGE_LOCK
    _SETTINGS, _HUGE_LOCK = settings, huge


def huge_pixels() -> int:
    """Images over this many pixels are rendered one at a time across workers: rendering takes about 110
    bytes a pixel at its peak (the heavy preset: 1.4 GB for 12 MP, measured), so two 48 MP images at once
    would need over 10 GB. ``EDGE_AUGMENT_HUGE_PIXELS`` overrides the default of 16 MP."""
    return int(os.environ.get("EDGE_AUGMENT_HUGE_PIXELS", "16000000"))


def _is_huge(data: bytes) -> bool:
    """From the header only (nothing decoded): is this image over ``huge_pixels``?"""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except Exception:  # noqa: BLE001 - not an image: decoding reports why
        return False
    return width * height > huge_pixels()


def _init_worker(settings: RenderSettings, parent: int, huge: Any = None) -> None:
    _init_settings(settings, huge)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides how to stop
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    exit_with_parent(parent)


_PR_SET_PDEATHSIG = 1


def exit_with_parent(parent: int) -> None:
    """Die when the main process dies, even by SIGKILL (which runs no cleanup in it): on Linux the kernel
    sends this worker SIGKILL (prctl PR_SET_PDEATHSIG); elsewhere a thread watches the parent pid."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True) if sys.platform == "linux" else None
    if libc is None or libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    if os.getppid() != parent:  # it died before the signal was armed
        os._exit(1)


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)
