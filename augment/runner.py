"""One run, end to end: source -> plan -> augment (in a process pool) -> sink, with progress and report.

The main process lists, plans, and keeps the books; workers read a sample, render all its outputs in
memory and only then write them, so a bad image never leaves some of its outputs behind.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from augment import __version__
from augment.backends import sink_for, source_for
from augment.codec import IMAGE_EXTENSIONS
from augment.config import RunConfig
from augment.engine import KERNELS
from augment.holdout import TESTING, category_of
from augment.holdout import counts as holdout_counts
from augment.holdout import notes as holdout_notes
from augment.holdout import report as holdout_report
from augment.outdir import foreign_images, suffixed, write_box_labels
from augment.plan import PlanSettings, Task, make_plan
from augment.pool import WorkContext, execute
from augment.recipe import MAX_COPIES
from augment.report import (
    MANIFEST,
    REPORT,
    Log,
    Manifest,
    Progress,
    TaskResult,
    fingerprint,
)
from augment.review import dry_run, write_preview
from augment.samples import ei_label_issue, printable
from augment.selection import balance_copies, balance_lines, shard_of, split_since
from augment.sinks import Sink, SinkError
from augment.sources import Listing, Source, SourceError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EI_METADATA = "ei-metadata.json"  # EI reads it from --out-directory to update a clinical data item
_CHECKPOINT_SECONDS = 30.0  # how often the manifest is saved during a run


class Interrupted(Exception):
    """SIGTERM/SIGINT arrived; the run stops after the work in progress."""


def run(config: RunConfig, log: Log = print) -> int:
    """Run the block; return the process exit code."""
    source, sink = source_for(config), sink_for(config, log)
    for note in config.notes:
        log(f"note: {note}")
    lock = getattr(sink, "lock", None)  # a local folder: one run at a time (S3 and EI: see the README)
    held = lock(config.shard.suffix()) if lock is not None and not config.dry_run else None
    if held is not None:
        try:
            held.acquire()
        except SinkError as e:
            log(f"ERROR: {e}")
            return EXIT_FAILED
    try:
        return _run(config, source, sink, log)
    finally:
        if held is not None:
            held.release()


def _run(config: RunConfig, source: Source, sink: Sink, log: Log) -> int:
    clean = None if config.dry_run else getattr(sink, "remove_stale_temps", None)
    if clean is not None and (removed := clean(shared=config.shard.active)):
        log(f"removed {removed} temp file(s) left by an interrupted run")
    prepared = _prepare(config, source, sink, log)
    if isinstance(prepared, int):
        return prepared
    if config.dry_run:
        return dry_run(config, source, sink, prepared.tasks, prepared.manifest, log)
    outcome = _augment(config, prepared, source, sink, log)
    if isinstance(outcome, int):
        return outcome
    return _finish(config, prepared, outcome, source, sink, log)


@dataclass
class _Prepared:
    """What a run will do: the listing, this shard's plan, what --since leaves to do, the manifest."""

    listing: Listing
    planned: list[Task]  # this shard's tasks
    tasks: list[Task]  # the ones to run now
    unchanged: list[Task]  # --since: left as they are
    manifest: Manifest
    header: dict[str, Any]
    holdout: Any
    balance_table: dict[str, Any]

    @property
    def order(self) -> list[str]:
        return [o.name for t in self.planned for o in t.outputs]


@dataclass
class _Outcome:
    progress: Progress
    interrupted: str | None  # "SIGINT" | "SIGTERM"
    upload: dict[str, Any] | None  # the EI upload summary


def _prepare(config: RunConfig, source: Source, sink: Sink, log: Log) -> _Prepared | int:
    """List the source (reporting what it skips), plan every output, load the manifest."""
    listing = source.list()
    for key, reason in listing.skipped:
        log(f"skipped {printable(key)}: {reason}")
    for warning in listing.warnings:
        log(f"warning: {printable(warning)}")
    for folder in listing.empty_folders:
        log(f"warning: folder {folder!r} has no images")
    for label in sorted({s.label for s in listing.samples}):
        if issue := ei_label_issue(label):
            log(f"warning: label {label!r}: {issue}; class folders and labels files keep it, or use --upload-label")
    if not listing.samples:
        log(f"ERROR: no images found in {source.describe()} (looked for {_extensions()})")
        return EXIT_FAILED

    copies_per_sample, balance_table = _balance(config, listing.samples, log)
    settings = PlanSettings(
        config.recipe,
        config.copies,
        config.include_originals,
        config.layout,
        config.encode,
        copies_per_sample=copies_per_sample,
        test_fraction=config.test_fraction,
    )
    # Plan the whole listing (names are checked across all of it), then keep this run's share.
    full_plan = make_plan(listing.samples, settings)
    if not any(t.outputs for t in full_plan):
        log(
            "ERROR: this run would write nothing: no image gets an output (--copies 0 and --include-originals 0?);"
            " raise --copies or set --include-originals 1"
        )
        return EXIT_USAGE
    planned = _shard(full_plan, config)
    header = _run_header(config, detection=any(s.boxes is not None for s in listing.samples))
    manifest = Manifest(sink, header, config.overwrite, config.books + suffixed(MANIFEST, config.shard.suffix()))
    if not config.dry_run and (refusal := foreign_images(config, sink, full_plan, manifest)):
        log(f"ERROR: {refusal}")
        return EXIT_FAILED
    tasks, unchanged = _since(planned, config, manifest)
    _carry_over(manifest, unchanged)
    holdout = holdout_counts((t.sample.label, category_of(t.sample.key, config.test_fraction)) for t in planned)
    for line in holdout_notes(holdout, config.test_fraction):
        log(line)
    return _Prepared(listing, planned, tasks, unchanged, manifest, header, holdout, balance_table)


def _augment(config: RunConfig, prep: _Prepared, source: Source, sink: Sink, log: Log) -> _Outcome | int:
    """Run the tasks in the pool, book every result, checkpoint the manifest; stop cleanly on a signal."""
    tasks, manifest, order = prep.tasks, prep.manifest, prep.order
    outputs = sum(len(t.outputs) for t in tasks)
    log(
        f"edge-augment {__version__}: {len(tasks)} images in {len(_labels(tasks))} classes from {source.describe()}"
        f" -> {outputs} outputs in {sink.describe()} (recipe {config.recipe.name}, seed {config.seed},"
        f" {config.workers} worker{'s' if config.workers != 1 else ''})"
    )
    progress = Progress(len(tasks), log)
    context = WorkContext(
        source,
        sink,
        config.seed,
        config.encode,
        config.overwrite,
        min_box_visibility=config.min_box_visibility,
        keep_boxless=config.keep_boxless,
        refresh=config.since is not None,
        verify=config.verify_outputs,
    )
    interrupted = None
    late: list[TaskResult] = []  # finished by workers after an interruption: recorded too
    saved_at = time.monotonic()
    commit = getattr(sink, "commit", None)  # sinks that act on booked outputs (the EI upload)
    upload: dict[str, Any] | None = None
    previous_handler = signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        manifest.save(order)  # the header (which settings the files belong to) lands before any output
        for result in execute(tasks, manifest, context, config.workers, late):
            _book(result, manifest, progress, commit)
            if time.monotonic() - saved_at > _CHECKPOINT_SECONDS:  # a hard kill loses at most this much
                manifest.save(order)
                saved_at = time.monotonic()
        upload = _close_sink(sink, interrupted=False)
    except (KeyboardInterrupt, Interrupted) as e:
        interrupted = "SIGTERM" if isinstance(e, Interrupted) else "SIGINT"
        log(f"interrupted ({interrupted}): stopping; finished outputs are kept and a rerun resumes")
        for result in late:
            _book(result, manifest, progress)
        upload = _close_sink(sink, interrupted=True)
    except (SinkError, SourceError, BrokenProcessPool) as e:
        log(f"ERROR: {e}")
        _close_sink(sink, interrupted=True)
        manifest.save(order)
        return EXIT_FAILED
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    return _Outcome(progress, interrupted, upload)


def _finish(config: RunConfig, prep: _Prepared, done: _Outcome, source: Source, sink: Sink, log: Log) -> int:
    """Save the manifest, labels files, preview and report; print the summary; decide the exit code."""
    tasks, manifest, progress, upload = prep.tasks, prep.manifest, done.progress, done.upload
    manifest.save(prep.order)
    write_box_labels(sink, manifest, prep.order, config.shard, config.books)
    if config.preview and not done.interrupted:
        write_preview(config, source, sink, tasks, log)
    budget = config.failure_budget(len(tasks))
    failed = len(progress.errors)
    report = progress.report(
        {
            "run": prep.header,
            "copies": config.copies,
            "include_originals": config.include_originals,
            "workers": config.workers,
            "skipped_files": [{"source": k, "reason": r} for k, r in prep.listing.skipped],
            "empty_folders": prep.listing.empty_folders,
            "metadata": config.metadata,
            "interrupted": done.interrupted,
            "failure_budget": budget,
        }
    )
    report.update(_scale_report(config, tasks, prep.unchanged, progress, prep.balance_table))
    if config.test_fraction:
        report["holdout"] = holdout_report(prep.holdout, config.test_fraction)
    if upload is not None:
        report["upload"] = upload
    report_name = config.books + suffixed(REPORT, config.shard.suffix())
    sink.write_text(report_name, json.dumps(report, indent=2, sort_keys=True) + "\n")
    if config.write_ei_metadata:
        sink.write_text(EI_METADATA, _ei_metadata(report, config))
    for line in progress.summary_lines():
        log(line)
    if config.since is not None:
        s = report["since"]
        log(f"since {s['time']}: {s['new']} new or modified ({s['done']} done), {s['unchanged']} unchanged (skipped)")
    if done.interrupted:
        return 130 if done.interrupted == "SIGINT" else 143
    if failed > budget:
        log(
            f"FAILED: {failed} of {len(tasks)} images could not be augmented "
            f"(allowed: {budget}, from --max-failures {config.max_failures:g})"
        )
        return EXIT_FAILED
    if upload is not None and upload["failed"]:
        log(f"FAILED: {upload['failed']} file(s) were not accepted by the project; see the ERROR upload lines")
        return EXIT_FAILED
    if failed:
        log(f"done with {failed} bad input(s) skipped (allowed: {budget}); see the ERROR lines above")
    return EXIT_OK


def _close_sink(sink: Sink, interrupted: bool) -> dict[str, Any] | None:
    """Let a sink that works in the background (the EI upload) finish; its summary, or None."""
    close = getattr(sink, "close", None)
    return close(interrupted) if close is not None else None


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


def _balance(config: RunConfig, samples: list, log: Log) -> tuple[dict[str, int] | None, dict[str, Any]]:
    """--balance: copies per sample key, from the whole listing (so every shard and refresh agrees)."""
    if not config.balance:
        return None, {}
    copies = config.copies if config.copies is not None else (config.recipe.copies or 0)
    # Held-out originals get no copies (they go to testing as they are): balance the training side only.
    training = [s for s in samples if category_of(s.key, config.test_fraction) != TESTING]
    per_sample, table = balance_copies(training, copies, config.include_originals, config.target_per_class, MAX_COPIES)
    goal = f"target {config.target_per_class}" if config.target_per_class else "match the largest class"
    if config.test_fraction:
        goal += ", training side: held-out originals are not counted"
    kept = "in" if config.include_originals else "out"
    for line in balance_lines(table, f"{goal} (outputs per class, originals {kept})"):
        log(line)
    return per_sample, {k: vars(v) for k, v in table.items()}


def _shard(tasks: list[Task], config: RunConfig) -> list[Task]:
    """This shard's tasks (all of them without sharding)."""
    if not config.shard.active:
        return tasks
    return [t for t in tasks if shard_of(t.sample.key, config.shard.count) == config.shard.index]


def _since(tasks: list[Task], config: RunConfig, manifest: Manifest) -> tuple[list[Task], list[Task]]:
    """(the tasks to run now, the ones --since skips as unchanged).

    An unchanged source is skipped only when none or all of its planned outputs are recorded: a partly
    recorded one (an interrupted run, or --copies raised) is run, and its existing outputs are skipped."""
    if config.since is None:
        return tasks, []
    new, _ = split_since([t.sample for t in tasks], config.since)
    keys = {s.key for s in new}
    run, skip = [], []
    for task in tasks:
        recorded = sum(o.name in manifest.previous for o in task.outputs)
        partial = 0 < recorded < len(task.outputs)
        (run if task.sample.key in keys or partial else skip).append(task)
    return run, skip


def _carry_over(manifest: Manifest, unchanged: list[Task]) -> None:
    """--since: unchanged sources keep their manifest lines (new or modified ones are checked by workers)."""
    for task in unchanged:
        for out in task.outputs:
            if out.name in manifest.previous:
                manifest.add(out.name, manifest.previous[out.name])


def _scale_report(
    config: RunConfig, tasks: list[Task], unchanged: list[Task], progress: Progress, balance: dict[str, Any]
) -> dict[str, Any]:
    extra: dict[str, Any] = {"shard": {"index": config.shard.index, "count": config.shard.count}}
    if config.since is not None:
        failed = {k for k, _ in progress.errors}
        extra["since"] = {
            "time": config.since.isoformat(),
            "new": len(tasks),
            "unchanged": len(unchanged),
            "done": sum(1 for t in tasks if t.sample.key not in failed),
        }
    if config.balance:
        extra["balance"] = balance
    return extra


def _book(
    result: TaskResult, manifest: Manifest, progress: Progress, commit: Callable[[str, str], None] | None = None
) -> None:
    for record in result.records:
        if record.status == "dropped":
            continue
        manifest.add(record.name, record.line or manifest.previous[record.name])
        if commit is not None:
            commit(record.name, manifest.lines[record.name])
    progress.update(result)


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
    if config.test_fraction:  # only then: fingerprints of runs without a hold-out stay as they were
        settings["test_fraction"] = config.test_fraction
    if detection:  # which boxes survive, and whether box-less copies are kept
        settings["min_box_visibility"] = config.min_box_visibility
        settings["keep_boxless"] = config.keep_boxless
    return {"fingerprint": fingerprint(settings), "version": __version__, **settings}


def _raise_interrupted(signum: int, frame: Any) -> None:
    raise Interrupted()


def _labels(tasks: list[Task]) -> set[str]:
    return {t.sample.label for t in tasks}


def _extensions() -> str:
    return " ".join(sorted(IMAGE_EXTENSIONS))
