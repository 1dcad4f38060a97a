"""The rules of ``--dest ei`` (upload into an Edge Impulse project), ``--upload-category``, ``--test-fraction``
and ``--write-ei-metadata``: which flags go together, their defaults, and the project API key."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from augment.config.env import BY_NAME, Knobs
from augment.config.values import ConfigError, number, parse_bool, whole
from augment.plan.holdout import DEFAULT_TEST_FRACTION
from augment.sinks.ingestion_api import (
    CATEGORIES,
    DEFAULT_BATCH,
    DEFAULT_CONCURRENCY,
    DEFAULT_RETRY_TIME,
    DEFAULT_TIMEOUT,
    HOLDOUT,
    MAX_BATCH,
    UploadSettings,
    ingestion_url,
)

DEST = "ei"  # --dest ei
_BACKOFF = BY_NAME["EDGE_AUGMENT_RETRY_BACKOFF"]


@dataclass(frozen=True)
class Project:
    test_fraction: float
    upload: UploadSettings | None
    write_ei_metadata: bool


def project_args(
    args: argparse.Namespace,
    env: dict[str, str],
    recipe: str,
    seed: int,
    metadata: dict[str, Any] | None,
    knobs: Knobs,
    *,
    dest_ei: bool,
    dest: str | None,
    notes: list[str],
) -> Project:
    """--dest ei (upload settings), --test-fraction / --upload-category (hold-out), --write-ei-metadata."""
    fraction, upload, more = resolve(
        dest_ei,
        args.upload_category,
        args.test_fraction,
        env,
        url=args.ingestion_url,
        batch_size=args.batch_size,
        concurrency=args.upload_concurrency,
        timeout=args.upload_timeout,
        retry_time=args.upload_retry_time,
        backoff=knobs.retry_backoff,
        recipe=recipe,
        seed=seed,
    )
    notes.extend(more)
    raw = (args.write_ei_metadata or "auto").strip().lower()
    if raw == "auto":  # EI passes a clinical data item's metadata with its dataItemInfo; outputs go to a folder
        imported = bool((args.upload_category or "").strip())  # not when EI imports the folder into a project:
        write = "dataItemInfo" in (metadata or {}) and not dest_ei and not dest and not imported  # a .json there
        # could be read as a sample
    else:
        write = parse_bool(raw, "write-ei-metadata")
    return Project(fraction, upload, write)


def resolve(
    dest_ei: bool,
    upload_category: str | None,
    test_fraction: str | None,
    env: dict[str, str],
    *,
    url: str | None = None,
    batch_size: str | None = None,
    concurrency: str | None = None,
    timeout: str | None = None,
    retry_time: str | None = None,
    backoff: float = _BACKOFF.default,
    recipe: str = "",
    seed: int = 0,
) -> tuple[float, UploadSettings | None, list[str]]:
    """(test fraction, upload settings or None, notes) from the flags; raises ConfigError naming the flag.

    ``--dest ei``: uploads; category ``holdout`` (default: the block's split, ``--test-fraction`` default
    0.2), ``training``, ``testing`` or ``split`` (EI's split by file hash: leaks, allowed with a warning).
    Otherwise EI (or nobody) imports ``--out-directory``: a category EI passed is its business.
    """
    notes: list[str] = []
    category = (upload_category or "").strip().lower() or None
    raw = (test_fraction or "").strip()
    fraction = number(raw, "test-fraction", 0.0, 1.0) if raw else None
    if fraction is not None and fraction >= 1:
        raise ConfigError(f"--test-fraction: {fraction:g} is outside 0..<1")
    if not dest_ei:
        if category not in (None, HOLDOUT):  # EI imports the out-directory into one category itself
            if category == "split":
                notes.append(
                    "EI will split these outputs 80/20 by file hash: augmented copies of one image can land in "
                    "both training and testing (leakage); import into training and hold out with --dest ei"
                )
            if fraction:
                notes.append(f"--test-fraction ignored: EI imports --out-directory into {category!r} itself")
            return 0.0, None, notes
        return (fraction if fraction is not None else (DEFAULT_TEST_FRACTION if category else 0.0)), None, notes

    if category in (None, HOLDOUT):
        fraction = DEFAULT_TEST_FRACTION if fraction is None else fraction
        category = "training"  # where everything not held out goes
    elif category in CATEGORIES:
        if fraction:  # EI passes every parameter, a hidden (showIf) test-fraction included: not an error
            notes.append(f"--test-fraction ignored: every output goes to {category!r} (--upload-category)")
        fraction = 0.0
        if category == "split":
            notes.append(
                "--upload-category split: EI splits by file hash, so augmented copies of one image land in both "
                f"training and testing (leakage); --upload-category {HOLDOUT} avoids it"
            )
    else:
        raise ConfigError(f"--upload-category: {category!r} is not one of {HOLDOUT}, {', '.join(CATEGORIES)}")
    key, note = project_key(env)
    if note:
        notes.append(note)
    if not key:
        raise ConfigError(
            "--dest ei needs a project API key: EI_PROJECT_API_KEY (set by EI for data sources) or the "
            "PROJECT_API_KEY secret"
        )
    if any(ord(c) < 33 or ord(c) > 126 for c in key):
        raise ConfigError("the project API key has spaces or control characters; paste it again")
    try:
        base = ingestion_url(env.get("EI_INGESTION_HOST"), url)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    settings = UploadSettings(
        url=base,
        api_key=key,
        category=category,
        batch_size=_given(batch_size, DEFAULT_BATCH, lambda r: whole(r, "batch-size", 1, MAX_BATCH)),
        concurrency=_given(concurrency, DEFAULT_CONCURRENCY, lambda r: whole(r, "upload-concurrency", 1, 64)),
        timeout=_given(timeout, DEFAULT_TIMEOUT, lambda r: number(r, "upload-timeout", 1, 86400)),
        retry_time=_given(retry_time, DEFAULT_RETRY_TIME, lambda r: number(r, "upload-retry-time", 1, 86400)),
        backoff=backoff,
        recipe=recipe,
        seed=seed,
    )
    return fraction, settings, notes


def project_key(env: dict[str, str]) -> tuple[str, str | None]:
    """(the project API key, a note or None). ``EI_PROJECT_API_KEY`` wins: EI sets it only when the block runs
    as a project's data source, and that project is where its images belong. The ``PROJECT_API_KEY`` secret
    is for runs without it (a transformation job); empty or blank counts as unset. No key value is returned
    in the note."""
    ei_key = (env.get("EI_PROJECT_API_KEY") or "").strip()
    secret = (env.get("PROJECT_API_KEY") or "").strip()
    if ei_key and secret and secret != ei_key:
        return ei_key, "PROJECT_API_KEY ignored: EI passed EI_PROJECT_API_KEY (this project's data source)"
    return ei_key or secret, None


def _given(raw: str | None, default: Any, parse: Any) -> Any:
    """``parse(raw)``, or ``default`` when the flag was not given (EI passes hidden ones empty)."""
    return default if raw in (None, "") else parse(raw)
