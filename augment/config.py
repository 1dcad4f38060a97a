"""RunConfig: everything a run needs, validated, built from EI-style arguments and environment."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from augment.plan.samples import label_problem
from augment.plan.selection import Shard, parse_since, resolve_shard
from augment.render.boxes import DEFAULT_MIN_BOX_VISIBILITY
from augment.render.codec import EI_SAME, OUTPUT_FORMATS, PNG_STRATEGIES, EncodeOptions
from augment.render.ops.pixels import FILL_MODES
from augment.render.presets import ORIENTATIONS, get_preset
from augment.render.recipe import MAX_COPIES, Recipe, load_recipe
from augment.render.resize import RESIZE_MODES, max_zoom, parse_output_size
from augment.sinks import ingestion
from augment.storage import jsontext
from augment.storage.s3_client import endpoint_problem
from augment.storage.s3_url import parse_s3_url

LAYOUTS = ("folders", "flat")
# Where the manifest, report and preview go when EI imports --out-directory into a project: EI's uploader
# skips every file and folder whose name starts with "." (edge-impulse-cli cli-common/fs-helpers.ts).
BOOKS = ".edge-augment/"
FILL_CHOICES = ("recipe", *FILL_MODES)


class ConfigError(ValueError):
    """A parameter is invalid; the message names it and the fix."""


@dataclass(frozen=True)
class EiEnvironment:
    """What EI passes to a transformation block as environment variables (all optional locally)."""

    api_endpoint: str | None = None
    organization_id: str | None = None
    ingestion_host: str | None = None
    last_successful_run: str | None = None
    project_id: str | None = None
    api_key: str | None = field(default=None, repr=False)
    project_api_key: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: dict[str, str]) -> EiEnvironment:
        return cls(
            api_endpoint=env.get("EI_API_ENDPOINT"),
            organization_id=env.get("EI_ORGANIZATION_ID"),
            ingestion_host=env.get("EI_INGESTION_HOST"),
            last_successful_run=env.get("EI_LAST_SUCCESSFUL_RUN"),
            project_id=env.get("EI_PROJECT_ID"),
            api_key=env.get("EI_API_KEY") or None,
            project_api_key=env.get("EI_PROJECT_API_KEY") or None,
        )


@dataclass(frozen=True)
class RunConfig:
    out_directory: Path
    recipe: Recipe
    in_directory: Path | None = None
    in_file: Path | None = None
    copies: int | None = None
    seed: int = 42
    workers: int = 1
    include_originals: bool = True
    layout: str = "folders"
    encode: EncodeOptions = field(default_factory=EncodeOptions)
    max_failures: float = 0.01
    overwrite: bool = False
    verify_outputs: bool = False  # a rerun checks recorded outputs' sha256, not only their size
    label: str | None = None
    upload_category: str | None = None
    metadata: dict[str, Any] | None = None
    ei: EiEnvironment = field(default_factory=EiEnvironment)
    min_box_visibility: float = DEFAULT_MIN_BOX_VISIBILITY
    keep_boxless: bool = False
    notes: tuple[str, ...] = ()  # non-fatal remarks made while parsing, printed at start
    source: str | None = None  # s3://bucket/prefix/ instead of in_directory/in_file
    dest: str | None = None  # s3://bucket/prefix/ instead of out_directory
    s3_endpoint: str | None = None  # overrides AWS_ENDPOINT_URL
    # Scale-out and scheduled refresh (augment/plan/selection.py).
    shard: Shard = field(default_factory=Shard)  # this run's share of the samples, by hash of the key
    since: datetime | None = None  # only sources modified after this instant (None = all)
    balance: bool = False  # per-class copies so classes end near target_per_class outputs
    target_per_class: int | None = None  # None = match the largest class
    # Edge Impulse project (augment/sinks/ingestion.py, augment/plan/holdout.py).
    test_fraction: float = 0.0  # hold this share of originals out for testing, unaugmented
    upload: ingestion.UploadSettings | None = None  # --dest ei: upload into a project (the key is not repr'd)
    write_ei_metadata: bool = False  # write ei-metadata.json (EI clinical data items)
    preview: bool = False  # write preview.png after the run
    dry_run: bool = False  # print the plan and write only the preview

    @property
    def ei_imports_output(self) -> bool:
        """EI passed --upload-category: it imports --out-directory into a project itself."""
        return self.upload_category is not None and self.upload is None

    @property
    def books(self) -> str:
        """Prefix of the bookkeeping files (manifest, report, preview) in the output: a hidden folder when EI
        imports it into a project (else EI would read report.json and preview.png as samples), else none."""
        return BOOKS if self.ei_imports_output else ""

    def failure_budget(self, samples: int) -> int:
        """How many samples may fail before the run exits non-zero."""
        if self.max_failures >= 1:
            return int(self.max_failures)
        return int(self.max_failures * samples)


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


def parse_bool(value: str | bool | None, name: str) -> bool:
    """EI passes booleans as 1/0; people type true/false/yes/no."""
    if isinstance(value, bool):
        return value
    text = (value or "").strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"--{name}: expected 1/0 (or true/false), got {value!r}")


def build_config(args: Any, env: dict[str, str]) -> RunConfig:
    """Validate parsed CLI arguments (an argparse Namespace, left unchanged) into a RunConfig; raises ConfigError."""
    notes: list[str] = []  # in the order the parameters are read
    dest_ei = (getattr(args, "dest", None) or "").strip().lower() == ingestion.DEST
    places = _places(args, dest_ei, notes)
    recipe, copies = _recipe_and_copies(args, notes)
    into_project = dest_ei or bool(args.upload_category and not places["dest"])
    encode = _encode_options(args, into_project, notes)
    if encode.output_size is not None:  # decode detail for the recipe's largest zoom, whichever outputs are due
        encode = replace(encode, zoom=max_zoom([variant.pipeline for variant in recipe.variants]))
    elif encode.resize_mode != "fit-short":
        notes.append(f"--resize-mode {encode.resize_mode} without --output-size: outputs keep the source's size")
    layout = _one_of(args.output_layout, "output-layout", LAYOUTS)
    workers = _int(args.workers, "workers", 0, 256) or available_cpus()
    max_failures = _float(args.max_failures, "max-failures", 0.0, 1e12)
    label = _upload_label(args.upload_label)
    scale = _scale_args(args, env, recipe, notes)
    seed = _int(args.seed, "seed", 0, 2**63 - 1)
    metadata = _metadata(args.metadata, notes)
    project = _project_args(args, env, recipe, seed, metadata, dest_ei=dest_ei, dest=places["dest"], notes=notes)
    return RunConfig(
        recipe=recipe,
        copies=copies,
        seed=seed,
        workers=workers,
        include_originals=parse_bool(args.include_originals, "include-originals"),
        layout=layout,
        encode=encode,
        max_failures=max_failures,
        overwrite=parse_bool(args.overwrite, "overwrite"),
        verify_outputs=_flag(args, "verify_outputs"),
        label=label,
        upload_category=args.upload_category or None,
        metadata=metadata,
        ei=EiEnvironment.from_env(env),
        min_box_visibility=_float(
            getattr(args, "min_box_visibility", DEFAULT_MIN_BOX_VISIBILITY), "min-box-visibility", 0.0, 1.0
        ),
        keep_boxless=_flag(args, "keep_boxless"),
        preview=_flag(args, "preview"),
        dry_run=_flag(args, "dry_run"),
        notes=tuple(notes),
        **places,
        **scale,
        **project,
    )


_PATH_MAX, _NAME_MAX = 4096, 255  # Linux's limits (bytes)


def _places(args: Any, dest_ei: bool, notes: list[str]) -> dict[str, Any]:
    """Where samples come from and outputs go: in_directory/in_file/source, out_directory/dest, s3_endpoint.
    ``--dest ei`` is no S3 URL: uploads are staged in --out-directory."""
    in_directory, raw_source = _bucket_input(args, notes)
    raw_dest = None if dest_ei else getattr(args, "dest", None)
    source, dest, s3_endpoint = _s3_args(raw_source, raw_dest, getattr(args, "s3_endpoint", None), notes)
    if in_directory and args.in_file:
        raise ConfigError("give --in-directory or --in-file, not both")
    if source and (in_directory or args.in_file):
        raise ConfigError("give --source or --in-directory/--in-file, not both")
    if not in_directory and not args.in_file and not source:
        raise ConfigError("no input: pass --in-directory <folder>, --in-file <image> or --source s3://bucket/prefix/")
    in_dir = _folder(in_directory, "in-directory") if in_directory else None
    if dest is None and not (args.out_directory or "").strip():  # Path("") is the working directory
        raise ConfigError("--out-directory is empty: give the folder the outputs go to")
    out_dir = _folder(args.out_directory or ".", "out-directory")
    if dest is None and in_dir is not None and out_dir.resolve() == in_dir.resolve():
        raise ConfigError(f"--out-directory {out_dir} is the input folder; choose a separate (or sub-) folder")
    return {
        "in_directory": in_dir,
        "in_file": _path(args.in_file, "in-file") if args.in_file else None,
        "out_directory": out_dir,
        "source": source,
        "dest": dest,
        "s3_endpoint": s3_endpoint,
    }


def _folder(raw: str, name: str) -> Path:
    """An absolute folder path whose links resolve (a symlink loop is refused here, not met mid-run)."""
    path = _path(raw, name)
    try:
        path.resolve()
    except (RuntimeError, OSError) as e:  # Python 3.11 raises RuntimeError for a loop
        raise ConfigError(f"--{name} {path}: cannot be resolved ({e})") from None
    return path


def _path(raw: str, flag: str) -> Path:
    """An absolute path the system can open: not over PATH_MAX in all, nor over NAME_MAX in one part."""
    path = Path(raw).absolute()
    size = len(os.fsencode(str(path)))
    longest = max((len(os.fsencode(part)) for part in path.parts), default=0)
    if size >= _PATH_MAX or longest > _NAME_MAX:
        shown = f"{str(path)[:60]!r}… ({size} bytes)"
        raise ConfigError(f"--{flag}: {shown} is longer than a path can be ({_PATH_MAX} bytes, {_NAME_MAX} a name)")
    return path


def _recipe_and_copies(args: Any, notes: list[str]) -> tuple[Recipe, int | None]:
    """--preset/--recipe/--orientation, --copies (None: the recipe's own) and --fill."""
    recipe = _recipe(args, notes)
    copies = _int(args.copies, "copies", 0, MAX_COPIES) if args.copies not in (None, "") else None
    if copies is not None and recipe.is_fixed:
        notes.append(f"--copies {copies} ignored: preset/recipe {recipe.name!r} makes a fixed list of variants")
        copies = None
    fill = _one_of(args.fill, "fill", FILL_CHOICES)
    return (recipe if fill == "recipe" else recipe.with_fill(fill)), copies


def _encode_options(args: Any, into_project: bool, notes: list[str]) -> EncodeOptions:
    """--image-format (EI_SAME when the outputs go into a project), --jpeg-quality, --png-*."""
    image_format = _one_of(args.image_format, "image-format", OUTPUT_FORMATS)
    if image_format == "same" and into_project:
        image_format = EI_SAME  # the outputs go into a project: only formats EI ingests
        notes.append(
            "--image-format same into an Edge Impulse project: PNG/JPEG inputs keep their format, others become PNG"
        )
    return EncodeOptions(
        image_format,
        _int(args.jpeg_quality, "jpeg-quality", 1, 100),
        _int(args.png_compression, "png-compression", 0, 9),
        _choice(getattr(args, "png_strategy", "rle"), "png-strategy", PNG_STRATEGIES),
        _output_size(getattr(args, "output_size", None)),
        _choice(getattr(args, "resize_mode", None) or "fit-short", "resize-mode", RESIZE_MODES),
    )


def _output_size(raw: str | None) -> tuple[int, int] | None:
    """--output-size WxH; empty or absent = the source's own size."""
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


def _flag(args: Any, name: str) -> bool:
    """An optional 1/0 switch (absent from a Namespace built by hand: off)."""
    return parse_bool(getattr(args, name, "0"), name.replace("_", "-"))


def _project_args(
    args: Any,
    env: dict[str, str],
    recipe: Recipe,
    seed: int,
    metadata: dict[str, Any] | None,
    *,
    dest_ei: bool,
    dest: str | None,
    notes: list[str],
) -> dict[str, Any]:
    """--dest ei (upload settings), --test-fraction / --upload-category (hold-out), --write-ei-metadata."""
    try:
        fraction, upload, more = ingestion.resolve(
            dest_ei,
            args.upload_category,
            getattr(args, "test_fraction", None),
            env,
            url=getattr(args, "ingestion_url", None),
            batch_size=getattr(args, "batch_size", None),
            concurrency=getattr(args, "upload_concurrency", None),
            timeout=getattr(args, "upload_timeout", None),
            retry_time=getattr(args, "upload_retry_time", None),
            recipe=recipe.name,
            seed=seed,
        )
    except ValueError as e:
        raise ConfigError(str(e)) from None
    notes.extend(more)
    raw = (getattr(args, "write_ei_metadata", None) or "auto").strip().lower()
    if raw == "auto":  # EI passes a clinical data item's metadata with its dataItemInfo; outputs go to a folder
        imported = bool((args.upload_category or "").strip())  # not when EI imports the folder into a project:
        write = "dataItemInfo" in (metadata or {}) and not dest_ei and not dest and not imported  # a .json there
        # could be read as a sample
    else:
        write = parse_bool(raw, "write-ei-metadata")
    return {"test_fraction": fraction, "upload": upload, "write_ei_metadata": write}


def _scale_args(args: Any, env: dict[str, str], recipe: Recipe, notes: list[str]) -> dict[str, Any]:
    """--shard-index/--shard-count (or the array-job env vars), --since (or EI_LAST_SUCCESSFUL_RUN), --balance."""
    try:
        shard, where = resolve_shard(getattr(args, "shard_index", None), getattr(args, "shard_count", None), env)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if where:
        notes.append(where)
    raw_since = getattr(args, "since", None)
    from_env = raw_since in (None, "") and bool(env.get("EI_LAST_SUCCESSFUL_RUN"))
    text = env.get("EI_LAST_SUCCESSFUL_RUN") if from_env else raw_since
    try:
        since = parse_since(text)
    except ValueError:
        name = "EI_LAST_SUCCESSFUL_RUN" if from_env else "--since"
        raise ConfigError(f"{name}: {text!r} is not an ISO 8601 time (e.g. 2026-11-25T12:00:00Z)") from None
    if since is not None and from_env:
        notes.append(f"--since {since.isoformat()} from EI_LAST_SUCCESSFUL_RUN (pass --since off to process all)")
    balance = parse_bool(getattr(args, "balance", "0"), "balance")
    target = _int(getattr(args, "target_per_class", None) or 0, "target-per-class", 0, 10**9)
    if balance and recipe.is_fixed:
        raise ConfigError(f"--balance needs a random preset or recipe; {recipe.name!r} makes a fixed list of variants")
    if target and not balance:
        notes.append("--target-per-class ignored without --balance 1")
    return {"shard": shard, "since": since, "balance": balance, "target_per_class": target or None}


def _bucket_input(args: Any, notes: list[str]) -> tuple[str | None, str | None]:
    """(input folder, source URL): EI's ``bucket`` + prefix parameter pair read through EI's mount
    (``/mnt/s3fs/<bucket>``) when it is there, else straight from S3; without --bucket, the flags as given."""
    bucket = (getattr(args, "bucket", None) or "").strip()
    if not bucket:
        return args.in_directory, getattr(args, "source", None)
    if args.in_directory or args.in_file or getattr(args, "source", None):
        raise ConfigError("--bucket replaces --in-directory/--in-file/--source; give only one of them")
    prefix = (args.bucket_prefix or "").strip().strip("/")
    if "/" in bucket or any(part in ("", ".", "..") for part in prefix.split("/") if prefix):
        raise ConfigError(f"--bucket/--bucket-prefix: {bucket!r} / {prefix!r} is not a bucket name and prefix")
    mount = Path(args.bucket_mount_root) / bucket
    if mount.is_dir():
        folder = str(mount / prefix)
        notes.append(f"reading bucket {bucket!r} through its mount: {folder}")
        return folder, None
    url = f"s3://{bucket}/{prefix + '/' if prefix else ''}"
    notes.append(f"bucket {bucket!r} is not mounted at {mount}: reading {url} from S3")
    return None, url


def _s3_args(
    raw_source: str | None, raw_dest: str | None, raw_endpoint: str | None, notes: list[str]
) -> tuple[str | None, str | None, str | None]:
    """--source, --dest (s3://bucket/prefix/, normalised) and --s3-endpoint, validated."""
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
    return (str(source) if source else None, str(dest) if dest else None, endpoint)


def _recipe(args: Any, notes: list[str]) -> Recipe:
    orientation = _choice(getattr(args, "orientation", None) or "upright", "orientation", ORIENTATIONS)
    text = (args.recipe or "").replace("\\n", "\n").strip()  # EI may pass multiline strings with literal \n
    if text:
        if args.preset not in ("custom", None, ""):
            notes.append(f"--recipe given: it replaces --preset {args.preset}")
        if orientation != "upright":
            notes.append(f"--orientation {orientation} ignored: a --recipe says its own rotations and flips")
        return load_recipe(text)
    if args.preset == "custom":
        raise ConfigError("--preset custom needs --recipe (JSON text or a path to a .json file)")
    recipe = get_preset(args.preset, orientation)
    if recipe.is_fixed and orientation != "upright":
        notes.append(f"--orientation {orientation} ignored: preset {args.preset!r} makes a fixed list of variants")
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


def _one_of(raw: Any, name: str, options: tuple[str, ...]) -> str:
    """``raw`` exactly as given, if it is one of ``options``."""
    if raw not in options:
        raise ConfigError(f"--{name}: {raw!r} is not one of {', '.join(options)}")
    return raw


def _choice(raw: Any, name: str, options: tuple[str, ...]) -> str:
    value = str(raw or "").strip().lower()
    if value not in options:
        raise ConfigError(f"--{name}: {raw!r} is not one of {', '.join(options)}")
    return value


def _int(raw: Any, name: str, lo: int, hi: int) -> int:
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise ConfigError(f"--{name}: expected a whole number, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"--{name}: {value} is outside {lo}..{hi}")
    return value


def _float(raw: Any, name: str, lo: float, hi: float) -> float:
    try:
        value = float(str(raw).strip())
    except ValueError:
        raise ConfigError(f"--{name}: expected a number, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"--{name}: {value:g} is outside {lo:g}..{hi:g}")
    return value
