"""The uploader behind the ingestion sink: batches per (category, label), a few sender threads, urllib3
retries on a requests Session, EI-style response checks, and the ``uploads.jsonl`` ledger of what landed.
See ``augment.sinks.ingestion`` for the whole picture; this module is only used through it."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from augment import __version__
from augment.diskmap import DiskMap
from augment.sinks import SinkError
from augment.sinks.ingestion_api import (
    DUPLICATE,
    MAX_REQUEST_BYTES,
    MAX_RETRY_AFTER,
    UPLOADS,
    UploadSettings,
    encode_label,
)
from augment.sinks.local import LocalSink
from augment.sinks.s3 import content_type


@dataclass
class _Item:
    name: str
    entry: dict[str, Any]  # the manifest line


class Uploader:
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

    def close(self, interrupted: bool, stopping: Callable[[], bool] | None = None) -> dict[str, Any]:
        """Send what is pending and wait (not when ``interrupted``; stop as soon as ``stopping()`` is true)."""
        if self.closed is not None:
            return self.closed
        stopping = stopping or (lambda: False)
        try:
            if not interrupted and self.fatal is None:
                for group in list(self.pending):
                    if stopping():
                        break
                    self._submit(group)
                while self.inflight and not stopping():
                    self._reap(wait(self.inflight, timeout=0.2, return_when=FIRST_COMPLETED).done)
            interrupted = interrupted or stopping()
        except SinkError:
            pass
        finally:
            self.stop.set()  # queued batches are not sent; requests under way finish (or time out)
            self.pool.shutdown(wait=True, cancel_futures=True)
            self._reap({f for f in self.inflight if f.done()}, check=False)
            if self.ledger is not None:
                self.ledger.close()
            self.done.close()
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
        if response.status_code != 200:
            if len(items) > 1:  # which file? send each alone (one that had landed comes back a duplicate)
                return [row for item in items for row in (self._post(category, label, [item]) or [])]
            error = (body.get("error") if isinstance(body, dict) else None) or text.strip()[:300] or "no details"
            error = f"HTTP {response.status_code}: {error}"
            return [(items[0], "duplicate" if DUPLICATE in error else "failed", error, None)]
        results = answer_results(len(items), bool(boxes), body)
        if results is None:  # a batch answer that cannot be matched to its files: send each alone
            return [row for item in items for row in (self._post(category, label, [item]) or [])]
        rows = []
        for item, (ok, error, sample_id) in zip(items, results, strict=True):
            if ok:
                rows.append((item, "landed", None, sample_id))
            else:
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
                    if len(self.failures) < 100:  # the report lists 100 (all are counted and logged)
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


def answer_results(count: int, labels_part: bool, body: Any) -> list[tuple[bool, str, Any]] | None:
    """(landed, error, sample id) for each of the ``count`` files of a request answered HTTP 200, or None when a
    batch answer cannot be matched to its files.

    Only what EI documents is relied on: 200 means stored (docs: "Stored the file"), and the files are the
    request's ``data`` parts in order, the ``bounding_boxes.labels`` part last. The JSON answer EI's own
    client reads (``{"success", "error"?, "files": [{"success", "error"?}]}``, edge-impulse-cli
    cli-common/make-image.ts) is matched by position: ``files`` may list the labels part or not; other fields
    (``fileName``, ``sampleId``...) are extra and never needed."""
    if not isinstance(body, dict):  # a plain-text 200, as the docs describe it: stored
        return [(True, "", None)] * count
    top_error = str(body.get("error") or "rejected, no reason given")
    files = body.get("files")
    if not isinstance(files, list):
        if body.get("success") is False:
            return [(False, top_error, None)] if count == 1 else None
        return [(True, "", None)] * count
    entries = [f if isinstance(f, dict) else {} for f in files]
    labels = entries[count] if labels_part and len(entries) == count + 1 else None
    if len(entries) != count and labels is None:
        if count > 1:
            return None
        failed = [e for e in entries if e.get("success") is not True]
        if entries and not failed:
            return [(True, "", entries[0].get("sampleId"))]
        return [(False, str((failed[0].get("error") if failed else None) or top_error), None)]
    if labels is not None and labels.get("success") is not True:  # the boxes did not attach
        error = f"bounding_boxes.labels: {labels.get('error') or top_error}"
        return [(False, error, None)] if count == 1 else None
    return [
        (True, "", e.get("sampleId")) if e.get("success") is True else (False, str(e.get("error") or top_error), None)
        for e in entries[:count]
    ]


def _read_ledger(path: Path) -> DiskMap:
    """output -> sha256 of what landed (or was a duplicate), from ``uploads.jsonl``, on disk (one entry per
    output: never all in memory)."""
    done = DiskMap()
    try:
        with path.open(encoding="utf-8") as f:
            done.update(_landed(f))
    except FileNotFoundError:
        pass
    except OSError as e:
        done.close()
        raise SinkError(f"cannot read {path}: {e.strerror}") from None
    return done


def _landed(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    for line in lines:
        entry = _json(line)
        if isinstance(entry, dict) and entry.get("status") in ("landed", "duplicate"):
            yield str(entry.get("output")), str(entry.get("sha256"))


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _reason(error: Exception) -> str:
    """A short cause (requests' messages name host, port and path; never headers)."""
    return (str(error) or type(error).__name__)[:300]
