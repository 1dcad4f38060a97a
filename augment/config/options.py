"""Every flag of the block, once: its default, its choices and its help. The argparse parser (``augment.cli``),
``build_config`` and the parameter reference (``scripts/docs_reference.py``) are all made from this table.

EI passes every value as a string, so defaults are the strings EI would pass; ``None`` means "not given" (the
flag's help says what happens then). Choices are matched after trimming and lower-casing (``choice``), the
same for every flag that has them.
"""

from __future__ import annotations

from dataclasses import dataclass

from augment.render.codec import OUTPUT_FORMATS, PNG_STRATEGIES, EncodeOptions
from augment.render.ops.pixels import FILL_MODES
from augment.render.presets import DEFAULT_PRESET, ORIENTATIONS, PRESETS
from augment.render.resize import RESIZE_MODES
from augment.sinks.ingestion_api import DEFAULT_BATCH, DEFAULT_CONCURRENCY, DEFAULT_RETRY_TIME, DEFAULT_TIMEOUT

LAYOUTS = ("folders", "flat")
FILL_CHOICES = ("recipe", *FILL_MODES)
_ENCODE = EncodeOptions()  # the encoder's own defaults are the flags'


@dataclass(frozen=True)
class Option:
    """One ``--flag``: ``switch`` = a 1/0 boolean that a bare ``--flag`` turns on."""

    flag: str
    group: str
    help: str
    default: str | None = None
    choices: tuple[str, ...] = ()
    switch: bool = False

    @property
    def dest(self) -> str:
        return self.flag[2:].replace("-", "_")


IO = "input and output (EI passes these)"
RECIPE = "what to make"
DETECTION = "object detection (folders with bounding_boxes.labels)"
FORMAT = "output format"
LOOK = "looking before using"
RUNNING = "running"
SCALE = "sharding, scheduled refresh, class balancing"
PROJECT = "Edge Impulse project upload (--dest ei) and hold-out"
EI = "passed by Edge Impulse"


def _options() -> tuple[Option, ...]:
    o = Option
    return (
        o("--in-directory", IO, "folder of images: class sub-folders, or flat <label>.<uid>.<ext> files"),
        o("--in-file", IO, "a single image (EI file mode); label from a <label>. name prefix, else its folder"),
        o("--out-directory", IO, "where outputs go (default: %(default)s)", "output"),
        o("--source", IO, "read from S3 instead: s3://bucket/prefix/ (class sub-prefixes, or flat "
          "<label>.<uid>.<ext> keys)"),
        o("--dest", IO, "write to S3 instead of --out-directory: s3://bucket/prefix/ (same layout, manifest and "
          "report); 'ei' = upload into an Edge Impulse project (staged in --out-directory)"),
        o("--s3-endpoint", IO, "S3-compatible endpoint URL (default: AWS_ENDPOINT_URL, else AWS S3); credentials "
          "from the AWS chain"),
        o("--bucket", IO, "EI `bucket` parameter: read this bucket (through its mount if present, else S3)"),
        o("--bucket-prefix", IO, "prefix inside --bucket to read (class sub-folders or flat)", ""),
        o("--bucket-mount-root", IO, "where EI mounts buckets (default: %(default)s)", "/mnt/s3fs"),
        o("--preset", RECIPE, "built-in recipe (default: %(default)s); 'custom' = use --recipe", DEFAULT_PRESET,
          (*PRESETS, "custom")),
        o("--orientation", RECIPE, "'any' (objects seen from above) adds quarter turns, vertical flips and "
          "full-circle rotation to the random presets (default: %(default)s)", "upright", ORIENTATIONS),
        o("--recipe", RECIPE, "a JSON recipe (text or a path to a .json file); replaces --preset"),
        o("--copies", RECIPE, "augmented copies per original for random presets (default: the preset's, 8; light 4)"),
        o("--seed", RECIPE, "run seed; same inputs + seed = byte-identical outputs", "42"),
        o("--include-originals", RECIPE, "copy each original through too (1/0)", "1", switch=True),
        o("--fill", RECIPE, "border fill for geometric ops (default: recipe)", "recipe", FILL_CHOICES),
        o("--min-box-visibility", DETECTION, "drop a box when less than this share of it stays in the image "
          "(default: %(default)s)", "0.3"),
        o("--keep-boxless", DETECTION, "keep copies whose boxes were all dropped (1/0)", "0", switch=True),
        o("--output-layout", FORMAT, "<label>/ sub-folders, or flat", "folders", LAYOUTS),
        o("--image-format", FORMAT, "output encoding (default: same as input)", _ENCODE.image_format, OUTPUT_FORMATS),
        o("--jpeg-quality", FORMAT, "JPEG/WebP quality 1-100 (default: %(default)s)", str(_ENCODE.jpeg_quality)),
        o("--png-compression", FORMAT, "PNG zlib level 0-9 (default: %(default)s)", str(_ENCODE.png_compression)),
        o("--png-strategy", FORMAT, "zlib strategy for PNG: rle (default: photos, 2-3x faster, same size) or "
          "default (graphics)", _ENCODE.png_strategy, PNG_STRATEGIES),
        o("--output-size", FORMAT, "WIDTHxHEIGHT, e.g. 96x96: every output, originals too, at the model's input "
          "size (default: source's)", ""),
        o("--resize-mode", FORMAT, "with --output-size: fit-short (crop the longer side, EI's default), squash, or "
          "fit-long (letterbox)", _ENCODE.resize_mode, RESIZE_MODES),
        o("--preview", LOOK, "also write preview.png: originals beside their copies", "0", switch=True),
        o("--dry-run", LOOK, "print the plan and estimated time; write only the preview", "0", switch=True),
        o("--workers", RUNNING, "worker processes (default 0 = one per CPU)", "0"),
        o("--max-failures", RUNNING, "bad inputs tolerated before exiting 1: a fraction of samples (<1) or a count "
          "(>=1); default %(default)s", "0.01"),
        o("--overwrite", RUNNING, "regenerate outputs that already exist (1/0)", "0", switch=True),
        o("--verify-outputs", RUNNING, "a rerun checks each recorded output's sha256, not only its size (1/0)", "0",
          switch=True),
        o("--shard-index", SCALE, "this machine's shard, 0..count-1 (default: AWS_BATCH_JOB_ARRAY_INDEX or "
          "JOB_COMPLETION_INDEX)"),
        o("--shard-count", SCALE, "number of shards; samples are split by a hash of their key (default: "
          "AWS_BATCH_JOB_ARRAY_SIZE, 1)"),
        o("--since", SCALE, "only sources modified after this ISO 8601 time (default: EI_LAST_SUCCESSFUL_RUN if set; "
          "'off' = all)"),
        o("--balance", SCALE, "per-class copies so every class ends near --target-per-class outputs (1/0)", "0",
          switch=True),
        o("--target-per-class", SCALE, "outputs per class with --balance, originals included (default 0 = match the "
          "largest class)", "0"),
        o("--test-fraction", PROJECT, "hold this share of each class's originals out for testing (exact, chosen by a "
          "hash of the key), unaugmented (default: 0.2 with --dest ei and --upload-category holdout, else 0 = none)"),
        o("--ingestion-url", PROJECT, "ingestion service base URL (default from EI_INGESTION_HOST: "
          "https://ingestion.<host>)"),
        o("--batch-size", PROJECT, "files per upload request, 1-1000 (default: %(default)s, as EI's own uploader)",
          str(DEFAULT_BATCH)),
        o("--upload-concurrency", PROJECT, "upload requests at once (default: %(default)s)", str(DEFAULT_CONCURRENCY)),
        o("--upload-timeout", PROJECT, "seconds one upload request may take in all, sending and answer (default: "
          "%(default)s); then it is retried", f"{DEFAULT_TIMEOUT:g}"),
        o("--upload-retry-time", PROJECT, "seconds a file's upload may take, retries and waits included (default: "
          "%(default)s); then the run stops", f"{DEFAULT_RETRY_TIME:g}"),
        o("--write-ei-metadata", PROJECT, "write ei-metadata.json for EI clinical data items: auto (when --metadata "
          "has dataItemInfo) | 1 | 0", "auto"),
        o("--hmac-key", EI, "project HMAC key ('0' if none); accepted, not used"),
        o("--metadata", EI, "the data item's metadata as JSON; recorded in the report"),
        o("--upload-category", EI, "split|training|testing when EI imports the output into a project; with --dest "
          "ei also holdout (default: --test-fraction of originals to testing, the rest and every copy to training)"),
        o("--upload-label", EI, "label for every output (overrides folder/name labels)"),
    )  # fmt: skip


OPTIONS = _options()
GROUPS = tuple(dict.fromkeys(option.group for option in OPTIONS))
BY_DEST = {option.dest: option for option in OPTIONS}
