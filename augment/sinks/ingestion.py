"""An Edge Impulse project as the destination: the ingestion API (the only module that knows it).

How it fits the runner: workers render outputs into a local staging folder (``--out-directory``, the same
files a local run writes), so ``exists``/``write``/``read_text``/``write_text`` are the local sink's. The
main process then *commits* each booked output (name + manifest line) to an uploader that sends it
(``POST {url}/api/{category}/files``, the file a multipart part named ``data``) from a pool of threads.
By default one file a request, 20 at once, as EI's CLI uploader does (edge-impulse-cli cli/uploader.ts,
cli-common/make-image.ts): any answer then names its one file. ``--batch-size N`` (opt-in, up to EI's
documented 1000 files a request) groups files by (category, label), since ``x-label`` and ``x-metadata``
are per request; a batch answer is matched by the order of the ``data`` parts (``answer_results``), and one
that cannot be matched is resolved by sending each file alone. ``close()`` sends what is left and waits.

What landed is appended to ``uploads.jsonl`` beside the manifest (output, sha256, category, outcome) after
every response. A rerun into the same folder renders nothing it already has and uploads only outputs
without a ``landed``/``duplicate`` line for the same bytes. A rerun without that folder (a fresh container)
re-renders and re-sends everything; ``x-disallow-duplicates: 1`` makes the project reject what it already
holds ("An item with this hash already exists"), which is counted as a duplicate, never as a failure.

Retries (urllib3): 429 (honouring Retry-After), 500/502/503/504 and dropped connections, with exponential
backoff, POST included (safe: a resent file that had landed comes back as a duplicate). Out of retries, or
HTTP 401/403, the run stops (``SinkError``); per-file errors are counted and named, the run goes on and
exits 1 at the end. The API key goes into one header and nowhere else: not in logs, files or errors.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from augment.holdout import DEFAULT_TEST_FRACTION
from augment.samples import has_control_characters
from augment.sinks import Journal, Sink, SinkError
from augment.sinks.local import LocalSink
from augment.sinks.lock import FolderLock

if TYPE_CHECKING:
    from augment.sinks.ingestion_upload import Uploader

DEST = "ei"  # --dest ei
UPLOADS = "uploads.jsonl"
DUPLICATE = "An item with this hash already exists"
CATEGORIES = ("training", "testing", "split")  # what the ingestion path takes (plus EI's 'anomaly', unused)
HOLDOUT = "holdout"  # the block's own split: --test-fraction of originals to testing, per class by key
MAX_BATCH = 1000  # EI: at most 1,000 files a request
MAX_FILE_BYTES = 100 * 1024 * 1024  # EI: at most 100 MB a file
MAX_REQUEST_BYTES = 64 * 1024 * 1024  # a batch is sent early past this many bytes
DEFAULT_BATCH, DEFAULT_CONCURRENCY = 1, 20  # as EI's own clients: one image a request, 20 at once
MAX_RETRY_AFTER = 120.0  # seconds: a longer Retry-After is cut to this
BACKOFF_ENV = "EDGE_AUGMENT_RETRY_BACKOFF"  # urllib3 backoff factor in seconds (default 0.5); tests use less
_ENCODE_SAFE = "-_.!~*'()"  # what JavaScript's encodeURIComponent leaves as is (EI's CLI encodes labels so)


@dataclass(frozen=True)
class UploadSettings:
    url: str  # base, e.g. https://ingestion.edgeimpulse.com
    api_key: str = field(repr=False)
    category: str = "training"  # for outputs without a hold-out category of their own
    batch_size: int = DEFAULT_BATCH
    concurrency: int = DEFAULT_CONCURRENCY
    timeout: float = 120.0  # seconds to read a response (connect: 10 s)
    retries: int = 8
    backoff: float = 0.5  # urllib3 backoff_factor: 0, 1, 2, 4 ... s (capped at 30 s), with jitter
    recipe: str = ""
    seed: int = 0

    def endpoint(self, category: str) -> str:
        return f"{self.url}/api/{category}/files"


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


def _int(raw: str | None, name: str, default: int, lo: int, hi: int) -> int:
    if raw in (None, ""):
        return default
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise ValueError(f"--{name}: expected a whole number, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ValueError(f"--{name}: {value} is outside {lo}..{hi}")
    return value


class IngestionSink(Sink):
    """Stages outputs in ``staging`` (a local folder) and uploads committed ones to the project."""

    def __init__(self, settings: UploadSettings, staging: LocalSink, log: Callable[[str], None] = print) -> None:
        self.settings = settings
        self.staging = staging
        self.log = log
        self._uploader: Uploader | None = None

    def __getstate__(self) -> dict[str, object]:  # workers only stage: no session, threads or ledger
        return {"settings": self.settings, "staging": self.staging}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.log, self._uploader = print, None

    def describe(self) -> str:
        return f"Edge Impulse project via {self.settings.url} (staged in {self.staging.describe()})"

    def lock(self, suffix: str = "") -> FolderLock:
        """The staging folder's lock: two uploads cannot stage (and send) into one folder at once."""
        return self.staging.lock(suffix)

    def remove_stale_temps(self, shared: bool) -> int:
        return self.staging.remove_stale_temps(shared)

    def exists(self, name: str) -> bool:
        return self.staging.exists(name)

    def size(self, name: str) -> int | None:
        return self.staging.size(name)

    def read(self, name: str) -> bytes | None:
        return self.staging.read(name)

    def write(self, name: str, data: bytes) -> None:
        if len(data) > MAX_FILE_BYTES:
            raise SinkError(f"{name}: {len(data)} bytes is over Edge Impulse's 100 MB per file")
        self.staging.write(name, data)

    def read_text(self, name: str) -> str | None:
        return self.staging.read_text(name)

    def read_lines(self, name: str) -> Iterator[str] | None:
        return self.staging.read_lines(name)

    def write_lines(self, name: str, lines: Iterable[str]) -> None:
        self.staging.write_lines(name, lines)

    def open_journal(self, name: str, header: str | None) -> Journal:
        return self.staging.open_journal(name, header)

    def sync(self) -> None:
        self.staging.sync()

    def write_text(self, name: str, text: str) -> None:
        self.staging.write_text(name, text)

    def commit(self, name: str, line: str) -> None:
        """Main process: ``name`` is rendered (manifest ``line``); upload it unless it already landed."""
        self._get().add(name, json.loads(line))

    def close(self, interrupted: bool = False) -> dict[str, Any]:
        """Send what is pending (unless interrupted) and wait; the upload summary for the report.

        Raises SinkError when the project refused the key or the service stayed unreachable."""
        return self._get().close(interrupted)

    def _get(self) -> Uploader:
        if self._uploader is None:
            # Imported here: the uploader needs this module's settings, and only the main process uploads.
            from augment.sinks.ingestion_upload import Uploader

            self._uploader = Uploader(self.settings, self.staging, self.log)
        return self._uploader
