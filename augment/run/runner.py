"""One run, end to end: source -> plan -> augment -> sink, with progress and report.

The run streams: the listing goes into an on-disk index (``augment.plan.index``), tasks are planned one sample
at a time from it, rendered and written through bounded queues (``augment.run.pipeline``), and booked into a
manifest that is appended as results arrive (``augment.books.manifest``). Nothing per sample or per output is
held in memory for the whole run. What is checked and decided before the first output: ``augment.run.prepare``.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from augment import __version__
from augment.books.manifest import Manifest
from augment.books.outdir import suffixed, write_box_labels
from augment.books.report import REPORT, Log, Progress, Status, TaskResult
from augment.books.review import dry_run, write_preview
from augment.config import RunConfig
from augment.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from augment.plan.holdout import report as holdout_report
from augment.plan.index import RunIndex
from augment.run.backends import sink_for, source_for
from augment.run.pipeline import Chunk, StreamOptions, chunked, execute
from augment.run.pool import RenderOptions
from augment.run.prepare import RunPlan, Stop, prepare
from augment.signals import EXIT_CODES, Interrupted, Signals
from augment.sinks import Sink, SinkError
from augment.sources import Source, SourceError

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_SIGINT", "EXIT_SIGTERM", "EXIT_USAGE", "Stop", "index_failure", "run"]
EXIT_SIGINT, EXIT_SIGTERM = EXIT_CODES["SIGINT"], EXIT_CODES["SIGTERM"]
EI_METADATA = "ei-metadata.json"  # EI reads it from --out-directory to update a clinical data item
_CHECKPOINT_SECONDS = 30.0  # how often outputs and the manifest journal are made durable during a run


def run(config: RunConfig, log: Log = print) -> int:
    """Run the block; return the process exit code (a BlockError says why the run could not go on)."""
    source, sink = source_for(config), sink_for(config, log)
    for note in config.run.notes:
        log(f"note: {note}")
    lock = (
        None if config.run.dry_run else sink.lock(config.plan.shard, config.sink.lock_wait)
    )  # a local folder: who may write beside whom
    index = RunIndex()
    try:
        with Signals() as signals:
            if lock is not None:
                lock.acquire()
            return _run(config, source, sink, index, log, lock, signals)
    except Interrupted as e:  # listing, planning: nothing half written (temps are removed)
        log(f"interrupted ({e.name}): stopped; finished outputs are kept and a rerun resumes")
        return e.code
    except sqlite3.Error as e:  # listing, planning or the final manifest: nothing half-recorded
        raise Stop(index_failure(e)) from None
    finally:
        index.close()
        if lock is not None:
            lock.release()


def _run(config: RunConfig, source: Source, sink: Sink, index: RunIndex, log: Log, lock: Any, signals: Signals) -> int:
    if lock is not None and (removed := sink.remove_stale_temps(lock)):
        log(f"removed {removed} temp file(s) left by an interrupted run")
    plan = prepare(config, source, sink, index, log, lock)
    if config.run.dry_run:
        return dry_run(config, source, sink, lambda: plan.tasks, plan.counts.tasks, plan.manifest, log)
    outcome = _augment(config, plan, source, sink, log, signals)
    return _finish(config, plan, outcome, source, sink, log, signals)


@dataclass
class _Outcome:
    progress: Progress
    interrupted: str | None  # "SIGINT" | "SIGTERM"
    upload: dict[str, Any] | None  # the EI upload summary


def _augment(config: RunConfig, plan: RunPlan, source: Source, sink: Sink, log: Log, signals: Signals) -> _Outcome:
    """Run the tasks through the pipeline, book every result as it arrives; stop cleanly on a signal."""
    counts = plan.counts
    log(
        f"edge-augment {__version__}: {counts.tasks} images in {counts.labels} classes from {source.describe()}"
        f" -> {counts.outputs} outputs in {sink.describe()} (recipe {config.plan.recipe.name},"
        f" seed {config.render.seed},"
        f" {config.run.workers} worker{'s' if config.run.workers != 1 else ''})"
    )
    manifest = plan.manifest
    progress = Progress(counts.tasks, log)
    options = StreamOptions(
        source,
        sink,
        RenderOptions(
            config.render.seed, config.render.encode, config.render.min_box_visibility, config.render.huge_pixels
        ),
        config.sink.overwrite,
        io_threads=config.run.io_threads,
        keep_boxless=config.render.keep_boxless,
        verify=config.sink.verify_outputs,
        since=config.plan.since is not None,
    )
    chunks = (
        Chunk(tasks, manifest.recorded(o.name for t in tasks for o in t.outputs)) for tasks in chunked(plan.tasks)
    )
    late: list[TaskResult] = []  # finished after an interruption: recorded too
    with signals.deferred():  # a signal is acted on between two results, then the uploads stop
        results = execute(chunks, options, config.run.workers, late, signals.received)
        try:
            saved_at = time.monotonic()
            try:
                for result in results:
                    _record_result(result, manifest, progress, sink)
                    if time.monotonic() - saved_at > _CHECKPOINT_SECONDS:  # a crash loses at most this much
                        manifest.checkpoint()
                        saved_at = time.monotonic()
            except (SinkError, SourceError):
                if signals.name is None:
                    raise  # (else a read or write cut by the stop itself: the stop is what happened)
            results.close()  # renders under way finish: their results are in ``late``
            if signals.name is not None:
                log(f"interrupted ({signals.name}): stopping; finished outputs are kept and a rerun resumes")
                for result in late:
                    _record_result(result, manifest, progress, sink)
            stopped_before = signals.name is not None
            upload = sink.close(interrupted=stopped_before, stopping=signals.received)
            if signals.name is not None and not stopped_before:  # during the last uploads
                log(f"interrupted ({signals.name}): stopping; the requests under way are cut, a rerun sends the rest")
        except (SinkError, SourceError, sqlite3.Error) as e:
            results.close()  # every render under way finishes; what it wrote was never recorded: removed
            removed = _remove_unrecorded(late, sink)
            sink.close(interrupted=True)
            manifest.close()
            message = index_failure(e) if isinstance(e, sqlite3.Error) else str(e)
            raise Stop(message + (f" ({removed} unrecorded outputs removed)" if removed else "")) from None
    return _Outcome(progress, signals.name, upload)


def _remove_unrecorded(results: list[TaskResult], sink: Sink) -> int:
    """Delete the outputs these results wrote (a run that stops on an error records none of them), so the
    folder holds no file its manifest does not record; how many."""
    removed = 0
    for record in (r for result in results for r in result.records if r.status is Status.WRITTEN):
        with contextlib.suppress(SinkError):
            sink.delete(record.name)
            removed += 1
    return removed


def index_failure(error: sqlite3.Error) -> str:
    """One line for a failure of the run's on-disk index (most often a full temp folder)."""
    return f"the run's temp index in {tempfile.gettempdir()} failed ({error}); free space there or set TMPDIR"


def _record_result(result: TaskResult, manifest: Manifest, progress: Progress, sink: Sink) -> None:
    """One result into the manifest journal and the progress counts; its outputs committed to the sink."""
    written = [r.entry for r in result.records if r.status is Status.WRITTEN and r.entry is not None]
    manifest.record(written, [r.name for r in result.records if r.status is Status.EXISTING])
    for record in result.records:
        if record.entry is not None:
            sink.commit(record.entry)
    progress.update(result)


def _finish(
    config: RunConfig, plan: RunPlan, done: _Outcome, source: Source, sink: Sink, log: Log, signals: Signals
) -> int:
    """The final manifest, labels files, preview and report; the summary; the exit code. A signal while the
    books are written is noted, not raised: they are finished and the report says so (only the preview stops)."""
    progress, manifest = done.progress, plan.manifest
    with _books(signals):
        if done.interrupted:
            manifest.close()  # the journal stays as it is: a rerun resumes from it
        else:
            manifest.finish(plan.outputs(), plan.planned_here)
        if plan.detection:
            lines = manifest.lines(plan.outputs(), plan.planned_here)
            write_box_labels(sink, lines, config.plan.shard, config.sink.books)
    _noted(done, signals, log)
    if config.run.preview and not done.interrupted:
        log("preview: drawing the contact sheet")
        try:
            write_preview(config, source, sink, plan.tasks, log)
        except Interrupted as e:  # the outputs are complete: the report still says so
            log(f"interrupted ({e.name}) during the preview: outputs and manifest are complete, no preview")
            done.interrupted = e.name
    with _books(signals):
        _report(config, plan, done, sink, log)
    _noted(done, signals, log)
    return _exit_code(config, plan, done, progress.failed, config.run.failure_budget(plan.counts.tasks), log)


@contextlib.contextmanager
def _books(signals: Signals) -> Iterator[None]:
    """Writing the books: a signal is noted, not raised; a write the stop cut short (S3 requests get a grace
    period, then are cut) is the stop, not an error: a rerun resumes from the journal."""
    try:
        with signals.deferred():
            yield
    except SinkError:
        if signals.name is None:
            raise


def _noted(done: _Outcome, signals: Signals, log: Log) -> None:
    """A signal noted while the books were written: the run stops there (143/130), its books complete."""
    if signals.name is not None and not done.interrupted:
        done.interrupted = signals.name
        log(f"interrupted ({signals.name}) while the books were written: stopped once they were complete")


def _report(config: RunConfig, plan: RunPlan, done: _Outcome, sink: Sink, log: Log) -> None:
    """report.json (and EI's metadata file), then the summary lines."""
    progress, upload = done.progress, done.upload
    budget = config.run.failure_budget(plan.counts.tasks)
    report = progress.report(
        {
            "run": plan.header,
            "copies": config.plan.copies,
            "include_originals": config.plan.include_originals,
            "workers": config.run.workers,
            "skipped_files": [{"source": k, "reason": r} for k, r in plan.listing.skipped],
            "skipped_files_not_listed": plan.listing.skipped_count - len(plan.listing.skipped),
            "empty_folders": plan.listing.empty_folders,
            "metadata": config.run.metadata,
            "interrupted": done.interrupted,
            "failure_budget": budget,
        }
    )
    report.update(_scale_report(config, plan, progress))
    if config.plan.test_fraction:
        report["holdout"] = holdout_report(plan.holdout, config.plan.test_fraction)
    if upload is not None:
        report["upload"] = upload
    sink.settle()  # the journal parts' deletes: a refused one fails the run before a report says it went well
    sink.write_text(
        config.sink.books + suffixed(REPORT, config.plan.shard.suffix()),
        json.dumps(report, indent=2, sort_keys=True) + "\n",
    )
    if config.sink.write_ei_metadata:
        sink.write_text(EI_METADATA, _ei_metadata(report, config))
    for line in progress.summary_lines():
        log(line)
    if config.plan.since is not None:
        s = report["since"]
        log(f"since {s['time']}: {s['new']} new or modified ({s['done']} done), {s['unchanged']} unchanged (skipped)")


def _exit_code(config: RunConfig, plan: RunPlan, done: _Outcome, failed: int, budget: int, log: Log) -> int:
    if done.interrupted:
        return EXIT_SIGINT if done.interrupted == "SIGINT" else EXIT_SIGTERM
    if failed > budget:
        log(
            f"FAILED: {failed} of {plan.counts.tasks} images could not be augmented "
            f"(allowed: {budget}, from --max-failures {config.run.max_failures:g})"
        )
        return EXIT_FAILED
    if done.upload is not None and done.upload["failed"]:
        log(f"FAILED: {done.upload['failed']} file(s) were not accepted by the project; see the ERROR upload lines")
        return EXIT_FAILED
    if failed:
        log(f"done with {failed} bad input(s) skipped (allowed: {budget}); see the ERROR lines above")
    return EXIT_OK


def _ei_metadata(report: dict[str, Any], config: RunConfig) -> str:
    """``ei-metadata.json``: EI merges these (string) values into the clinical data item's metadata."""
    totals = report["totals"]
    values = {
        "augment_outputs": totals["written"] + totals["existing"],
        "augment_originals": totals["originals"],
        "augment_failed": totals["failed"],
        "augment_recipe": config.plan.recipe.name,
        "augment_seed": config.render.seed,
        "augment_version": __version__,
    }
    body = {"version": 1, "action": "add", "metadata": {k: str(v) for k, v in values.items()}}
    return json.dumps(body, indent=2, sort_keys=True) + "\n"


def _scale_report(config: RunConfig, plan: RunPlan, progress: Progress) -> dict[str, Any]:
    extra: dict[str, Any] = {"shard": {"index": config.plan.shard.index, "count": config.plan.shard.count}}
    if config.plan.since is not None:
        extra["since"] = {
            "time": config.plan.since.isoformat(),
            "new": plan.counts.tasks,
            "unchanged": plan.counts.unchanged,
            "done": plan.counts.tasks - progress.failed,
        }
    if config.plan.balance:
        extra["balance"] = plan.balance_table
    return extra
