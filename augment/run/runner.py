"""One run, end to end: source -> plan -> augment -> sink, with progress and report.

The run streams: the listing goes into an on-disk index (``augment.plan.index``), tasks are planned one sample
at a time from it, rendered and written through bounded queues (``augment.run.pipeline``), and booked into a
manifest that is appended as results arrive (``augment.books.manifest``). Nothing per sample or per output is
held in memory for the whole run.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from augment import __version__
from augment.books.manifest import MANIFEST, Manifest, fingerprint
from augment.books.outdir import (
    check_manifests,
    foreign_images,
    input_inside_output,
    into_input,
    suffixed,
    write_box_labels,
)
from augment.books.report import REPORT, Log, Progress, Status, TaskResult
from augment.books.review import dry_run, write_preview
from augment.config import RunConfig
from augment.plan.holdout import notes as holdout_notes
from augment.plan.holdout import report as holdout_report
from augment.plan.index import Counts, RunIndex
from augment.plan.labels import boxes_by_key
from augment.plan.planner import Planner
from augment.plan.samples import ei_label_issue, printable
from augment.plan.selection import balance_lines
from augment.plan.tasks import PlanSettings, Task
from augment.render.codec import IMAGE_EXTENSIONS
from augment.render.engine import KERNELS
from augment.render.recipe import MAX_COPIES
from augment.run.backends import sink_for, source_for
from augment.run.pipeline import Chunk, StreamOptions, chunked, execute
from augment.run.pool import RenderOptions
from augment.signals import EXIT_CODES, Interrupted, Signals
from augment.sinks import Sink, SinkError
from augment.sources import Listing, Source, SourceError
from augment.storage.overlap import lands_in

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_SIGINT, EXIT_SIGTERM = EXIT_CODES["SIGINT"], EXIT_CODES["SIGTERM"]
EI_METADATA = "ei-metadata.json"  # EI reads it from --out-directory to update a clinical data item
_CHECKPOINT_SECONDS = 30.0  # how often outputs and the manifest journal are made durable during a run


class Stop(Exception):
    """The run cannot go on: the message is logged as an ERROR and ``code`` is the exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def run(config: RunConfig, log: Log = print) -> int:
    """Run the block; return the process exit code."""
    source, sink = source_for(config), sink_for(config, log)
    for note in config.notes:
        log(f"note: {note}")
    lock = None if config.dry_run else sink.lock(config.shard)  # a local folder: who may write beside whom
    index = RunIndex()
    try:
        with Signals() as signals:
            if lock is not None:
                lock.acquire()
            return _run(config, source, sink, index, log, lock, signals)
    except (Stop, SinkError) as e:
        log(f"ERROR: {e}")
        return e.code if isinstance(e, Stop) else EXIT_FAILED
    except Interrupted as e:  # listing, planning, the report: nothing half written (temps are removed)
        log(f"interrupted ({e.name}): stopped; finished outputs are kept and a rerun resumes")
        return e.code
    except sqlite3.Error as e:  # listing, planning or the final manifest: nothing half-recorded
        log(f"ERROR: {index_failure(e)}")
        return EXIT_FAILED
    finally:
        index.close()
        if lock is not None:
            lock.release()


def _run(config: RunConfig, source: Source, sink: Sink, index: RunIndex, log: Log, lock: Any, signals: Signals) -> int:
    if lock is not None and (removed := sink.remove_stale_temps(lock)):
        log(f"removed {removed} temp file(s) left by an interrupted run")
    plan = _prepare(config, source, sink, index, log, lock)
    if config.dry_run:
        return dry_run(config, source, sink, lambda: plan.tasks, plan.counts.tasks, plan.manifest, log)
    outcome = _augment(config, plan, source, sink, log, signals)
    return _finish(config, plan, outcome, source, sink, log)


@dataclass
class _Plan:
    """What a run will do, with per-class counts; the tasks themselves are in the index (``planner``)."""

    config: RunConfig
    planner: Planner
    listing: Listing  # what the source skipped (its samples are in the index)
    detection: bool  # the source has labels files: every sample has boxes (none listed = ``()``)
    manifest: Manifest
    header: dict[str, Any]
    holdout: dict[str, dict[str, int]] = field(default_factory=dict)
    balance_table: dict[str, Any] = field(default_factory=dict)
    counts: Counts = field(default_factory=Counts)

    @property
    def tasks(self) -> Iterator[Task]:
        """The tasks to run now (--since leaves unchanged ones out)."""
        return self.planner.tasks()

    def outputs(self) -> Iterator[tuple[list[str], bool]]:
        """This shard's output names per task in plan order, and whether the task runs now."""
        return (([o.name for o in task.outputs], runs) for task, runs in self.planner.planned())

    def planned_here(self, name: str) -> bool:
        return self.planner.index.planned_here(name)


@dataclass
class _Outcome:
    progress: Progress
    interrupted: str | None  # "SIGINT" | "SIGTERM"
    upload: dict[str, Any] | None  # the EI upload summary


def _prepare(config: RunConfig, source: Source, sink: Sink, index: RunIndex, log: Log, lock: Any) -> _Plan:
    """List the source into the index (reporting what it skips), decide the split and copies per original,
    plan every task once, load the earlier manifest; then, one run at a time (``lock.checking``), check
    every manifest in the destination and write this run's header."""
    if not config.dry_run:
        sink.prefetch()  # (S3: the destination is listed while the source is)
    listing = Listing(on_skip=lambda key, reason: log(f"skipped {printable(key)}: {reason}"))
    detection = list_source(source, index, listing)
    for warning in listing.warnings:
        log(f"warning: {printable(warning)}")
    for folder in listing.empty_folders:
        log(f"warning: folder {folder!r} has no images")
    if not index.count():
        raise Stop(f"no images found in {source.describe()} (looked for {_extensions()})")
    for label in index.labels():
        if issue := ei_label_issue(label):
            log(f"warning: label {label!r}: {issue}; class folders and labels files keep it, or use --upload-label")
    index.assign_holdout(config.test_fraction)
    settings = PlanSettings(config.recipe, config.copies, config.include_originals, config.layout, config.encode)
    header = _run_header(config, detection)
    manifest = Manifest(sink, header, config.overwrite, config.books + suffixed(MANIFEST, config.shard.suffix()), index)
    plan = _Plan(config, Planner(index, settings, config.shard), listing, detection, manifest, header)
    if config.balance:
        plan.balance_table = _balance(config, index, log)
    _plan_tasks(plan)
    with lock.checking() if lock is not None else contextlib.nullcontext():
        check_manifests(config, sink, index, manifest.name, header["fingerprint"], plan.planned_here)
        if not config.dry_run:
            if refusal := foreign_images(config, sink, index):
                raise Stop(refusal)
            manifest.start()  # the header (which settings the files belong to) lands before any output
    for line in holdout_notes(plan.holdout, config.test_fraction):
        log(line)
    return plan


def list_source(source: Source, index: RunIndex, listing: Listing) -> bool:
    """The source's samples into ``index``, with their boxes when it has labels files (a detection
    dataset: returns True); what it skips and warns of goes into ``listing``."""
    index.add_samples(source.scan(listing))
    if not listing.labels_files:
        return False
    index.attach_boxes(boxes_by_key(listing.labels_files, source.read_text, listing.warnings), source.label)
    return True


def _plan_tasks(plan: _Plan) -> None:
    """Plan every task once (PlanError when two sources would write one name), refusing an output that would
    land in the input folder; count this shard's work. Stop when nothing would be written."""
    input_folder = input_inside_output(plan.config)

    def check(name: str) -> None:
        if input_folder is not None and lands_in(name, input_folder):
            raise Stop(into_input(plan.config, name), EXIT_USAGE)

    plan.planner.plan(plan.config.since, check)
    counts = plan.planner.index.counts()
    if not counts.planned:
        raise Stop(
            "this run would write nothing: no image gets an output (--copies 0 and --include-originals 0?);"
            " raise --copies or set --include-originals 1",
            EXIT_USAGE,
        )
    plan.counts = counts
    plan.holdout = plan.planner.index.holdout_counts()


def _augment(config: RunConfig, plan: _Plan, source: Source, sink: Sink, log: Log, signals: Signals) -> _Outcome:
    """Run the tasks through the pipeline, book every result as it arrives; stop cleanly on a signal."""
    counts = plan.counts
    log(
        f"edge-augment {__version__}: {counts.tasks} images in {counts.labels} classes from {source.describe()}"
        f" -> {counts.outputs} outputs in {sink.describe()} (recipe {config.recipe.name}, seed {config.seed},"
        f" {config.workers} worker{'s' if config.workers != 1 else ''})"
    )
    manifest = plan.manifest
    progress = Progress(counts.tasks, log)
    options = StreamOptions(
        source,
        sink,
        RenderOptions(config.seed, config.encode, config.min_box_visibility),
        config.overwrite,
        keep_boxless=config.keep_boxless,
        verify=config.verify_outputs,
        since=config.since is not None,
    )
    chunks = (
        Chunk(tasks, manifest.recorded(o.name for t in tasks for o in t.outputs)) for tasks in chunked(plan.tasks)
    )
    late: list[TaskResult] = []  # finished after an interruption: recorded too
    with signals.deferred():  # a signal is acted on between two results, then the uploads stop
        results = execute(chunks, options, config.workers, late, signals.received)
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


def _finish(config: RunConfig, plan: _Plan, done: _Outcome, source: Source, sink: Sink, log: Log) -> int:
    """The final manifest, labels files, preview and report; the summary; the exit code."""
    progress, upload, manifest = done.progress, done.upload, plan.manifest
    if done.interrupted:
        manifest.close()  # the journal stays as it is: a rerun resumes from it
    else:
        manifest.finish(plan.outputs(), plan.planned_here)
    if plan.detection:
        write_box_labels(sink, manifest.lines(plan.outputs(), plan.planned_here), config.shard, config.books)
    if config.preview and not done.interrupted:
        log("preview: drawing the contact sheet")
        try:
            write_preview(config, source, sink, plan.tasks, log)
        except Interrupted as e:  # the outputs are complete: the report still says so
            log(f"interrupted ({e.name}) during the preview: outputs and manifest are complete, no preview")
            done.interrupted = e.name
    budget = config.failure_budget(plan.counts.tasks)
    failed = progress.failed
    report = progress.report(
        {
            "run": plan.header,
            "copies": config.copies,
            "include_originals": config.include_originals,
            "workers": config.workers,
            "skipped_files": [{"source": k, "reason": r} for k, r in plan.listing.skipped],
            "skipped_files_not_listed": plan.listing.skipped_count - len(plan.listing.skipped),
            "empty_folders": plan.listing.empty_folders,
            "metadata": config.metadata,
            "interrupted": done.interrupted,
            "failure_budget": budget,
        }
    )
    report.update(_scale_report(config, plan, progress))
    if config.test_fraction:
        report["holdout"] = holdout_report(plan.holdout, config.test_fraction)
    if upload is not None:
        report["upload"] = upload
    sink.write_text(
        config.books + suffixed(REPORT, config.shard.suffix()), json.dumps(report, indent=2, sort_keys=True) + "\n"
    )
    if config.write_ei_metadata:
        sink.write_text(EI_METADATA, _ei_metadata(report, config))
    sink.settle()
    for line in progress.summary_lines():
        log(line)
    if config.since is not None:
        s = report["since"]
        log(f"since {s['time']}: {s['new']} new or modified ({s['done']} done), {s['unchanged']} unchanged (skipped)")
    return _exit_code(config, plan, done, failed, budget, log)


def _exit_code(config: RunConfig, plan: _Plan, done: _Outcome, failed: int, budget: int, log: Log) -> int:
    if done.interrupted:
        return EXIT_SIGINT if done.interrupted == "SIGINT" else EXIT_SIGTERM
    if failed > budget:
        log(
            f"FAILED: {failed} of {plan.counts.tasks} images could not be augmented "
            f"(allowed: {budget}, from --max-failures {config.max_failures:g})"
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
        "augment_recipe": config.recipe.name,
        "augment_seed": config.seed,
        "augment_version": __version__,
    }
    body = {"version": 1, "action": "add", "metadata": {k: str(v) for k, v in values.items()}}
    return json.dumps(body, indent=2, sort_keys=True) + "\n"


def _balance(config: RunConfig, index: RunIndex, log: Log) -> dict[str, Any]:
    """--balance: copies per original from the whole listing (so every shard and refresh agrees)."""
    copies = config.copies if config.copies is not None else (config.recipe.copies or 0)
    table = index.assign_balance(copies, config.include_originals, config.target_per_class, MAX_COPIES)
    goal = f"target {config.target_per_class}" if config.target_per_class else "match the largest class"
    if config.test_fraction:
        goal += ", training side: held-out originals are not counted"
    kept = "in" if config.include_originals else "out"
    for line in balance_lines(table, f"{goal} (outputs per class, originals {kept})"):
        log(line)
    return {k: vars(v) for k, v in table.items()}


def _scale_report(config: RunConfig, plan: _Plan, progress: Progress) -> dict[str, Any]:
    extra: dict[str, Any] = {"shard": {"index": config.shard.index, "count": config.shard.count}}
    if config.since is not None:
        extra["since"] = {
            "time": config.since.isoformat(),
            "new": plan.counts.tasks,
            "unchanged": plan.counts.unchanged,
            "done": plan.counts.tasks - progress.failed,
        }
    if config.balance:
        extra["balance"] = plan.balance_table
    return extra


def _run_header(config: RunConfig, detection: bool) -> dict[str, Any]:
    recipe = {k: v for k, v in config.recipe.to_dict().items() if k != "copies"}
    settings = {
        "recipe": recipe,
        "seed": config.seed,
        "image_format": config.encode.image_format,
        "jpeg_quality": config.encode.jpeg_quality,
        "png_compression": config.encode.png_compression,
        "png_strategy": config.encode.png_strategy,
        "layout": config.layout,
        "label": config.label,
        "kernels": KERNELS,
    }
    if config.encode.output_size is not None:  # only then, as for the hold-out below
        settings["output_size"] = list(config.encode.output_size)
        settings["resize_mode"] = config.encode.resize_mode
    if config.test_fraction:  # only then: fingerprints of runs without a hold-out stay as they were
        settings["test_fraction"] = config.test_fraction
        settings["holdout"] = "exact-per-class"  # the rule changed (was: a hash threshold per original)
    if detection:  # which boxes survive, and whether box-less copies are kept
        settings["min_box_visibility"] = config.min_box_visibility
        settings["keep_boxless"] = config.keep_boxless
    return {"fingerprint": fingerprint(settings), "version": __version__, **settings}


def _extensions() -> str:
    return " ".join(sorted(IMAGE_EXTENSIONS))
