"""Looking before using: the ``--preview`` contact sheet and the ``--dry-run`` plan (counts per class and
split, what a rerun would skip, an estimated time), built from the run's own plan, engine and seeds."""

from __future__ import annotations

import io
import time
from collections import Counter
from collections.abc import Callable, Iterable

from augment.books.done import is_done
from augment.books.manifest import Manifest
from augment.books.preview import MAX_CLASSES, build
from augment.books.report import Log
from augment.config import RunConfig
from augment.plan.tasks import Task
from augment.render.engine import iter_render
from augment.sinks import Sink
from augment.sources import Source

_TIMING_SAMPLES = 6  # originals rendered to estimate the time of a dry run


def write_preview(config: RunConfig, source: Source, sink: Sink, tasks: Iterable[Task], log: Log) -> None:
    """Render and store ``preview.png`` (and per-class sheets for many classes) in the destination (in its
    hidden bookkeeping folder when EI imports it into a project: ``RunConfig.books``)."""
    sheets = build(tasks, source.read, config.render.seed, config.render.encode, config.render.min_box_visibility)
    for name, image in sheets.items():
        out = io.BytesIO()
        image.save(out, "PNG", optimize=True)
        sink.write(config.sink.books + name, out.getvalue())
    names = [config.sink.books + name for name in sheets]
    shown = ", ".join(names) if len(names) <= 3 else f"{names[0]} and {len(names) - 1} per-class sheets"
    left_out = f" ({sheets.left_out} more classes not shown: at most {MAX_CLASSES})" if sheets.left_out else ""
    log(f"preview: {shown} in {sink.describe()}{left_out}")


def dry_run(
    config: RunConfig,
    source: Source,
    sink: Sink,
    tasks: Callable[[], Iterable[Task]],
    count: int,
    manifest: Manifest,
    log: Log,
) -> int:
    """Print what a run would do (``tasks()``: the ``count`` tasks to run) and write only the preview;
    return the exit code (0)."""
    planned: Counter[str] = Counter()
    skip: Counter[str] = Counter()
    originals: Counter[str] = Counter()
    categories: Counter[str] = Counter()
    step = max(1, count // _TIMING_SAMPLES)
    timing: list[Task] = []  # a few originals spread over the plan, rendered to estimate the time
    for i, task in enumerate(tasks()):
        label = task.sample.label
        originals[label] += 1
        if i % step == 0 and len(timing) < _TIMING_SAMPLES:
            timing.append(task)
        recorded = {} if config.sink.overwrite else manifest.recorded(o.name for o in task.outputs)
        for out in task.outputs:
            planned[label] += 1
            categories[out.category or "-"] += 1
            if is_done(out, recorded, sink, config.sink.verify_outputs):
                skip[label] += 1
    log("dry run: nothing is written except the preview")
    header = f"{'class':<24} {'originals':>9} {'outputs':>8} {'skip':>6} {'to make':>8}"
    log(header)
    for label in sorted(planned):
        todo = planned[label] - skip[label]
        log(f"{label[:24]:<24} {originals[label]:>9} {planned[label]:>8} {skip[label]:>6} {todo:>8}")
    to_make = sum(planned.values()) - sum(skip.values())
    if set(categories) != {"-"}:
        log("split: " + ", ".join(f"{name} {n}" for name, n in sorted(categories.items())))
    per_output = _seconds_per_output(config, source, timing)
    if per_output is not None:
        estimate = per_output * to_make / max(1, config.run.workers)
        log(f"estimated time: {_duration(estimate)} for {to_make} outputs with {config.run.workers} worker(s)")
    write_preview(config, source, sink, tasks(), log)
    return 0


def _seconds_per_output(config: RunConfig, source: Source, tasks: list[Task]) -> float | None:
    made, start = 0, time.perf_counter()
    for task in tasks:
        try:  # one output held at a time, whatever --copies
            for _ in iter_render(
                task.sample.key, source.read(task.sample), task.outputs, config.render.seed, config.render.encode
            ):
                made += 1
        except Exception:  # noqa: BLE001 - a bad sample only weakens the estimate
            continue
    return (time.perf_counter() - start) / made if made else None


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"~{seconds:.0f} s"
    if seconds < 5400:
        return f"~{seconds / 60:.0f} min"
    return f"~{seconds / 3600:.1f} h"
