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
from collections import Counter
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
from augment.books.report import REPORT, Log, Progress, TaskResult
from augment.books.review import dry_run, write_preview
from augment.config import RunConfig
from augment.plan.holdout import notes as holdout_notes
from augment.plan.holdout import report as holdout_report
from augment.plan.index import Row, RunIndex
from augment.plan.labels import boxes_by_key
from augment.plan.samples import ei_label_issue, printable
from augment.plan.selection import balance_lines, shard_of
from augment.plan.tasks import PlanError, PlanSettings, Task, collision, plan_task
from augment.render.codec import IMAGE_EXTENSIONS
from augment.render.engine import KERNELS
from augment.render.recipe import MAX_COPIES
from augment.run.backends import sink_for, source_for
from augment.run.pipeline import Chunk, Settings, chunked, execute
from augment.run.pool import RenderSettings
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
        return dry_run(config, source, sink, lambda: plan.tasks, plan.tasks_to_run, plan.manifest, log)
    outcome = _augment(config, plan, source, sink, log, signals)
    return _finish(config, plan, outcome, source, sink, log)


@dataclass
class _Plan:
    """What a run will do, with per-class counts; the tasks themselves are planned on demand."""

    config: RunConfig
    index: RunIndex
    settings: PlanSettings
    listing: Listing  # what the source skipped (its samples are in the index)
    manifest: Manifest
    header: dict[str, Any]
    holdout: dict[str, dict[str, int]] = field(default_factory=dict)
    balance_table: dict[str, Any] = field(default_factory=dict)
    tasks_to_run: int = 0
    outputs_to_run: int = 0
    unchanged: int = 0  # --since: this shard's originals left as they are
    labels: int = 0

    def planned(self) -> Iterator[Task]:
        """This shard's tasks, in plan order."""
        shard = self.config.shard
        keep = (lambda key: shard_of(key, shard.count) == shard.index) if shard.active else None
        for row in self.index.rows(keep):
            yield self.task(row)

    def task(self, row: Row) -> Task:
        return plan_task(row.sample, self.settings, row.category, row.copies)

    @property
    def tasks(self) -> Iterator[Task]:
        """The tasks to run now (--since leaves unchanged ones out)."""
        return (t for t in self.planned() if self.runs(t))

    def runs(self, task: Task) -> bool:
        """--since skips only a source the manifest records whole and whose time is not after --since: one
        it does not record (new, renamed, or copied with its old time kept) or records in part runs."""
        since = self.config.since
        if since is None or task.sample.mtime is None or task.sample.mtime > since.timestamp():
            return True
        return len(self.index.previous(o.name for o in task.outputs)) < len(task.outputs)

    def planned_here(self, name: str) -> bool:
        key = self.index.planned(name)
        shard = self.config.shard
        return key is not None and (not shard.active or shard_of(key, shard.count) == shard.index)


@dataclass
class _Outcome:
    progress: Progress
    interrupted: str | None  # "SIGINT" | "SIGTERM"
    upload: dict[str, Any] | None  # the EI upload summary


def _prepare(config: RunConfig, source: Source, sink: Sink, index: RunIndex, log: Log, lock: Any) -> _Plan:
    """List the source into the index (reporting what it skips), decide the split and copies per original,
    check every planned name, load the earlier manifest; then, one run at a time (``lock.checking``), check
    every manifest in the destination and write this run's header."""
    if not config.dry_run:
        sink.prefetch()  # (S3: the destination is listed while the source is)
    listing = Listing(on_skip=lambda key, reason: log(f"skipped {printable(key)}: {reason}"))
    count = index.add_samples(source.scan(listing))
    if listing.labels_files:  # a detection dataset
        index.attach_boxes(boxes_by_key(listing.labels_files, source.read_text, listing.warnings), source.label)
    for warning in listing.warnings:
        log(f"warning: {printable(warning)}")
    for folder in listing.empty_folders:
        log(f"warning: folder {folder!r} has no images")
    if not count:
        raise Stop(f"no images found in {source.describe()} (looked for {_extensions()})")
    for label in index.labels():
        if issue := ei_label_issue(label):
            log(f"warning: label {label!r}: {issue}; class folders and labels files keep it, or use --upload-label")
    index.assign_holdout(config.test_fraction)
    settings = PlanSettings(config.recipe, config.copies, config.include_originals, config.layout, config.encode)
    header = _run_header(config, detection=index.has_boxes())
    manifest = Manifest(sink, header, config.overwrite, config.books + suffixed(MANIFEST, config.shard.suffix()), index)
    plan = _Plan(config, index, settings, listing, manifest, header)
    if config.balance:
        plan.balance_table = _balance(config, index, log)
    _check_names(plan)
    with lock.checking() if lock is not None else contextlib.nullcontext():
        check_manifests(config, sink, index, manifest.name, header["fingerprint"], plan.planned_here)
        if not config.dry_run:
            if refusal := foreign_images(config, sink, index):
                raise Stop(refusal)
            manifest.start()  # the header (which settings the files belong to) lands before any output
    for line in holdout_notes(plan.holdout, config.test_fraction):
        log(line)
    return plan


def _check_names(plan: _Plan) -> None:
    """One pass over the whole plan: claim every output name (two sources must not share one), count this
    shard's work. Raises PlanError on a clash, Stop when nothing would be written."""
    shard, layout = plan.config.shard, plan.config.layout
    holdout: dict[str, Counter[str]] = {}
    outputs = 0
    labels = set()
    input_folder = input_inside_output(plan.config)

    def names() -> Iterator[tuple[str, str]]:
        nonlocal outputs
        for row in plan.index.rows():
            task = plan.task(row)
            outputs += len(task.outputs)
            if not shard.active or shard_of(row.sample.key, shard.count) == shard.index:
                _count(plan, task, row, holdout, labels)
            for output in task.outputs:
                if input_folder is not None and lands_in(output.name, input_folder):
                    raise Stop(into_input(plan.config, output.name), EXIT_USAGE)
                yield output.name, row.sample.key

    clash = plan.index.claim(names())
    if clash is not None:
        name, key, other_key, other_name = clash
        sample, other = (next(plan.index.rows(lambda k, want=want: k == want)).sample for want in (key, other_key))
        raise PlanError(collision(sample, name, other, other_name, layout))
    if not outputs:
        raise Stop(
            "this run would write nothing: no image gets an output (--copies 0 and --include-originals 0?);"
            " raise --copies or set --include-originals 1",
            EXIT_USAGE,
        )
    plan.holdout = {label: dict(c) for label, c in sorted(holdout.items())}
    plan.labels = len(labels)


def _count(plan: _Plan, task: Task, row: Row, holdout: dict[str, Counter[str]], labels: set[str]) -> None:
    if row.category is not None:
        holdout.setdefault(row.sample.label, Counter({"training": 0, "testing": 0}))[row.category] += 1
    if plan.runs(task):
        plan.tasks_to_run += 1
        plan.outputs_to_run += len(task.outputs)
        labels.add(row.sample.label)
    else:
        plan.unchanged += 1


def _augment(config: RunConfig, plan: _Plan, source: Source, sink: Sink, log: Log, signals: Signals) -> _Outcome:
    """Run the tasks through the pipeline, book every result as it arrives; stop cleanly on a signal."""
    log(
        f"edge-augment {__version__}: {plan.tasks_to_run} images in {plan.labels} classes from {source.describe()}"
        f" -> {plan.outputs_to_run} outputs in {sink.describe()} (recipe {config.recipe.name}, seed {config.seed},"
        f" {config.workers} worker{'s' if config.workers != 1 else ''})"
    )
    manifest = plan.manifest
    progress = Progress(plan.tasks_to_run, log)
    settings = Settings(
        source,
        sink,
        RenderSettings(config.seed, config.encode, config.min_box_visibility),
        config.overwrite,
        keep_boxless=config.keep_boxless,
        verify=config.verify_outputs,
    )
    chunks = (_chunk(plan, tasks) for tasks in chunked(plan.tasks))
    late: list[TaskResult] = []  # finished after an interruption: recorded too
    with signals.deferred():  # a signal is acted on between two results, then the uploads stop
        results = execute(chunks, settings, config.workers, late, signals.received)
        try:
            saved_at = time.monotonic()
            try:
                for result in results:
                    _book(result, manifest, progress, sink)
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
                    _book(result, manifest, progress, sink)
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
    for record in (r for result in results for r in result.records if r.status == "written"):
        with contextlib.suppress(SinkError):
            sink.delete(record.name)
            removed += 1
    return removed


def index_failure(error: sqlite3.Error) -> str:
    """One line for a failure of the run's on-disk index (most often a full temp folder)."""
    return f"the run's temp index in {tempfile.gettempdir()} failed ({error}); free space there or set TMPDIR"


def _chunk(plan: _Plan, tasks: list[Task]) -> Chunk:
    """A chunk with what earlier runs recorded for its outputs (looked up in the index)."""
    names = [o.name for t in tasks for o in t.outputs]
    recorded = plan.manifest.recorded(names)
    made_from = None
    if plan.config.since is not None:  # which bytes recorded outputs were made from: a changed source is redone
        made_from = {}
        for task in tasks:
            sha = plan.manifest.source_sha256(o.name for o in task.outputs)
            if sha is not None:
                made_from[task.sample.key] = sha
    return Chunk(tasks, recorded, made_from)


def _book(result: TaskResult, manifest: Manifest, progress: Progress, sink: Sink) -> None:
    written = [(r.name, r.line) for r in result.records if r.status == "written"]
    existing = [r.name for r in result.records if r.status == "existing"]
    lines = manifest.record(written, existing)
    for record in result.records:
        if record.status != "dropped":
            sink.commit(record.name, lines[record.name])
    progress.update(result)


def _finish(config: RunConfig, plan: _Plan, done: _Outcome, source: Source, sink: Sink, log: Log) -> int:
    """The final manifest, labels files, preview and report; the summary; the exit code."""
    progress, upload, manifest = done.progress, done.upload, plan.manifest
    planned = (([o.name for o in t.outputs], plan.runs(t)) for t in plan.planned())
    if done.interrupted:
        manifest.close()  # the journal stays as it is: a rerun resumes from it
    else:
        manifest.finish(planned, plan.planned_here)
    if "min_box_visibility" in plan.header:  # a detection dataset
        lines = manifest.lines((([o.name for o in t.outputs], plan.runs(t)) for t in plan.planned()), plan.planned_here)
        write_box_labels(sink, lines, config.shard, config.books)
    if config.preview and not done.interrupted:
        log("preview: drawing the contact sheet")
        try:
            write_preview(config, source, sink, plan.tasks, log)
        except Interrupted as e:  # the outputs are complete: the report still says so
            log(f"interrupted ({e.name}) during the preview: outputs and manifest are complete, no preview")
            done.interrupted = e.name
    budget = config.failure_budget(plan.tasks_to_run)
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
            f"FAILED: {failed} of {plan.tasks_to_run} images could not be augmented "
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
            "new": plan.tasks_to_run,
            "unchanged": plan.unchanged,
            "done": plan.tasks_to_run - progress.failed,
        }
    if config.balance:
        extra["balance"] = plan.balance_table
    return extra


def _run_header(config: RunConfig, detection: bool = False) -> dict[str, Any]:
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
