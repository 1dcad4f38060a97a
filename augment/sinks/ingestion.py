"""An Edge Impulse project as the destination: the ingestion API (the only module that knows it).

How it fits the runner: workers render outputs into a local staging folder (``--out-directory``, the same
files a local run writes), so ``exists``/``write``/``read_text``/``write_text`` are the local sink's. The
main process then *commits* each booked output (name + manifest line) to an uploader: files are grouped by
(category, label), since ``x-label`` and ``x-metadata`` are per request, and sent ``--batch-size`` files a
request (``POST {url}/api/{category}/files``, every file a multipart part named ``data``) by a few threads.
``close()`` sends what is left and waits.

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
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, urlsplit

from augment import __version__
from augment.holdout import DEFAULT_TEST_FRACTION
from augment.sinks import SinkError
from augment.sinks.local import LocalSink
from augment.sinks.s3 import content_type

DEST = "ei"  # --dest ei
UPLOADS = "uploads.jsonl"
DUPLICATE = "An item with this hash already exists"
CATEGORIES = ("training", "testing", "split")  # what the ingestion path takes (plus EI's 'anomaly', unused)
HOLDOUT = "holdout"  # the block's own split: --test-fraction of originals to testing, per class by key
MAX_BATCH = 1000  # EI: at most 1,000 files a request
MAX_FILE_BYTES = 100 * 1024 * 1024  # EI: at most 100 MB a file
MAX_REQUEST_BYTES = 64 * 1024 * 1024  # a batch is sent early past this many bytes
DEFAULT_BATCH, DEFAULT_CONCURRENCY = 50, 4
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
    if not label or any(ord(c) < 32 or ord(c) == 127 for c in label):
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
        if fraction:
            raise ValueError(f"--test-fraction holds originals out for testing: use it with --upload-category "
                             f"{HOLDOUT} (the default), not {category}")  # fmt: skip
        fraction = 0.0
        if category == "split":
            notes.append(
                "--upload-category split: EI splits by file hash, so augmented copies of one image land in both "
                f"training and testing (leakage); --upload-category {HOLDOUT} avoids it"
            )
    else:
        raise ValueError(f"--upload-category: {category!r} is not one of {HOLDOUT}, {', '.join(CATEGORIES)}")
    key = (env.get("PROJECT_API_KEY") or "").strip() or (env.get("EI_PROJECT_API_KEY") or "").strip()
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


class IngestionSink:
    """Stages outputs in ``staging`` (a local folder) and uploads committed ones to the project."""

    def __init__(self, settings: UploadSettings, staging: LocalSink, log: Callable[[str], None] = print) -> None:
        self.settings = settings
        self.staging = staging
        self.log = log
        self._uploader: _Uploader | None = None

    def __getstate__(self) -> dict[str, object]:  # workers only stage: no session, threads or ledger
        return {"settings": self.settings, "staging": self.staging}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.log, self._uploader = print, None

    def describe(self) -> str:
        return f"Edge Impulse project via {self.settings.url} (staged in {self.staging.describe()})"

    def exists(self, name: str) -> bool:
        return self.staging.exists(name)

    def write(self, name: str, data: bytes) -> None:
        if len(data) > MAX_FILE_BYTES:
            raise SinkError(f"{name}: {len(data)} bytes is over Edge Impulse's 100 MB per file")
        self.staging.write(name, data)

    def read_text(self, name: str) -> str | None:
        return self.staging.read_text(name)

    def write_text(self, name: str, text: str) -> None:
        self.staging.write_text(name, text)

    def commit(self, name: str, line: str) -> None:
        """Main process: ``name`` is rendered (manifest ``line``); upload it unless it already landed."""
        self._get().add(name, json.loads(line))

    def close(self, interrupted: bool = False) -> dict[str, Any]:
        """Send what is pending (unless interrupted) and wait; the upload summary for the report.

        Raises SinkError when the project refused the key or the service stayed unreachable."""
        return self._get().close(interrupted)

    def _get(self) -> _Uploader:
        if self._uploader is None:
            self._uploader = _Uploader(self.settings, self.staging, self.log)
        return self._uploader


@dataclass
class _Item:
    name: str
    entry: dict[str, Any]  # the manifest line


class _Uploader:
    def __init__(self, settings: UploadSettings, staging: LocalSink, log: Callable[[str], None]) -> None:
        self.settings = settings
        self.staging = staging
        self.log = log
        self.ledger_path = staging.path(UPLOADS)
        self.done = _read_ledger(self.ledger_path)  # output -> sha256 of what landed (or was a duplicate)
        self.pending: dict[tuple[str, str], list[_Item]] = {}
        self.pending_bytes: Counter[tuple[str, str]] = Counter()
        self.inflight: dict[Future, int] = {}  # batch -> its number of files
        self.pool = ThreadPoolExecutor(settings.concurrency, thread_name_prefix="ei-upload")
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.session = _session(settings)
        self.counts: Counter[str] = Counter()  # landed, duplicates, failed, previously_uploaded, requests, retries
        self.failures: list[dict[str, str]] = []
        self.fatal: str | None = None
        self.closed: dict[str, Any] | None = None
        self.start = time.monotonic()
        self.logged_at = self.start
        self.ledger = None

    def add(self, name: str, entry: dict[str, Any]) -> None:
        self._check()
        if self.done.get(name) == entry.get("sha256"):
            self.counts["previously_uploaded"] += 1
            return
        category = entry.get("category") or self.settings.category
        group = (category, str(entry.get("label", "")))
        self.pending.setdefault(group, []).append(_Item(name, entry))
        self.pending_bytes[group] += int(entry.get("bytes", 0))
        if len(self.pending[group]) >= self.settings.batch_size or self.pending_bytes[group] >= MAX_REQUEST_BYTES:
            self._submit(group)

    def close(self, interrupted: bool) -> dict[str, Any]:
        if self.closed is not None:
            return self.closed
        try:
            if not interrupted and self.fatal is None:
                for group in list(self.pending):
                    self._submit(group)
                while self.inflight:
                    self._reap(wait(self.inflight, return_when=FIRST_COMPLETED).done)
        except SinkError:
            pass
        finally:
            self.stop.set()  # queued batches are not sent; requests under way finish (or time out)
            self.pool.shutdown(wait=True, cancel_futures=True)
            self._reap({f for f in self.inflight if f.done()}, check=False)
            if self.ledger is not None:
                self.ledger.close()
        not_sent = sum(len(v) for v in self.pending.values()) + self.counts["cancelled"]
        c = self.counts
        self.closed = {
            "url": self.settings.url,
            "category": self.settings.category,
            "batch_size": self.settings.batch_size,
            "concurrency": self.settings.concurrency,
            "landed": c["landed"],
            "duplicates": c["duplicates"],
            "failed": c["failed"],
            "previously_uploaded": c["previously_uploaded"],
            "not_sent": not_sent,
            "requests": c["requests"],
            "retries": c["retries"],
            "seconds": round(time.monotonic() - self.start, 3),
            "failures": self.failures[:100],
            "error": self.fatal,
        }
        self.log(
            f"upload: {c['landed']} landed, {c['duplicates']} duplicates (already in the project), "
            f"{c['failed']} failed, {c['previously_uploaded']} uploaded by an earlier run"
            + (f", {not_sent} not sent (a rerun sends them)" if not_sent else "")
            + f"; {c['requests']} requests, {c['retries']} retries"
        )
        if self.fatal is not None and not interrupted:
            raise SinkError(self.fatal)
        return self.closed

    # -- main thread ---------------------------------------------------------------------------------------

    def _submit(self, group: tuple[str, str]) -> None:
        items = self.pending.pop(group)
        self.pending_bytes.pop(group, None)
        while len(self.inflight) >= 2 * self.settings.concurrency:  # bounded: at most 2 batches a thread
            self._reap(wait(self.inflight, return_when=FIRST_COMPLETED).done)
        self.inflight[self.pool.submit(self._send, group[0], group[1], items)] = len(items)

    def _reap(self, finished: set[Future], check: bool = True) -> None:
        for future in finished:
            files = self.inflight.pop(future, 0)
            if future.cancelled():
                self.counts["cancelled"] += files
            elif future.exception() is not None:  # a bug, not an answer: stop rather than guess
                self.fatal = self.fatal or f"upload failed: {type(future.exception()).__name__}: {future.exception()}"
        now = time.monotonic()
        if now - self.logged_at >= 10:
            self.logged_at = now
            c = self.counts
            rate = (c["landed"] + c["duplicates"]) / (now - self.start)
            self.log(f"upload: {c['landed']} landed, {c['duplicates']} duplicates, {c['failed']} failed, {rate:.1f}/s")
        if check:
            self._check()

    def _check(self) -> None:
        if self.fatal is not None:
            raise SinkError(self.fatal)

    # -- upload threads ------------------------------------------------------------------------------------

    def _send(self, category: str, label: str, items: list[_Item]) -> None:
        if self.stop.is_set() or self.fatal is not None:
            with self.lock:
                self.counts["cancelled"] += len(items)
            return
        try:
            header_label = encode_label(label)
        except ValueError as e:
            self._record(category, [(item, "failed", str(e), None) for item in items])
            return
        outcome = self._post(category, header_label, items)
        if outcome is not None:
            self._record(category, outcome)

    def _post(self, category: str, label: str, items: list[_Item]) -> list[tuple] | None:
        """Send ``items`` in one request; (item, status, error, sample id) each, or None if the run must stop."""
        import requests

        parts: list[tuple[str, tuple[str, bytes, str]]] = []
        boxes: dict[str, Any] = {}
        for item in items:
            filename = PurePosixPath(item.name).name
            try:
                data = self.staging.path(item.name).read_bytes()
            except OSError as e:
                return [(i, "failed", f"cannot read the staged file: {e.strerror}", None) for i in items]
            parts.append(("data", (filename, data, content_type(filename))))
            if "boxes" in item.entry:
                boxes[filename] = item.entry["boxes"]
        if boxes:  # EI's CLI sends annotations as one more `data` part of the same request
            body = {"version": 1, "type": "bounding-box-labels", "boundingBoxes": boxes}
            parts.append(("data", ("bounding_boxes.labels", json.dumps(body).encode(), "application/json")))
        headers = {
            "x-api-key": self.settings.api_key,
            "x-label": label,
            "x-disallow-duplicates": "1",
            "x-metadata": json.dumps(self._metadata(items), sort_keys=True),
        }
        url = self.settings.endpoint(category)
        try:
            response = self.session.post(url, headers=headers, files=parts, timeout=(10, self.settings.timeout))
        except requests.RequestException as e:
            self._stop(f"cannot reach {url}: {_reason(e)} (after {self.settings.retries} retries)")
            return None
        retries = getattr(getattr(response.raw, "retries", None), "history", ()) or ()
        with self.lock:
            self.counts["requests"] += 1 + len(retries)
            self.counts["retries"] += len(retries)
        text = self._redact(response.text)
        if response.status_code in (401, 403):
            self._stop(
                f"Edge Impulse refused the project API key (HTTP {response.status_code}) at {url}: "
                "check EI_PROJECT_API_KEY or the PROJECT_API_KEY secret"
            )
            return None
        if response.status_code in (429, 500, 502, 503, 504):
            self._stop(f"{url} answered HTTP {response.status_code} after {self.settings.retries} retries")
            return None
        body = _json(text)
        files = body.get("files") if isinstance(body, dict) else None
        if response.status_code != 200 or not isinstance(files, list):
            error = (body.get("error") if isinstance(body, dict) else None) or text.strip()[:300] or "no details"
            if len(items) > 1 and response.status_code != 200:  # which file? send each alone
                return [row for item in items for row in (self._post(category, label, [item]) or [])]
            status = "duplicate" if DUPLICATE in error else "failed"
            return [(item, status, f"HTTP {response.status_code}: {error}", None) for item in items]
        rows = []
        for item, result in zip(items, _match(items, files), strict=True):
            if result.get("success") is True:  # top-level success is false when any file failed
                rows.append((item, "landed", None, result.get("sampleId")))
            else:
                error = str(result.get("error") or body.get("error") or "rejected, no reason given")
                rows.append((item, "duplicate" if DUPLICATE in error else "failed", error, None))
        return rows

    def _metadata(self, items: list[_Item]) -> dict[str, str]:
        """``x-metadata`` (string values) is per request: the fields every file of the batch shares."""
        per_file = [
            {
                "generated_by": "edge-augment",
                "block_version": __version__,
                "recipe": self.settings.recipe,
                "seed": str(item.entry.get("seed", self.settings.seed)),
                "source": str(item.entry.get("source", "")),
                "variant": str(item.entry.get("variant", "")),
                "ops": json.dumps(item.entry.get("ops", []), sort_keys=True, separators=(",", ":")),
            }
            for item in items
        ]
        return {k: v for k, v in per_file[0].items() if all(m[k] == v for m in per_file[1:])}

    def _record(self, category: str, rows: list[tuple]) -> None:
        with self.lock:
            if self.ledger is None:
                self.ledger_path.parent.mkdir(parents=True, exist_ok=True)
                self.ledger = self.ledger_path.open("a", encoding="utf-8")
            for item, status, error, sample_id in rows:
                key = {"landed": "landed", "duplicate": "duplicates", "failed": "failed"}[status]
                self.counts[key] += 1
                line = {"output": item.name, "sha256": item.entry.get("sha256"), "category": category, "status": status}
                if sample_id is not None:
                    line["sample_id"] = sample_id
                if error:
                    line["error"] = error
                if status == "failed":
                    self.failures.append({"output": item.name, "error": error or ""})
                    self.log(f"ERROR upload {item.name}: {error}")
                self.ledger.write(json.dumps(line, sort_keys=True) + "\n")
            self.ledger.flush()  # a kill loses at most the responses under way: resent, they come back duplicates

    def _stop(self, message: str) -> None:
        with self.lock:
            self.fatal = self.fatal or message
        self.stop.set()

    def _redact(self, text: str) -> str:
        return text.replace(self.settings.api_key, "***") if self.settings.api_key else text


def _session(settings: UploadSettings) -> Any:
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    class CappedRetry(Retry):
        def get_retry_after(self, response: Any) -> float | None:
            seconds = super().get_retry_after(response)
            return None if seconds is None else min(seconds, MAX_RETRY_AFTER)

    retry = CappedRetry(
        total=settings.retries,
        connect=settings.retries,
        read=settings.retries,
        status=settings.retries,
        other=2,
        allowed_methods=None,  # POST too: a resent file that had landed is refused as a duplicate
        status_forcelist=(429, 500, 502, 503, 504),
        backoff_factor=settings.backoff,
        backoff_max=30,
        backoff_jitter=settings.backoff / 2,
        respect_retry_after_header=True,
        raise_on_status=False,  # the last answer is looked at (and named) instead of a bare MaxRetryError
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry, pool_connections=1, pool_maxsize=settings.concurrency)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _match(items: list[_Item], files: list[Any]) -> list[dict[str, Any]]:
    """Each item's entry in the answer's ``files``: by ``fileName`` when the answer names files, else by
    position when the counts agree; an item without one gets a failure entry."""
    results = [f for f in files if isinstance(f, dict)]
    by_name: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        if isinstance(result.get("fileName"), str):
            by_name.setdefault(result["fileName"], []).append(result)
    missing = {"success": False, "error": "the answer has no result for this file"}
    if by_name:
        return [(by_name.get(PurePosixPath(i.name).name) or [missing]).pop(0) for i in items]
    return results if len(results) == len(items) else [missing] * len(items)


def _read_ledger(path: Path) -> dict[str, str]:
    done: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return done
    except OSError as e:
        raise SinkError(f"cannot read {path}: {e.strerror}") from None
    for line in text.splitlines():
        entry = _json(line)
        if isinstance(entry, dict) and entry.get("status") in ("landed", "duplicate"):
            done[str(entry.get("output"))] = str(entry.get("sha256"))
    return done


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _reason(error: Exception) -> str:
    """A short cause (requests' messages name host, port and path; never headers)."""
    return (str(error) or type(error).__name__)[:300]
