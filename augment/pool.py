"""The parallel part of a run: a process pool over chunks of tasks, and what a worker does with one task.

Results come back in task order with a bounded number of chunks in flight, so memory does not grow with
the dataset. A worker reads a sample, renders all its outputs in memory and only then writes them, so a
bad image never leaves some of its outputs behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import hashlib
import io
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from PIL import Image

from augment.codec import DecodeError, EncodeOptions
from augment.engine import render
from augment.plan import Task
from augment.report import Manifest, OutputRecord, TaskResult
from augment.sinks import Sink
from augment.sources import Source

_CHUNK = 8  # samples per worker round-trip: amortises IPC for small images
_IN_FLIGHT_PER_WORKER = 4  # chunks queued per worker: bounds memory whatever the dataset size


@dataclass(frozen=True)
class WorkContext:
    source: Source
    sink: Sink
    seed: int
    encode: EncodeOptions
    overwrite: bool
    min_box_visibility: float = 0.3
    keep_boxless: bool = False  # keep a copy whose boxes were all cut off (as a background image)
    refresh: bool = False  # --since: check that recorded outputs were made from the source's current bytes
    verify: bool = False  # --verify-outputs: a recorded output must also have its recorded sha256


def execute(
    tasks: list[Task], manifest: Manifest, context: WorkContext, workers: int, late: list[TaskResult]
) -> Iterator[TaskResult]:
    """Results in task order; at most ``workers * _IN_FLIGHT_PER_WORKER`` chunks in flight.

    If the consumer stops early (interrupt), queued chunks are cancelled, running ones finish, and their
    results go to ``late`` so their outputs are recorded too.
    """
    chunks = (tasks[i : i + _CHUNK] for i in range(0, len(tasks), _CHUNK))
    jobs = ((chunk, _recorded(chunk, manifest), _made_from(chunk, manifest, context)) for chunk in chunks)
    if workers <= 1:
        for chunk, recorded, made_from in jobs:
            yield from _process_chunk(context, chunk, recorded, made_from)
        return
    huge = multiprocessing.get_context().Lock()  # one huge image at a time across workers (see huge_pixels)
    pool = ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(context, os.getpid(), huge))
    window: deque = deque()
    handed = 0  # results of window[0] already yielded

    def head() -> Iterator[TaskResult]:
        nonlocal handed
        for result in window[0].result()[handed:]:
            handed += 1
            yield result
        window.popleft()
        handed = 0

    try:
        for chunk, recorded, made_from in jobs:
            window.append(pool.submit(_process_in_worker, chunk, recorded, made_from))
            if len(window) >= workers * _IN_FLIGHT_PER_WORKER:
                yield from head()
        while window:
            yield from head()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for i, future in enumerate(window):
            if future.done() and not future.cancelled() and future.exception() is None:
                late.extend(future.result()[handed if i == 0 else 0 :])


Recorded = dict[str, tuple[int, str]]  # output name -> (bytes, sha256) from the manifest


def _recorded(chunk: list[Task], manifest: Manifest) -> Recorded:
    recorded: Recorded = {}
    for name in (o.name for t in chunk for o in t.outputs if o.name in manifest.previous):
        try:
            entry = json.loads(manifest.previous[name])
            recorded[name] = (int(entry.get("bytes", -1)), str(entry.get("sha256", "")))
        except (ValueError, TypeError, AttributeError):
            continue  # a damaged line: the output is made again
    return recorded


def intact(sink: Sink, name: str, expected: tuple[int, str], verify: bool) -> bool:
    """A recorded output is still there with its recorded size (a zero-byte or truncated file is not);
    with ``verify``, also with its recorded sha256."""
    size = getattr(sink, "size", None)
    if size is None:  # a sink that cannot tell sizes
        return sink.exists(name)
    if size(name) != expected[0] or expected[0] <= 0:
        return False
    if not verify:
        return True
    data = sink.read(name)  # type: ignore[attr-defined]
    return data is not None and hashlib.sha256(data).hexdigest() == expected[1]


_WORKER_CONTEXT: WorkContext | None = None
_HUGE_LOCK: Any = None  # a multiprocessing lock shared by the workers, or None with one worker


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


def _init_worker(context: WorkContext, parent: int, huge: Any = None) -> None:
    global _WORKER_CONTEXT, _HUGE_LOCK
    _WORKER_CONTEXT, _HUGE_LOCK = context, huge
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


def _made_from(chunk: list[Task], manifest: Manifest, context: WorkContext) -> dict[str, str] | None:
    """--since: for each sample with recorded outputs, the sha256 of the source bytes they were made from
    ("" if not recorded), so a worker can tell a resumed run (same bytes: skip) from a modified source (redo)."""
    if not context.refresh:
        return None
    made: dict[str, str] = {}
    for task in chunk:
        lines = [manifest.previous[o.name] for o in task.outputs if o.name in manifest.previous]
        if lines:
            made[task.sample.key] = json.loads(lines[0]).get("source_sha256", "")
    return made


def _process_in_worker(
    chunk: list[Task], recorded: Recorded, made_from: dict[str, str] | None = None
) -> list[TaskResult]:
    assert _WORKER_CONTEXT is not None
    return _process_chunk(_WORKER_CONTEXT, chunk, recorded, made_from)


def _process_chunk(
    context: WorkContext, chunk: list[Task], recorded: Recorded, made_from: dict[str, str] | None = None
) -> list[TaskResult]:
    return [process_task(context, task, recorded, (made_from or {}).get(task.sample.key)) for task in chunk]


def process_task(context: WorkContext, task: Task, recorded: Recorded, made_from: str | None = None) -> TaskResult:
    """Render and write every output of one sample not already done; a bad input becomes ``error``.

    ``made_from`` (--since): the sha256 of the source bytes its recorded outputs came from; if the source
    now has other bytes, every output is redone."""
    sample = task.sample
    result = TaskResult(sample.key, sample.label)
    todo = []
    for spec in task.outputs:
        if (
            not context.overwrite
            and spec.name in recorded
            and intact(context.sink, spec.name, recorded[spec.name], context.verify)
        ):
            result.records.append(OutputRecord(spec.name, spec.variant, "existing", ""))
        else:
            todo.append(spec)
    if not todo and made_from is None:
        return result
    try:
        data = context.source.read(sample)
    except OSError as e:  # gone or unreadable since listing; a whole-source failure raises SourceError
        result.error = f"cannot read: {e.strerror or e}"
        return result
    source_sha256 = hashlib.sha256(data).hexdigest()
    if made_from is not None and made_from != source_sha256:  # --since: the source changed; redo it all
        result.records, todo = [], list(task.outputs)
    if not todo:
        return result
    one_at_a_time = _HUGE_LOCK if _HUGE_LOCK is not None and _is_huge(data) else contextlib.nullcontext()
    try:
        with one_at_a_time:
            rendered = render(
                sample.key,
                data,
                tuple(todo),
                context.seed,
                context.encode,
                sample.boxes,
                context.min_box_visibility,
                result.warnings,
            )
    except DecodeError as e:
        result.error = str(e)
        return result
    except (OSError, ValueError, TypeError, ArithmeticError, MemoryError) as e:  # e.g. an encoder refusing a mode
        result.error = f"augmentation failed: {type(e).__name__}: {e}"
        return result
    for out in rendered:
        if out.boxes == [] and sample.boxes and not context.keep_boxless:
            result.records.append(OutputRecord(out.spec.name, out.spec.variant, "dropped", ""))
            continue
        context.sink.write(out.spec.name, out.data)
        line = {
            "output": out.spec.name,
            "source": sample.key,
            "label": sample.label,
            "variant": out.spec.variant,
            "seed": context.seed,
            "ops": out.ops,
            "sha256": out.sha256,
            "bytes": len(out.data),
            "source_sha256": source_sha256,
        }
        if out.boxes is not None:
            line["boxes"] = [b.to_json() for b in out.boxes]
        if out.spec.category is not None:
            line["category"] = out.spec.category
        result.records.append(
            OutputRecord(
                out.spec.name,
                out.spec.variant,
                "written",
                json.dumps(line, sort_keys=True),
            )
        )
    return result
