"""The EI-style command line: every parameters.json param is a ``--<param>`` flag of the same spelling.

EI adds ``--in-directory``/``--in-file``, ``--out-directory``, ``--hmac-key``, ``--metadata``,
``--upload-category`` and ``--upload-label``; unknown extra arguments are tolerated (and named in the log).
"""

from __future__ import annotations

import argparse
import re

from augment import __version__
from augment.config import FILL_CHOICES, LAYOUTS
from augment.render.boxes import DEFAULT_MIN_BOX_VISIBILITY
from augment.render.codec import OUTPUT_FORMATS
from augment.render.presets import DEFAULT_PRESET, ORIENTATIONS, PRESETS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="transform.py",
        description="Augment a labelled image dataset per class folder (Edge Impulse transformation block).",
        epilog="Exit codes: 0 done (failures within --max-failures), 1 run failed, 2 invalid parameters.",
    )
    io = p.add_argument_group("input and output (EI passes these)")
    io.add_argument(
        "--in-directory",
        help="folder of images: class sub-folders, or flat <label>.<uid>.<ext> files",
    )
    io.add_argument(
        "--in-file",
        help="a single image (EI file mode); label from a <label>. name prefix, else its folder",
    )
    io.add_argument(
        "--out-directory",
        default="output",
        help="where outputs go (default: %(default)s)",
    )
    io.add_argument(
        "--source",
        help="read from S3 instead: s3://bucket/prefix/ (class sub-prefixes, or flat <label>.<uid>.<ext> keys)",
    )
    io.add_argument(
        "--dest",
        help="write to S3 instead of --out-directory: s3://bucket/prefix/ (same layout, manifest and report); "
        "'ei' = upload into an Edge Impulse project (staged in --out-directory)",
    )
    io.add_argument(
        "--s3-endpoint",
        help="S3-compatible endpoint URL (default: AWS_ENDPOINT_URL, else AWS S3); credentials from the AWS chain",
    )
    io.add_argument("--bucket", help="EI `bucket` parameter: read this bucket (through its mount if present, else S3)")
    io.add_argument("--bucket-prefix", default="", help="prefix inside --bucket to read (class sub-folders or flat)")
    io.add_argument("--bucket-mount-root", default="/mnt/s3fs", help="where EI mounts buckets (default: %(default)s)")

    rec = p.add_argument_group("what to make")
    rec.add_argument(
        "--preset",
        default=DEFAULT_PRESET,
        choices=[*PRESETS, "custom"],
        help="built-in recipe (default: %(default)s); 'custom' = use --recipe",
    )
    rec.add_argument(
        "--orientation",
        default="upright",
        help=f"{' or '.join(ORIENTATIONS)}: 'any' (objects seen from above) adds quarter turns, vertical flips and "
        "full-circle rotation to the random presets (default: %(default)s)",
    )
    rec.add_argument(
        "--recipe",
        help="a JSON recipe (text or a path to a .json file); replaces --preset",
    )
    rec.add_argument(
        "--copies",
        help="augmented copies per original for random presets (default: the preset's, 8; light 4)",
    )
    rec.add_argument(
        "--seed",
        default="42",
        help="run seed; same inputs + seed = byte-identical outputs",
    )
    _switch(rec, "--include-originals", "1", "copy each original through too (1/0)")
    rec.add_argument(
        "--fill",
        default="recipe",
        help=f"border fill for geometric ops: {'|'.join(FILL_CHOICES)} (default: recipe)",
    )

    det = p.add_argument_group("object detection (folders with bounding_boxes.labels)")
    det.add_argument(
        "--min-box-visibility",
        default=str(DEFAULT_MIN_BOX_VISIBILITY),
        help="drop a box when less than this share of it stays in the image (default: %(default)s)",
    )
    _switch(det, "--keep-boxless", "0", "keep copies whose boxes were all dropped (1/0)")

    out = p.add_argument_group("output format")
    out.add_argument(
        "--output-layout",
        default="folders",
        help=f"{'|'.join(LAYOUTS)}: <label>/ sub-folders, or flat",
    )
    out.add_argument(
        "--image-format",
        default="same",
        help=f"{'|'.join(OUTPUT_FORMATS)}: output encoding (default: same as input)",
    )
    out.add_argument(
        "--jpeg-quality",
        default="90",
        help="JPEG/WebP quality 1-100 (default: %(default)s)",
    )
    out.add_argument(
        "--png-compression",
        default="6",
        help="PNG zlib level 0-9 (default: %(default)s)",
    )
    out.add_argument(
        "--png-strategy",
        default="rle",
        help="zlib strategy for PNG: rle (default: photos, 2-3x faster, same size) or default (graphics)",
    )

    out.add_argument(
        "--output-size",
        default="",
        help="WIDTHxHEIGHT, e.g. 96x96: every output, originals too, at the model's input size (default: source's)",
    )
    out.add_argument(
        "--resize-mode",
        default="fit-short",
        help="with --output-size: fit-short (crop the longer side, EI's default), squash, or fit-long (letterbox)",
    )

    look = p.add_argument_group("looking before using")
    _switch(look, "--preview", "0", "also write preview.png: originals beside their copies")
    _switch(look, "--dry-run", "0", "print the plan and estimated time; write only the preview")

    running = p.add_argument_group("running")
    running.add_argument("--workers", default="0", help="worker processes (default 0 = one per CPU)")
    running.add_argument(
        "--max-failures",
        default="0.01",
        help="bad inputs tolerated before exiting 1: a fraction of samples (<1) or a count (>=1); default %(default)s",
    )
    _switch(running, "--overwrite", "0", "regenerate outputs that already exist (1/0)")
    _switch(running, "--verify-outputs", "0", "a rerun checks each recorded output's sha256, not only its size (1/0)")

    scale = p.add_argument_group("sharding, scheduled refresh, class balancing")
    scale.add_argument(
        "--shard-index",
        help="this machine's shard, 0..count-1 (default: AWS_BATCH_JOB_ARRAY_INDEX or JOB_COMPLETION_INDEX)",
    )
    scale.add_argument(
        "--shard-count",
        help="number of shards; samples are split by a hash of their key (default: AWS_BATCH_JOB_ARRAY_SIZE, 1)",
    )
    scale.add_argument(
        "--since",
        help="only sources modified after this ISO 8601 time (default: EI_LAST_SUCCESSFUL_RUN if set; 'off' = all)",
    )
    _switch(scale, "--balance", "0", "per-class copies so every class ends near --target-per-class outputs (1/0)")
    scale.add_argument(
        "--target-per-class",
        default="0",
        help="outputs per class with --balance, originals included (default 0 = match the largest class)",
    )

    proj = p.add_argument_group("Edge Impulse project upload (--dest ei) and hold-out")
    proj.add_argument(
        "--test-fraction",
        help="hold this share of each class's originals out for testing (exact, chosen by a hash of the key), "
        "unaugmented (default: 0.2 with --dest ei and --upload-category holdout, else 0 = none)",
    )
    proj.add_argument(
        "--ingestion-url",
        help="ingestion service base URL (default from EI_INGESTION_HOST: https://ingestion.<host>)",
    )
    proj.add_argument("--batch-size", help="files per upload request, 1-1000 (default: 1, as EI's own uploader)")
    proj.add_argument("--upload-concurrency", help="upload requests at once (default: 20)")
    proj.add_argument(
        "--upload-timeout",
        help="seconds one upload request may take in all, sending and answer (default: 120); then it is retried",
    )
    proj.add_argument(
        "--upload-retry-time",
        help="seconds a file's upload may take, retries and waits included (default: 300); then the run stops",
    )
    proj.add_argument(
        "--write-ei-metadata",
        default="auto",
        help="write ei-metadata.json for EI clinical data items: auto (when --metadata has dataItemInfo) | 1 | 0",
    )

    ei = p.add_argument_group("passed by Edge Impulse")
    ei.add_argument("--hmac-key", help="project HMAC key ('0' if none); accepted, not used")
    ei.add_argument("--metadata", help="the data item's metadata as JSON; recorded in the report")
    ei.add_argument(
        "--upload-category",
        help="split|training|testing when EI imports the output into a project; with --dest ei also "
        "holdout (default: --test-fraction of originals to testing, the rest and every copy to training)",
    )
    ei.add_argument("--upload-label", help="label for every output (overrides folder/name labels)")
    p.add_argument("--version", action="version", version=f"edge-augment {__version__}")
    return p


def _switch(group: argparse._ArgumentGroup, flag: str, default: str, help: str) -> None:
    """A boolean parameter: EI passes ``--flag 1``/``--flag 0``; people may type just ``--flag``."""
    group.add_argument(flag, nargs="?", const="1", default=default, help=help)


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Parse known arguments; return them and the unknown extras (EI may pass more than we declare)."""
    return build_parser().parse_known_args(argv)


_FLAG = re.compile(r"--[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def unknown_note(unknown: list[str]) -> str:
    """The log note for arguments the block does not use: flag names only, never a value. A token is named
    only when it is spelled like a flag and does not follow an unknown flag without ``=`` (it could be that
    flag's value: a value starting with '-' reaches argparse's unknowns as a token of its own)."""
    names, hidden, after_flag = [], 0, False
    for token in unknown:
        name = token.split("=", 1)[0]
        if _FLAG.fullmatch(name) and not after_flag:
            names.append(name)
            after_flag = "=" not in token
        else:
            hidden += 1
            after_flag = False
    more = f" (and {hidden} value{'s' if hidden != 1 else ''} not shown)" if hidden else ""
    return f"note: ignoring arguments this block does not use: {' '.join(names) or '-'}{more}"
