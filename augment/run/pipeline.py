"""The streaming part of a run: read -> render -> write, overlapped, with everything in flight bounded.

Tasks arrive in plan order, grouped in chunks. Each chunk is driven by a thread of this process: it checks
which outputs are already done and reads the sources (on the I/O threads, ``io_threads`` requests at
once; with --since, a source whose bytes changed since its recorded outputs were made has them all made
again, decided right after the read), hands each sample to the render pool (its bytes and the outputs to
make), and writes its outputs as the worker sends them (on the I/O threads again, at most ``_OUTPUT_BYTES``
at once), so memory grows neither with the dataset nor with the copies. At most ``window`` chunks are under
way, and results come back in plan order. Stores far away cost latency, not throughput: while one chunk
waits on the network others render.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from augment.books.done import Recorded, is_done
from augment.books.report import OutputRecord, Status, TaskResult
from augment.plan.tasks import Task
from augment.run.pool import Part as RenderPart
from augment.run.pool import RenderJob, RenderOptions, RenderPool
from augment.sinks import OutputEntry, Sink
from augment.sources import Source

_CHUNK = 8  # samples a driver reads together and hands back in plan order
_POLL_SECONDS = 0.2  # how often a wait for results looks for a stop request
_WINDOW_BYTES = 16 * 1024 * 1024  # source bytes of the chunks under way (large images: fewer chunks at once)
_CHUNK_BYTES = 4 * 1024 * 1024  # ... or fewer when they are large: bounds bytes in flight per chunk
_OUTPUT_BYTES = 32 * 1024 * 1024  # outputs being written at once (or one larger output)


@dataclass(frozen=True)
class Chunk:
    """Tasks handed out together, with what earlier runs recorded for their outputs."""

    tasks: list[Task]
    recorded: Recorded


@dataclass(frozen=True)
class StreamOptions:
    """What the streaming part of a run needs: fixed for the run."""

    source: Source
    sink: Sink
    render: RenderOptions
    overwrite: bool
    io_threads: int  # source reads and output writes in flight (EDGE_AUGMENT_IO_THREADS)
    keep_boxless: bool = False  # keep a copy whose boxes were all cut off (as a background image)
    verify: bool = False  # --verify-outputs: a recorded output must also have its recorded sha256
    since: bool = False  # --since: a source whose bytes changed since its recorded outputs were made redoes them


def chunked(tasks: Iterable[Task]) -> Iterator[list[Task]]:
    """Tasks in groups of ``_CHUNK``, or fewer once their sources add up to ``_CHUNK_BYTES``."""
    chunk: list[Task] = []
    size = 0
    for task in tasks:
        chunk.append(task)
        size += task.sample.size
        if len(chunk) >= _CHUNK or size >= _CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def execute(
    chunks: Iterable[Chunk],
    options: StreamOptions,
    workers: int,
    late: list[TaskResult],
    stopping: Callable[[], bool] = lambda: False,
) -> Iterator[TaskResult]:
    """Results in plan order; at most ``workers + io_threads // _CHUNK`` chunks (and at least 2) under way,
    and no more than ``_WINDOW_BYTES`` of their sources (but always one chunk).

    When ``stopping()`` turns true (a signal), no more results are handed out: chunks not yet rendering are
    dropped, the others finish, and their results go to ``late`` so their outputs are recorded too."""
    threads = options.io_threads
    window_size = workers + max(2, threads // _CHUNK)
    stop = threading.Event()
    renderers = RenderPool(options.render, workers, stopping)  # workers are forked now, before other threads
    io = ThreadPoolExecutor(threads, thread_name_prefix="io")
    drivers = ThreadPoolExecutor(window_size, thread_name_prefix="chunk")
    driver = _Driver(options, io, renderers, stop)
    window: deque[tuple[Future[list[TaskResult] | None], int]] = deque()  # (driver, source bytes)
    handed = 0  # results of window[0] already handed out
    held = 0  # source bytes of the chunks in the window
    chunks = iter(chunks)
    waiting: Chunk | None = None
    try:
        while not stopping():
            while len(window) < window_size and (waiting := waiting or next(chunks, None)) is not None:
                size = sum(t.sample.size for t in waiting.tasks)
                if window and held + size > _WINDOW_BYTES:
                    break  # large images: wait for a chunk to finish first
                window.append((drivers.submit(driver.run, waiting, driver.submitted), size))
                driver.submitted += 1
                held += size
                waiting = None
            if not window:
                return
            head, size = window[0]
            if not wait([head], timeout=_POLL_SECONDS).done:
                continue  # look at ``stopping`` again
            results = head.result() or []
            while handed < len(results) and not stopping():
                handed += 1
                yield results[handed - 1]
            if handed == len(results):
                window.popleft()
                held -= size
                handed = 0
    finally:
        stop.set()
        with driver.turns:
            driver.turns.notify_all()
        renderers.shutdown()
        drivers.shutdown(wait=True, cancel_futures=True)
        io.shutdown(wait=True)
        for i, (future, _) in enumerate(window):
            if future.done() and not future.cancelled() and future.exception() is None:
                late.extend((future.result() or [])[handed if i == 0 else 0 :])


@dataclass
class _Staged:
    """A task after the I/O threads looked at it: what is done, what to make, the source's bytes."""

    task: Task
    result: TaskResult
    kept: list[OutputRecord]  # earlier runs' outputs it keeps if its render fails
    todo: tuple = ()
    data: bytes | None = None  # the source's bytes, until they are handed to a worker
    source_sha256: str = ""
    rendering: bool = False  # read, with outputs to make: it goes to a worker
    writes: list[tuple[str, Future[None]]] = field(default_factory=list)  # this run's outputs being written


class _Budget:
    """Bytes of outputs being written at once: a lane waits while it is spent (so a worker waits too), and
    one output larger than the whole budget goes alone."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0
        self.changed = threading.Condition()

    def take(self, n: int) -> None:
        with self.changed:
            self.changed.wait_for(lambda: self.used == 0 or self.used + n <= self.limit)
            self.used += n

    def give(self, n: int) -> None:
        with self.changed:
            self.used -= n
            self.changed.notify_all()


class _Driver:
    def __init__(
        self, options: StreamOptions, io: ThreadPoolExecutor, renderers: RenderPool, stop: threading.Event
    ) -> None:
        self.options, self.io, self.renderers, self.stop = options, io, renderers, stop
        self.submitted = 0  # chunks handed to drivers so far
        self.turn = 0  # the chunk whose render is submitted next: renders start in plan order
        self.turns = threading.Condition()
        self.budget = _Budget(_OUTPUT_BYTES)

    def run(self, chunk: Chunk, turn: int) -> list[TaskResult] | None:
        """Stage, render and write one chunk; None if the run stopped before it was rendered (the samples
        whose render was cancelled by a stop are left out: their outputs are removed)."""
        if self.stop.is_set():
            return None
        staged = list(self.io.map(lambda t: self._stage(t, chunk.recorded), chunk.tasks))
        with self.turns:  # wait for the chunks before this one to hand over their renders
            self.turns.wait_for(lambda: self.turn == turn or self.stop.is_set())
            if self.stop.is_set():
                return None
            renders = {
                id(s): self.renderers.submit(RenderJob(s.task.sample, s.data, s.todo), functools.partial(self._take, s))
                for s in staged
                if s.rendering
            }
            self.turn += 1
            self.turns.notify_all()
        for s in staged:
            s.data = None  # the job holds them until a worker has its own copy
        done = []
        for s in staged:
            render = renders.get(id(s))
            try:
                if render is not None:
                    render.result()
            except CancelledError:
                self._discard(s)
                continue
            if s.result.error is not None:
                self._discard(s)
            for _, write in s.writes:
                write.result()  # a SinkError stops the run
            done.append(s.result)
        return done

    def _stage(self, task: Task, recorded: Recorded) -> _Staged:
        """(I/O thread) Which outputs are done; the source's bytes if anything is to be made, or (--since) if
        earlier runs recorded some of its outputs: made from other bytes than these, they are all made again."""
        sample, options = task.sample, self.options
        kept, todo = [], []
        for output in task.outputs:
            if not options.overwrite and is_done(output, recorded, options.sink, options.verify):
                kept.append(OutputRecord(output.name, Status.EXISTING, recorded[output.name]))
            else:
                todo.append(output)
        staged = _Staged(task, TaskResult(sample.key, sample.label, list(kept)), kept, tuple(todo))
        made_from = {recorded[o.name].source_sha256 for o in task.outputs if o.name in recorded}
        if not todo and not (options.since and made_from):
            return staged
        try:
            data = options.source.read(sample)
        except OSError as e:  # gone or unreadable since listing; a whole-source failure raises SourceError
            staged.result.error = f"cannot read: {e.strerror or e}"
            return staged
        staged.data, staged.source_sha256 = data, hashlib.sha256(data).hexdigest()
        if options.since and made_from - {staged.source_sha256}:  # the source changed: nothing recorded is kept
            staged.todo, staged.result.records = task.outputs, []
        staged.rendering = bool(staged.todo)
        return staged

    def _take(self, staged: _Staged, part: RenderPart) -> None:
        """(a lane thread) Book a part of a render and start writing its outputs, within the byte budget."""
        result, sample, options = staged.result, staged.task.sample, self.options
        for out in part.outputs:
            output = out.output
            if out.boxes == [] and sample.boxes and not options.keep_boxless:
                result.records.append(OutputRecord(output.name, Status.DROPPED))
                continue
            size = len(out.data)
            self.budget.take(size)
            write = self.io.submit(options.sink.write, output.name, out.data)
            write.add_done_callback(lambda _, n=size: self.budget.give(n))
            staged.writes.append((output.name, write))
            entry = OutputEntry(
                output=output.name,
                source=sample.key,
                label=sample.label,
                variant=output.variant,
                seed=options.render.seed,
                ops=tuple(out.ops),
                sha256=out.sha256,
                size=size,
                source_sha256=staged.source_sha256,
                boxes=None if out.boxes is None else tuple(b.to_json() for b in out.boxes),
                category=output.category,
            )
            result.records.append(OutputRecord(output.name, Status.WRITTEN, entry))
        if part.done:
            result.warnings += part.warnings
            result.error = part.error

    def _discard(self, staged: _Staged) -> None:
        """A sample that failed (or was cancelled) after some of its outputs were written: remove them, so an
        image has all its outputs or none."""
        for name, write in staged.writes:
            with contextlib.suppress(Exception):
                write.result()
            self.options.sink.delete(name)
        staged.writes = []
        staged.result.records = list(staged.kept)
