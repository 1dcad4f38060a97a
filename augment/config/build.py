"""build_config: parsed CLI arguments and the environment in, a validated RunConfig out (or a ConfigError)."""

from __future__ import annotations

import argparse
import json
import math
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from augment.config.env import Knobs, unknown
from augment.config.options import BY_DEST, FILL_CHOICES, LAYOUTS
from augment.config.project import DEST, project_args
from augment.config.sections import (
    PlanConfig,
    RenderConfig,
    RunConfig,
    RunSettings,
    SinkConfig,
    SourceConfig,
    StorageConfig,
)
from augment.config.values import ConfigError, absolute, choice, folder, number, parse_bool, whole
from augment.plan.samples import label_problem
from augment.plan.selection import parse_since, resolve_shard
from augment.render.codec import EI_SAME, EncodeOptions
from augment.render.presets import get_preset
from augment.render.recipe import MAX_COPIES, Recipe, load_recipe
from augment.render.resize import max_zoom, parse_output_size
from augment.storage import jsontext
from augment.storage.s3_client import endpoint_problem
from augment.storage.s3_url import parse_s3_url


def build_config(args: argparse.Namespace, env: dict[str, str]) -> RunConfig:
    """Validate parsed CLI arguments (``augment.cli.parse``; left unchanged) and the environment into a
    RunConfig; raises ConfigError."""
    notes: list[str] = []  # in the order the parameters are read
    knobs = Knobs.from_env(env)
    notes.extend(unknown(env))
    dest_ei = (args.dest or "").strip().lower() == DEST
    source, sink_dir, sink_url, storage = _places(args, dest_ei, env, knobs, notes)
    recipe, copies = _recipe_and_copies(args, notes)
    into_project = dest_ei or bool(args.upload_category and not sink_url)
    encode = _encode_options(args, into_project, notes)
    if encode.output_size is not None:  # decode detail for the recipe's largest zoom, whichever outputs are due
        encode = replace(encode, zoom=max_zoom([variant.pipeline for variant in recipe.variants]))
    elif encode.resize_mode != BY_DEST["resize_mode"].default:
        notes.append(f"--resize-mode {encode.resize_mode} without --output-size: outputs keep the source's size")
    layout = _choice(args, "output_layout", LAYOUTS)
    workers = whole(args.workers, "workers", 0, 256) or available_cpus()
    max_failures = number(args.max_failures, "max-failures", 0.0, 1e12)
    scale = _scale_args(args, env, recipe, notes)
    seed = whole(args.seed, "seed", 0, 2**63 - 1)
    metadata = _metadata(args.metadata, notes)
    project = project_args(args, env, recipe.name, seed, metadata, knobs, dest_ei=dest_ei, dest=sink_url, notes=notes)
    return RunConfig(
        source=source,
        plan=PlanConfig(
            recipe=recipe,
            copies=copies,
            include_originals=parse_bool(args.include_originals, "include-originals"),
            layout=layout,
            test_fraction=project.test_fraction,
            **scale,
        ),
        render=RenderConfig(
            seed=seed,
            encode=encode,
            min_box_visibility=number(args.min_box_visibility, "min-box-visibility", 0.0, 1.0),
            keep_boxless=parse_bool(args.keep_boxless, "keep-boxless"),
            huge_pixels=knobs.huge_pixels,
        ),
        sink=SinkConfig(
            out_directory=sink_dir,
            url=sink_url,
            upload=project.upload,
            upload_category=args.upload_category or None,
            overwrite=parse_bool(args.overwrite, "overwrite"),
            verify_outputs=parse_bool(args.verify_outputs, "verify-outputs"),
            write_ei_metadata=project.write_ei_metadata,
            lock_wait=knobs.lock_wait,
        ),
        storage=storage,
        run=RunSettings(
            workers=workers,
            io_threads=knobs.io_threads,
            max_failures=max_failures,
            preview=parse_bool(args.preview, "preview"),
            dry_run=parse_bool(args.dry_run, "dry-run"),
            metadata=metadata,
            notes=tuple(notes),
        ),
    )


def available_cpus(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """CPUs this process may use: its affinity, capped by a cgroup CPU quota (a container's --cpus, or the
    limit EI sets for a block), so --workers 0 never starts one process per host CPU inside a small limit."""
    cpus = len(os.sched_getaffinity(0))
    quota = period = None
    try:
        fields = (cgroup / "cpu.max").read_text().split()  # cgroup v2: "<quota|max> <period>"
        if fields and fields[0] != "max":
            quota, period = int(fields[0]), int(fields[1])
    except (OSError, ValueError, IndexError):
        try:  # cgroup v1
            quota = int((cgroup / "cpu" / "cpu.cfs_quota_us").read_text())
            period = int((cgroup / "cpu" / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            pass
    if quota is not None and period and quota > 0:
        cpus = min(cpus, max(1, math.ceil(quota / period)))
    return cpus


def _choice(args: argparse.Namespace, dest: str, options: tuple[str, ...]) -> str:
    """The flag's value by the one rule for choices; empty (EI passes every parameter) = its default."""
    option = BY_DEST[dest]
    raw = getattr(args, dest)
    return choice(raw if (raw or "").strip() else option.default, option.flag[2:], options)


def _places(
    args: argparse.Namespace, dest_ei: bool, env: dict[str, str], knobs: Knobs, notes: list[str]
) -> tuple[SourceConfig, Path, str | None, StorageConfig]:
    """Where samples come from and outputs go (folder, S3 URL) and the S3 settings they share. ``--dest ei``
    is no S3 URL: uploads are staged in --out-directory."""
    in_directory, raw_source = _bucket_input(args, notes)
    source, dest, s3_endpoint = _s3_args(raw_source, None if dest_ei else args.dest, args.s3_endpoint, env, notes)
    if in_directory and args.in_file:
        raise ConfigError("give --in-directory or --in-file, not both")
    if source and (in_directory or args.in_file):
        raise ConfigError("give --source or --in-directory/--in-file, not both")
    if not in_directory and not args.in_file and not source:
        raise ConfigError("no input: pass --in-directory <folder>, --in-file <image> or --source s3://bucket/prefix/")
    in_dir = folder(in_directory, "in-directory") if in_directory else None
    if dest is None and not (args.out_directory or "").strip():  # Path("") is the working directory
        raise ConfigError("--out-directory is empty: give the folder the outputs go to")
    out_dir = folder(args.out_directory or ".", "out-directory")
    if dest is None and in_dir is not None and out_dir.resolve() == in_dir.resolve():
        raise ConfigError(f"--out-directory {out_dir} is the input folder; choose a separate (or sub-) folder")
    in_file = absolute(args.in_file, "in-file") if args.in_file else None
    label = _upload_label(args.upload_label)
    storage = StorageConfig(s3_endpoint, knobs.s3_timeout, knobs.s3_max_attempts)
    return SourceConfig(in_dir, in_file, source, label), out_dir, dest, storage


def _recipe_and_copies(args: argparse.Namespace, notes: list[str]) -> tuple[Recipe, int | None]:
    """--preset/--recipe/--orientation, --copies (None: the recipe's own) and --fill."""
    recipe = _recipe(args, notes)
    copies = whole(args.copies, "copies", 0, MAX_COPIES) if args.copies not in (None, "") else None
    if copies is not None and recipe.is_fixed:
        notes.append(f"--copies {copies} ignored: preset/recipe {recipe.name!r} makes a fixed list of variants")
        copies = None
    fill = _choice(args, "fill", FILL_CHOICES)
    return (recipe if fill == "recipe" else recipe.with_fill(fill)), copies


def _encode_options(args: argparse.Namespace, into_project: bool, notes: list[str]) -> EncodeOptions:
    """--image-format (EI_SAME when the outputs go into a project), --jpeg-quality, --png-*, --output-size."""
    image_format = _choice(args, "image_format", BY_DEST["image_format"].choices)
    if image_format == "same" and into_project:
        image_format = EI_SAME  # the outputs go into a project: only formats EI ingests
        notes.append(
            "--image-format same into an Edge Impulse project: PNG/JPEG inputs keep their format, others become PNG"
        )
    return EncodeOptions(
        image_format,
        whole(args.jpeg_quality, "jpeg-quality", 1, 100),
        whole(args.png_compression, "png-compression", 0, 9),
        _choice(args, "png_strategy", BY_DEST["png_strategy"].choices),
        _output_size(args.output_size),
        _choice(args, "resize_mode", BY_DEST["resize_mode"].choices),
    )


def _output_size(raw: str | None) -> tuple[int, int] | None:
    """--output-size WxH; empty = the source's own size."""
    if not (raw or "").strip():
        return None
    try:
        return parse_output_size(raw or "")
    except ValueError as e:
        raise ConfigError(f"--output-size: {e}") from None


def _upload_label(raw: str | None) -> str | None:
    label = (raw or "").strip() or None
    if label is not None and (problem := label_problem(label)):
        raise ConfigError(f"--upload-label: {label!r} cannot be used as a label: it {problem}")
    return label


def _scale_args(args: argparse.Namespace, env: dict[str, str], recipe: Recipe, notes: list[str]) -> dict[str, Any]:
    """--shard-index/--shard-count (or the array-job env vars), --since (or EI_LAST_SUCCESSFUL_RUN), --balance."""
    try:
        shard, where = resolve_shard(args.shard_index, args.shard_count, env)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if where:
        notes.append(where)
    from_env = args.since in (None, "") and bool(env.get("EI_LAST_SUCCESSFUL_RUN"))
    text = env.get("EI_LAST_SUCCESSFUL_RUN") if from_env else args.since
    try:
        since = parse_since(text)
    except ValueError:
        name = "EI_LAST_SUCCESSFUL_RUN" if from_env else "--since"
        raise ConfigError(f"{name}: {text!r} is not an ISO 8601 time (e.g. 2026-11-25T12:00:00Z)") from None
    if since is not None and from_env:
        notes.append(f"--since {since.isoformat()} from EI_LAST_SUCCESSFUL_RUN (pass --since off to process all)")
    balance = parse_bool(args.balance, "balance")
    target = whole(args.target_per_class or 0, "target-per-class", 0, 10**9)
    if balance and recipe.is_fixed:
        raise ConfigError(f"--balance needs a random preset or recipe; {recipe.name!r} makes a fixed list of variants")
    if target and not balance:
        notes.append("--target-per-class ignored without --balance 1")
    return {"shard": shard, "since": since, "balance": balance, "target_per_class": target or None}


def _bucket_input(args: argparse.Namespace, notes: list[str]) -> tuple[str | None, str | None]:
    """(input folder, source URL): EI's ``bucket`` + prefix parameter pair read through EI's mount
    (``/mnt/s3fs/<bucket>``) when it is there, else straight from S3; without --bucket, the flags as given."""
    bucket = (args.bucket or "").strip()
    if not bucket:
        return args.in_directory, args.source
    if args.in_directory or args.in_file or args.source:
        raise ConfigError("--bucket replaces --in-directory/--in-file/--source; give only one of them")
    prefix = (args.bucket_prefix or "").strip().strip("/")
    if "/" in bucket or any(part in ("", ".", "..") for part in prefix.split("/") if prefix):
        raise ConfigError(f"--bucket/--bucket-prefix: {bucket!r} / {prefix!r} is not a bucket name and prefix")
    mount = Path(args.bucket_mount_root) / bucket
    if mount.is_dir():
        found = str(mount / prefix)
        notes.append(f"reading bucket {bucket!r} through its mount: {found}")
        return found, None
    url = f"s3://{bucket}/{prefix + '/' if prefix else ''}"
    notes.append(f"bucket {bucket!r} is not mounted at {mount}: reading {url} from S3")
    return None, url


def _s3_args(
    raw_source: str | None, raw_dest: str | None, raw_endpoint: str | None, env: dict[str, str], notes: list[str]
) -> tuple[str | None, str | None, str | None]:
    """--source, --dest (s3://bucket/prefix/, normalised) and --s3-endpoint (else the AWS_ENDPOINT_URL_S3 or
    AWS_ENDPOINT_URL the S3 client would use), validated."""
    urls = {}
    for name, given in (("source", raw_source), ("dest", raw_dest)):
        raw = (given or "").strip()
        try:
            urls[name] = parse_s3_url(raw) if raw else None
        except ValueError as e:
            raise ConfigError(f"--{name}: {e}") from None
    source, dest = urls["source"], urls["dest"]
    if source and dest and source == dest:
        raise ConfigError(f"--dest {dest} is the --source prefix; choose a separate (or sub-) prefix")
    if dest:
        notes.append(f"outputs go to {dest} (--dest); --out-directory is not used")
    endpoint = (raw_endpoint or "").strip() or None
    if endpoint and (problem := endpoint_problem(endpoint)):
        raise ConfigError(f"--s3-endpoint: {problem}")
    variable = next((name for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL") if env.get(name)), None)
    if (source or dest) and not endpoint and variable and (problem := endpoint_problem(env[variable])):
        raise ConfigError(f"{variable}: {problem}")
    return (str(source) if source else None, str(dest) if dest else None, endpoint)


def _recipe(args: argparse.Namespace, notes: list[str]) -> Recipe:
    orientation = _choice(args, "orientation", BY_DEST["orientation"].choices)
    preset = _choice(args, "preset", BY_DEST["preset"].choices)
    text = (args.recipe or "").replace("\\n", "\n").strip()  # EI may pass multiline strings with literal \n
    if text:
        if preset != "custom":
            notes.append(f"--recipe given: it replaces --preset {preset}")
        if orientation != "upright":
            notes.append(f"--orientation {orientation} ignored: a --recipe says its own rotations and flips")
        return load_recipe(text)
    if preset == "custom":
        raise ConfigError("--preset custom needs --recipe (JSON text or a path to a .json file)")
    recipe = get_preset(preset, orientation)
    if recipe.is_fixed and orientation != "upright":
        notes.append(f"--orientation {orientation} ignored: preset {preset!r} makes a fixed list of variants")
    return recipe


def _metadata(raw: str | None, notes: list[str]) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        value = jsontext.loads(raw)
    except json.JSONDecodeError as e:
        notes.append(f"--metadata ignored: not valid JSON ({e.msg} at column {e.colno})")
        return None
    except jsontext.NumberTooLong as e:
        notes.append(f"--metadata ignored: {e}")
        return None
    except RecursionError:
        notes.append("--metadata ignored: nested too deeply")
        return None
    if not isinstance(value, dict):
        notes.append("--metadata ignored: expected a JSON object")
        return None
    return value
