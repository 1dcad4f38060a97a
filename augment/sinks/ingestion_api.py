"""Edge Impulse's ingestion API as the block uses it: settings, URL and label rules (the flags that make the
settings: ``augment.config.project``).

Shared by the sink (``ingestion.py``) and its uploader (``ingestion_upload.py``), so neither imports the other's
internals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from augment.plan.samples import has_control_characters
from augment.sinks.http import Limits

UPLOADS = "uploads.jsonl"
DUPLICATE = "An item with this hash already exists"
CATEGORIES = ("training", "testing", "split")  # what the ingestion path takes (plus EI's 'anomaly', unused)
HOLDOUT = "holdout"  # the block's own split: --test-fraction of originals to testing, per class by key
MAX_BATCH = 1000  # EI: at most 1,000 files a request
MAX_FILE_BYTES = 100 * 1024 * 1024  # EI: at most 100 MB a file
MAX_REQUEST_BYTES = 64 * 1024 * 1024  # a batch is sent early past this many bytes
DEFAULT_BATCH, DEFAULT_CONCURRENCY = 1, 20  # as EI's own clients: one image a request, 20 at once
DEFAULT_TIMEOUT, DEFAULT_RETRY_TIME = 120.0, 300.0  # seconds: one request in all; a file's tries in all
_ENCODE_SAFE = "-_.!~*'()"  # what JavaScript's encodeURIComponent leaves as is (EI's CLI encodes labels so)


@dataclass(frozen=True)
class UploadSettings:
    url: str  # base, e.g. https://ingestion.edgeimpulse.com
    api_key: str = field(repr=False)
    category: str  # for outputs without a hold-out category of their own
    batch_size: int
    concurrency: int
    timeout: float  # one request, sending and answer, however slowly the bytes come
    retry_time: float  # a request's tries and the waits between them
    backoff: float  # urllib3 backoff_factor (EDGE_AUGMENT_RETRY_BACKOFF): 0.5, 1, 2, 4 ... s (capped at 30 s)
    recipe: str
    seed: int
    retries: int = 8

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
