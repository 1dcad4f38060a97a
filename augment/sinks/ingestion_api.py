"""Edge Impulse's ingestion API as the block uses it: settings, URL and label rules, flag resolution.

Shared by the sink (``ingestion.py``) and its uploader (``ingestion_upload.py``), so neither imports the other's
internals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from augment.plan.holdout import DEFAULT_TEST_FRACTION
from augment.plan.samples import has_control_characters
from augment.sinks.http import Limits

DEST = "ei"  # --dest ei
UPLOADS = "uploads.jsonl"
DUPLICATE = "An item with this hash already exists"
CATEGORIES = ("training", "testing", "split")  # what the ingestion path takes (plus EI's 'anomaly', unused)
HOLDOUT = "holdout"  # the block's own split: --test-fraction of originals to testing, per class by key
MAX_BATCH = 1000  # EI: at most 1,000 files a request
MAX_FILE_BYTES = 100 * 1024 * 1024  # EI: at most 100 MB a file
MAX_REQUEST_BYTES = 64 * 1024 * 1024  # a batch is sent early past this many bytes
DEFAULT_BATCH, DEFAULT_CONCURRENCY = 1, 20  # as EI's own clients: one image a request, 20 at once
DEFAULT_TIMEOUT, DEFAULT_RETRY_TIME = 120.0, 300.0  # seconds: one request in all; a file's tries in all
BACKOFF_ENV = "EDGE_AUGMENT_RETRY_BACKOFF"  # urllib3 backoff factor in seconds (default 0.5); tests use less
_ENCODE_SAFE = "-_.!~*'()"  # what JavaScript's encodeURIComponent leaves as is (EI's CLI encodes labels so)


@dataclass(frozen=True)
class UploadSettings:
    url: str  # base, e.g. https://ingestion.edgeimpulse.com
    api_key: str = field(repr=False)
    category: str = "training"  # for outputs without a hold-out category of their own
    batch_size: int = DEFAULT_BATCH
    concurrency: int = DEFAULT_CONCURRENCY
    timeout: float = DEFAULT_TIMEOUT  # one request, sending and answer, however slowly the bytes come
    retry_time: float = DEFAULT_RETRY_TIME  # a request's tries and the waits between them
    retries: int = 8
    backoff: float = 0.5  # urllib3 backoff_factor: 0.5, 1, 2, 4 ... s (capped at 30 s), with jitter
    recipe: str = ""
    seed: int = 0

    def endpoint(self, category: str) -> str:
        return f"{self.url}/api/{category}/files"

    def limits(self) -> Limits:
        idle = min(60.0, self.timeout)  # a silent server is given up on sooner than a slow one
        budget = self.retry_time
        return Limits(idle=idle, attempt=self.timeout, budget=budget, retries=self.retries, backoff=self.backoff)


def ingestion_url(host: str | None, override: str | None = None) -> str:
    """The ingestion base URL, by EI's rules for ``EI_INGESTION_HOST``, unless ``override`` is given."""
    if override:
        url = override.strip().rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or "@" in parts.netloc:
            raise ValueError(f"--ingestion-url: expected http(s)://host[:port], got {override!r}")
        return url
    host = (host or "").strip() or "edgeimpulse.com"
    if host == "host.docker.internal":
        return "http://host.docker.internal:4810"
    if host.endswith(".test.edgeimpulse.com"):
        return f"http://ingestion.{host}"
    return f"https://ingestion.{host}"


def encode_label(label: str) -> str:
    """``x-label`` as EI's CLI sends it (``encodeURIComponent``); control characters are refused."""
    if not label or has_control_characters(label):
        raise ValueError(f"label {label!r} is empty or has control characters (CR, LF, ...)")
    return quote(label, safe=_ENCODE_SAFE)


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
    recipe: str = "",
    seed: int = 0,
) -> tuple[float, UploadSettings | None, list[str]]:
    """(test fraction, upload settings or None, notes) from the flags; raises ValueError naming the flag.

    ``--dest ei``: uploads; category ``holdout`` (default: the block's split, ``--test-fraction`` default
    0.2), ``training``, ``testing`` or ``split`` (EI's split by file hash: leaks, allowed with a warning).
    Otherwise EI (or nobody) imports ``--out-directory``: a category EI passed is its business.
    """
    notes: list[str] = []
    category = (upload_category or "").strip().lower() or None
    raw = (test_fraction or "").strip()
    try:
        fraction = float(raw) if raw else None
    except ValueError:
        raise ValueError(f"--test-fraction: expected a number, got {test_fraction!r}") from None
    if fraction is not None and not 0 <= fraction < 1:
        raise ValueError(f"--test-fraction: {fraction:g} is outside 0..<1")
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
        raise ValueError(f"--upload-category: {category!r} is not one of {HOLDOUT}, {', '.join(CATEGORIES)}")
    key, note = project_key(env)
    if note:
        notes.append(note)
    if not key:
        raise ValueError(
            "--dest ei needs a project API key: EI_PROJECT_API_KEY (set by EI for data sources) or the "
            "PROJECT_API_KEY secret"
        )
    if any(ord(c) < 33 or ord(c) > 126 for c in key):
        raise ValueError("the project API key has spaces or control characters; paste it again")
    settings = UploadSettings(
        url=ingestion_url(env.get("EI_INGESTION_HOST"), url),
        api_key=key,
        category=category,
        batch_size=_int(batch_size, "batch-size", DEFAULT_BATCH, 1, MAX_BATCH),
        concurrency=_int(concurrency, "upload-concurrency", DEFAULT_CONCURRENCY, 1, 64),
        timeout=_seconds(timeout, "upload-timeout", DEFAULT_TIMEOUT),
        retry_time=_seconds(retry_time, "upload-retry-time", DEFAULT_RETRY_TIME),
        backoff=_backoff(env.get(BACKOFF_ENV)),
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


def _backoff(raw: str | None) -> float:
    try:
        value = float(raw) if raw else 0.5
    except ValueError:
        raise ValueError(f"{BACKOFF_ENV}: expected seconds, got {raw!r}") from None
    if not 0 <= value <= 60:
        raise ValueError(f"{BACKOFF_ENV}: {value:g} is outside 0..60")
    return value


def _seconds(raw: str | None, name: str, default: float) -> float:
    return _int(raw, name, default, 1, 86400, float)  # 1 s to a day (refuses nan and inf too)


def _int(raw: str | None, name: str, default: Any, lo: int, hi: int, kind: type = int) -> Any:
    """``raw`` as a ``kind`` (int, or float for seconds) within lo..hi, ``default`` when empty."""
    if raw in (None, ""):
        return default
    try:
        value = kind(str(raw).strip())
    except ValueError:
        what = "a whole number" if kind is int else "seconds"
        raise ValueError(f"--{name}: expected {what}, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ValueError(f"--{name}: {value:g} is outside {lo}..{hi}")
    return value
