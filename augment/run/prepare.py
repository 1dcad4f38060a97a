"""Before the run loop: what a run checks and decides before it writes any output.

The source is listed into the run's on-disk index, every task is planned once (names claimed, outputs that
would land in the input refused), the earlier manifest is loaded, every manifest in the destination is
checked and the run's header written (``RunPlan``); a run that cannot go on raises ``Stop``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from augment import __version__
from augment.books.manifest import MANIFEST, Manifest, fingerprint
from augment.books.outdir import check_manifests, foreign_images, input_inside_output, into_input, suffixed
from augment.books.report import Log
from augment.config import RunConfig
from augment.errors import EXIT_FAILED, EXIT_USAGE, BlockError
from augment.plan.holdout import notes as holdout_notes
from augment.plan.index import Counts, RunIndex
from augment.plan.labels import boxes_by_key
from augment.plan.planner import Planner
from augment.plan.samples import ei_label_issue, printable
from augment.plan.selection import balance_lines
from augment.plan.tasks import PlanSettings, Task
from augment.render.codec import IMAGE_EXTENSIONS
from augment.render.engine import KERNELS
from augment.render.recipe import MAX_COPIES
from augment.run import ahead
from augment.sinks import Sink
from augment.sources import Listing, Source
from augment.storage.overlap import lands_in

_AHEAD_BYTES = 16 * 1024 * 1024  # sources read ahead while the destination is checked (as the pipeline's window)


class Stop(BlockError):
    """The run cannot go on: the message is logged as an ERROR and ``exit_code`` is the exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = code


@dataclass
class RunPlan:
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


def prepare(config: RunConfig, source: Source, sink: Sink, index: RunIndex, log: Log, lock: Any) -> RunPlan:
    """List the source into the index (reporting what it skips), decide the split and copies per original,
    plan every task once, load the earlier manifest; then, one run at a time (``lock.checking``), check
    every manifest in the destination and write this run's header."""
    if not config.run.dry_run:
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
    index.assign_holdout(config.plan.test_fraction)
    settings = PlanSettings(
        config.plan.recipe, config.plan.copies, config.plan.include_originals, config.plan.layout, config.render.encode
    )
    header = _run_header(config, detection)
    manifest = Manifest(
        sink, header, config.sink.overwrite, config.sink.books + suffixed(MANIFEST, config.plan.shard.suffix()), index
    )
    plan = RunPlan(config, Planner(index, settings, config.plan.shard), listing, detection, manifest, header)
    if config.plan.balance:
        plan.balance_table = _balance(config, index, log)
    _plan_tasks(plan)
    if not config.run.dry_run:
        _read_ahead(plan, source, sink)
    with lock.checking() if lock is not None else contextlib.nullcontext():
        check_manifests(
            config, sink, index, manifest.name, header["fingerprint"], plan.planned_here, manifest.read_version
        )
        if not config.run.dry_run:
            if refusal := foreign_images(config, sink, index):
                raise Stop(refusal)
            manifest.start()  # the header (which settings the files belong to) lands before any output
    ahead.forget()  # what planning did not use: any later listing asks the store
    for line in holdout_notes(plan.holdout, config.plan.test_fraction):
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


def _plan_tasks(plan: RunPlan) -> None:
    """Plan every task once (PlanError when two sources would write one name), refusing an output that would
    land in the input folder; count this shard's work. Stop when nothing would be written."""
    input_folder = input_inside_output(plan.config)

    def check(name: str) -> None:
        if input_folder is not None and lands_in(name, input_folder):
            raise Stop(into_input(plan.config, name), EXIT_USAGE)

    plan.planner.plan(plan.config.plan.since, check)
    counts = plan.planner.index.counts()
    if not counts.planned:
        raise Stop(
            "this run would write nothing: no image gets an output (--copies 0 and --include-originals 0?);"
            " raise --copies or set --include-originals 1",
            EXIT_USAGE,
        )
    plan.counts = counts
    plan.holdout = plan.planner.index.holdout_counts()


def _read_ahead(plan: RunPlan, source: Source, sink: Sink) -> None:
    """A destination without manifests (nothing recorded: every source planned is read) has the first sources
    read while it is checked and the header goes up, up to the reads in flight and ``_AHEAD_BYTES``; one that
    has manifests decides what to read from them, so reads nothing ahead."""
    if plan.manifest.resumed or sink.manifests(plan.config.sink.books):
        return
    samples, size = [], 0
    for task in plan.tasks:
        size += task.sample.size
        if len(samples) >= plan.config.run.io_threads or size > _AHEAD_BYTES:
            break
        samples.append(task.sample)
    source.prefetch(samples)


def _balance(config: RunConfig, index: RunIndex, log: Log) -> dict[str, Any]:
    """--balance: copies per original from the whole listing (so every shard and refresh agrees)."""
    copies = config.plan.copies if config.plan.copies is not None else (config.plan.recipe.copies or 0)
    table = index.assign_balance(copies, config.plan.include_originals, config.plan.target_per_class, MAX_COPIES)
    goal = f"target {config.plan.target_per_class}" if config.plan.target_per_class else "match the largest class"
    if config.plan.test_fraction:
        goal += ", training side: held-out originals are not counted"
    kept = "in" if config.plan.include_originals else "out"
    for line in balance_lines(table, f"{goal} (outputs per class, originals {kept})"):
        log(line)
    return {k: vars(v) for k, v in table.items()}


def _run_header(config: RunConfig, detection: bool) -> dict[str, Any]:
    recipe = {k: v for k, v in config.plan.recipe.to_dict().items() if k != "copies"}
    values = {
        "recipe": recipe,
        "seed": config.render.seed,
        "image_format": config.render.encode.image_format,
        "jpeg_quality": config.render.encode.jpeg_quality,
        "png_compression": config.render.encode.png_compression,
        "png_strategy": config.render.encode.png_strategy,
        "layout": config.plan.layout,
        "label": config.source.label,
        "kernels": KERNELS,
    }
    if config.render.encode.output_size is not None:  # only then, as for the hold-out below
        values["output_size"] = list(config.render.encode.output_size)
        values["resize_mode"] = config.render.encode.resize_mode
    if config.plan.test_fraction:  # only then: fingerprints of runs without a hold-out stay as they were
        values["test_fraction"] = config.plan.test_fraction
        values["holdout"] = "exact-per-class"  # the rule changed (was: a hash threshold per original)
    if detection:  # which boxes survive, and whether box-less copies are kept
        values["min_box_visibility"] = config.render.min_box_visibility
        values["keep_boxless"] = config.render.keep_boxless
    return {"fingerprint": fingerprint(values), "version": __version__, **values}


def _extensions() -> str:
    return " ".join(sorted(IMAGE_EXTENSIONS))
