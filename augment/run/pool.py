"""The rendering side of a run: worker processes that turn source bytes into output bytes, streamed.

Workers do no I/O: the main process reads sources and writes outputs (``augment.run.pipeline``), so a worker
never waits on a store and the number of requests in flight does not follow the CPU count. A worker renders
one sample at a time and sends its outputs back as they are encoded, in parts of at most ``_PART_BYTES``
(one larger output goes alone); it waits while the main process is behind, so what a sample costs in memory
does not grow with ``--copies``. The main process drives each worker from a thread (a lane). When a worker
dies (the kernel's out-of-memory killer, a ``kill -9``), the sample it was rendering fails with an error
naming it, and a new worker takes its place.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from PIL import Image

from augment.libc import libc
from augment.plan.samples import Sample
from augment.plan.tasks import PlannedOutput
from augment.render.codec import SNIFFED_FORMATS, DecodeError, EncodeOptions, name_mismatch
from augment.render.engine import Rendered, iter_render
from augment.render.ops import pixels

_PART_BYTES = 1024 * 1024  # outputs sent back together (small images: one message per sample)
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_SIGNAL_GRACE = 0.5  # seconds to let a signal that also killed a worker reach this process
_OOM_SCORE_ADJ = 500  # added to a worker's: the kernel kills a worker, not the main process, when memory runs out


@dataclass(frozen=True)
class RenderOptions:
    """What a worker needs besides the bytes: fixed for the run."""

    seed: int
    encode: EncodeOptions
    min_box_visibility: float
    huge_pixels: int  # images over this many pixels render one at a time across workers (``is_huge``)


@dataclass(frozen=True)
class RenderJob:
    """One sample to render: its bytes and the outputs to make of them."""

    sample: Sample
    data: bytes
    todo: tuple[PlannedOutput, ...]
    huge: bool = False  # over ``huge_pixels`` (decided once, by the pool, from the header)


@dataclass
class Part:
    """Some outputs of a sample, in order; the last part (``done``) says how the sample ended."""

    outputs: list[Rendered] = field(default_factory=list)
    done: bool = False
    error: str | None = None  # set on the last part: the outputs sent before it are not to be kept
    warnings: list[str] = field(default_factory=list)


Receiver = Callable[[Part], None]  # takes each part of a sample as it arrives (in a lane thread)


def stream(options: RenderOptions, job: RenderJob) -> Iterator[Part]:
    """Render ``job``'s outputs, in parts; a bad input becomes the last part's ``error`` (never an exception)."""
    sample, todo, warnings = job.sample, job.todo, []
    batch, size = [], 0
    error = None
    try:
        if todo and (mismatch := name_mismatch(job.data, sample.key, {o.image_format for o in todo})):
            raise DecodeError(mismatch)
        if todo:
            outputs = iter_render(sample.key, job.data, todo, options.seed, options.encode, sample.boxes,
                                  options.min_box_visibility, warnings)  # fmt: skip
            for rendered in outputs:
                batch.append(rendered)
                size += len(rendered.data)
                if size >= _PART_BYTES:
                    yield Part(batch)
                    batch, size = [], 0
    except DecodeError as e:
        error = str(e)
    except (OSError, ValueError, TypeError, ArithmeticError, MemoryError) as e:  # e.g. an encoder refusing a mode
        error = f"augmentation failed: {type(e).__name__}: {e}"
    yield Part([] if error else batch, True, error, warnings)


class RenderPool:
    """``workers`` processes (one for ``--workers 1`` too: the kernel's out-of-memory killer then takes a
    worker and one image, not the run), each fed one sample at a time, in the order submitted. Images over
    ``huge_pixels`` are rendered one at a time across workers."""

    def __init__(self, options: RenderOptions, workers: int, stopping: Callable[[], bool] = lambda: False) -> None:
        self.options, self.stopping = options, stopping
        self._queue: deque[tuple[RenderJob, Receiver, Future[None]]] = deque()
        self._ready = threading.Condition()
        self._closing = False
        self._huge, self._several = threading.Lock(), workers > 1
        # Workers are forked now, from this thread, before any lane thread starts; OpenCV set to one thread
        # first: a child that inherits OpenCV's thread pool with its threads gone deadlocks in its first OpenCV
        # call (reproduced: a library caller or a test that used OpenCV before the run).
        pixels.configure_threads()
        lanes = [_Lane(self, _Worker(options)) for _ in range(max(1, workers))]
        self._threads = [threading.Thread(target=lane.run, name=f"lane-{i}", daemon=True) for i, lane in
                         enumerate(lanes)]  # fmt: skip
        for thread in self._threads:
            thread.start()

    def submit(self, job: RenderJob, receiver: Receiver) -> Future[None]:
        """Queue ``job``; ``receiver`` gets its parts; the future ends when the last part was taken (it is
        cancelled if the pool shuts down first)."""
        future: Future[None] = Future()
        with self._ready:
            self._queue.append((job, receiver, future))
            self._ready.notify()
        return future

    def shutdown(self) -> None:
        """Cancel what has not started, let the samples being rendered finish, stop the workers."""
        with self._ready:
            self._closing = True
            while self._queue:
                self._queue.popleft()[2].cancel()
            self._ready.notify_all()
        for thread in self._threads:
            thread.join()

    def _next(self) -> tuple[RenderJob, Receiver, Future[None]] | None:
        with self._ready:
            self._ready.wait_for(lambda: self._queue or self._closing)
            return self._queue.popleft() if self._queue and not self._closing else None

    def _huge_lock(self, job: RenderJob) -> Any:
        return self._huge if self._several and job.huge else contextlib.nullcontext()


class _Lane:
    """A thread of the main process that feeds one worker and hands its parts to the receivers."""

    def __init__(self, pool: RenderPool, worker: _Worker) -> None:
        self.pool, self.worker = pool, worker

    def run(self) -> None:
        try:
            while (item := self.pool._next()) is not None:
                job, receiver, future = item
                if not future.set_running_or_notify_cancel():
                    continue
                job = dataclasses.replace(job, huge=is_huge(job.data, self.pool.options.huge_pixels))
                try:
                    with self.pool._huge_lock(job):
                        self._render(job, receiver)
                except BaseException as e:  # noqa: BLE001 - handed to whoever waits for the sample
                    future.set_exception(e)
                else:
                    future.set_result(None)
        finally:
            self.worker.stop()

    def _render(self, job: RenderJob, receiver: Receiver) -> None:
        if not self.worker.process.is_alive():  # it died idle: not this sample's doing
            self.worker.stop()
            self.worker = _Worker(self.pool.options)
        parts = self.worker.render(job)
        failure: BaseException | None = None
        try:
            for part in parts:
                if failure is None:
                    try:
                        receiver(part)
                    except BaseException as e:  # noqa: BLE001 - read the rest, so the worker is ready again
                        failure = e
        except WorkerDied as e:
            if e.stop_signal:  # a signal to the process group reaches this process too, a moment later
                time.sleep(_SIGNAL_GRACE)
            if self.pool.stopping():  # killed along with this process: not the sample's failure
                raise CancelledError from None
            self.worker = _Worker(self.pool.options)  # a fresh one for the next sample
            if failure is None:
                receiver(Part([], True, f"{e}; the sample was not augmented"))
        if failure is not None:
            raise failure


class WorkerDied(Exception):
    """The worker process ended while rendering a sample; the message says how."""

    def __init__(self, message: str, stop_signal: bool = False) -> None:
        super().__init__(message)
        self.stop_signal = stop_signal  # by SIGTERM, SIGINT or SIGHUP: maybe sent to the whole group


class _Worker:
    """One worker process and the main process's end of its pipe."""

    def __init__(self, options: RenderOptions) -> None:
        ours, theirs = multiprocessing.Pipe()
        self.process = multiprocessing.get_context().Process(
            target=_serve, args=(theirs, options, os.getpid()), name="render", daemon=True
        )
        self.process.start()
        theirs.close()  # so that the worker's death is an end-of-file here
        self.conn: Connection = ours

    def render(self, job: RenderJob) -> Iterator[Part]:
        try:
            self.conn.send(job)
            while True:
                part = self.conn.recv()
                yield part
                if part.done:
                    return
        except (EOFError, OSError):
            message = self._bury()
            code = self.process.exitcode
            raise WorkerDied(message, code is not None and -code in _STOP_SIGNALS) from None

    def _bury(self) -> str:
        self.conn.close()
        self.process.join(10)
        code = self.process.exitcode
        if code is None:
            self.process.kill()
            self.process.join()
            return "the worker rendering it stopped answering"
        if code < 0:
            name = signal.Signals(-code).name
            hint = " (the kernel's out-of-memory killer sends it: see docs/performance.md, 'Memory and scale')"
            return f"the worker rendering it was killed by {name}" + (hint if -code == signal.SIGKILL else "")
        return f"the worker rendering it exited with code {code}"

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.conn.send(None)
        self.process.join(10)
        if self.process.exitcode is None:
            self.process.kill()
            self.process.join()
        self.conn.close()


def _serve(conn: Connection, options: RenderOptions, parent: int) -> None:
    """A worker's loop: a job in, its parts out, until None or the main process goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides how to stop
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    exit_with_parent(parent)
    _prefer_oom_kill()
    _reuse_freed_memory()
    pixels.configure_threads()
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        for part in stream(options, job):
            conn.send(part)
        if job.huge:  # rendered alone to bound memory: give its memory back
            _trim_heap()


def _prefer_oom_kill() -> None:
    """Raise this process's ``oom_score_adj`` (allowed without privilege): a worker holds the pixels, and
    losing it costs one sample, where losing the main process costs the run and its report."""
    path = "/proc/self/oom_score_adj"
    with contextlib.suppress(OSError, ValueError):
        with open(path) as f:
            current = int(f.read())
        with open(path, "w") as f:
            f.write(str(min(1000, max(current, 0) + _OOM_SCORE_ADJ)))


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's mallopt parameters
_TRIM_BYTES = 256 * 1024 * 1024


def _reuse_freed_memory() -> None:
    """Let freed pixel arrays be reused: glibc's malloc maps large arrays (a 1080p frame is 6-8 MB, a 12 MP one
    36-48 MB) afresh from the kernel and unmaps them when freed, a page fault (and the kernel zeroing the page)
    for every 4 KiB of every array an output makes. Here every array comes from the worker's heap, and what it
    freed stays there (up to ``_TRIM_BYTES`` of it) for the next arrays: its peak is what it was (after a huge
    image, rendered alone to bound memory, it is given back: ``_trim_heap``). Measured on
    a run of 240 1080p JPEG outputs: minor page faults 69,000 -> 28,000, CPU 2-3 % less; 32 12 MP outputs:
    CPU 15 % less (bench/photos.py)."""
    mallopt = getattr(libc(), "mallopt", None)  # glibc's (musl's does nothing)
    if mallopt is not None:
        mallopt(_M_MMAP_MAX, 0)
        mallopt(_M_TRIM_THRESHOLD, _TRIM_BYTES)


def _trim_heap() -> None:
    """Return the worker's free heap memory to the kernel (glibc's malloc_trim), so that the memory a huge
    image took is not held on to while another worker renders the next one."""
    trim = getattr(libc(), "malloc_trim", None)
    if trim is not None:
        trim(0)


def is_huge(data: bytes, limit: int) -> bool:
    """From the header only (nothing decoded): is this image over ``limit`` pixels? Such images are rendered
    one at a time across workers: rendering takes 20-30 bytes a pixel at its peak (the heavy preset, one
    worker: 333 MiB for 12 MP, 935 MiB for 48 MP; bench/photos.py --memory), so a few 48 MP images at once
    would still need several GB (``EDGE_AUGMENT_HUGE_PIXELS``, default 16 MP)."""
    try:
        with Image.open(io.BytesIO(data), formats=SNIFFED_FORMATS) as image:
            width, height = image.size
    except Exception:  # noqa: BLE001 - not an image: decoding reports why
        return False
    return width * height > limit


_PR_SET_PDEATHSIG = 1


def exit_with_parent(parent: int) -> None:
    """Die when the main process dies, even by SIGKILL (which runs no cleanup in it): on Linux the kernel
    sends this worker SIGKILL (prctl PR_SET_PDEATHSIG); elsewhere a thread watches the parent pid."""
    prctl = getattr(libc(), "prctl", None)
    if prctl is None or prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    if os.getppid() != parent:  # it died before the signal was armed
        os._exit(1)


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)
