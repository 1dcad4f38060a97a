"""RunConfig: everything a run needs, validated, as one frozen section per stage of the flow (source -> plan
-> render -> sink, the S3 plumbing they share, and the run loop). Every field is set by ``build_config``;
no field has a default of its own (the defaults live in ``options.OPTIONS`` and ``env.KNOBS``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from augment.plan.selection import Shard
from augment.render.codec import EncodeOptions
from augment.render.recipe import Recipe
from augment.sinks.ingestion_api import UploadSettings

# Where the manifest, report and preview go when EI imports --out-directory into a project: EI's uploader
# skips every file and folder whose name starts with "." (edge-impulse-cli cli-common/fs-helpers.ts).
BOOKS = ".edge-augment/"


@dataclass(frozen=True)
class SourceConfig:
    """Where samples come from: a folder, one file, or an S3 prefix (``url``)."""

    in_directory: Path | None
    in_file: Path | None
    url: str | None  # s3://bucket/prefix/ instead of in_directory/in_file
    label: str | None  # --upload-label: the label of every sample


@dataclass(frozen=True)
class PlanConfig:
    """What to make of each sample, and which samples this run takes."""

    recipe: Recipe
    copies: int | None  # None: the recipe's own
    include_originals: bool
    layout: str
    test_fraction: float  # hold this share of originals out for testing, unaugmented
    balance: bool  # per-class copies so classes end near target_per_class outputs
    target_per_class: int | None  # None = match the largest class
    shard: Shard  # this run's share of the samples, by hash of the key
    since: datetime | None  # only sources modified after this instant (None = all)


@dataclass(frozen=True)
class RenderConfig:
    seed: int
    encode: EncodeOptions
    min_box_visibility: float
    keep_boxless: bool
    huge_pixels: int  # images over this many pixels render one at a time across workers


@dataclass(frozen=True)
class SinkConfig:
    """Where outputs go: a folder, an S3 prefix (``url``) or an EI project (``upload``, staged in the folder)."""

    out_directory: Path
    url: str | None  # s3://bucket/prefix/ instead of out_directory
    upload: UploadSettings | None  # --dest ei (the key is not repr'd)
    upload_category: str | None  # as EI passed it
    overwrite: bool
    verify_outputs: bool  # a rerun checks recorded outputs' sha256, not only their size
    write_ei_metadata: bool
    lock_wait: float  # seconds to wait for another run's check of the folder

    @property
    def ei_imports_output(self) -> bool:
        """EI passed --upload-category: it imports --out-directory into a project itself."""
        return self.upload_category is not None and self.upload is None

    @property
    def books(self) -> str:
        """Prefix of the bookkeeping files (manifest, report, preview) in the output: a hidden folder when EI
        imports it into a project (else EI would read report.json and preview.png as samples), else none."""
        return BOOKS if self.ei_imports_output else ""


@dataclass(frozen=True)
class StorageConfig:
    """The S3 plumbing sources and sinks share."""

    s3_endpoint: str | None  # overrides AWS_ENDPOINT_URL
    s3_timeout: float
    s3_max_attempts: int


@dataclass(frozen=True)
class RunSettings:
    """How the run goes: processes, threads, tolerance, what it only shows."""

    workers: int
    io_threads: int
    max_failures: float
    preview: bool  # write preview.png after the run
    dry_run: bool  # print the plan and write only the preview
    metadata: dict[str, Any] | None
    notes: tuple[str, ...]  # non-fatal remarks made while parsing, printed at start

    def failure_budget(self, samples: int) -> int:
        """How many samples may fail before the run exits non-zero."""
        if self.max_failures >= 1:
            return int(self.max_failures)
        return int(self.max_failures * samples)


@dataclass(frozen=True)
class RunConfig:
    source: SourceConfig
    plan: PlanConfig
    render: RenderConfig
    sink: SinkConfig
    storage: StorageConfig
    run: RunSettings
