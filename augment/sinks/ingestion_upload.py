"""The uploader behind the ingestion sink: batches per (category, label), a few sender threads, urllib3
retries on a requests Session with hard time limits (``augment.sinks.http``), EI-style response checks
(``augment.sinks.ingestion_answers``), and the ``uploads.jsonl`` ledger of what landed.
See ``augment.sinks.ingestion`` for the whole picture; this module is only used through it."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from augment import __version__
from augment.signals import stop_requested
from augment.sinks import OutputEntry, SinkError
from augment.sinks.http import OutOfTime, Session, Stopped
from augment.sinks.ingestion_answers import FAILED, LANDED, UNCONFIRMED, answer_results, parse_json
from augment.sinks.ingestion_api import DUPLICATE, MAX_REQUEST_BYTES, UPLOADS, UploadSettings, encode_label
from augment.sinks.ingestion_ledger import read_ledger
from augment.sinks.local import LocalSink
from augment.sinks.s3 import content_type


@dataclass
class _Item:
    name: str
    entry: OutputEntry


class Uploader:
    def __init__(self, settings: UploadSettings, staging: LocalSink, log: Callable[[str], None]) -> None:
        self.settings = settings
        self.staging = staging
        self.log = log
        self.ledger_path = staging.path(UPLOADS)
        self.done = read_ledger(self.ledger_path)  # output -> sha256 of what landed (or was a duplicate)
        self.pending: dict[tuple[str, str], list[_Item]] = {}
        self.pending_bytes: Counter[tuple[str, str]] = Counter()
        self.inflight: dict[Future, list[_Item]] = {}  # batch -> its files
        self.pool = ThreadPoolExecutor(settings.concurrency, thread_name_prefix="ei-upload")
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.http = Session(settings.limits(), settings.concurrency, self.stop)
        self.counts: Counter[str] = Counter()  # landed, duplicates, failed, previously_uploaded, requests, retries
        self.failures: list[dict[str, str]] = []
        self.fatal: str | None = None
        self.answered = False  # has the service said of any file of this run: stored, duplicate or refused?
        self.gave_up: str | None = None  # why the uploads stopped while the run goes on (see _exhausted)
        self.closed: dict[str, Any] | None = None
        self.start = time.monotonic()
        self.logged_at = self.start
        self.ledger = None

    def add(self, entry: OutputEntry) -> None:
        self._check()
        name = entry.output
        if self.done.get(name) == entry.sha256:
            self.counts["previously_uploaded"] += 1
            return
        if self.gave_up is not None:
            self._cancel([_Item(name, entry)])
            return
        category = entry.category or self.settings.category
        group = (category, entry.label)
        self.pending.setdefault(group, []).append(_Item(name, entry))
        self.pending_bytes[group] += max(0, entry.size)
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
            self.stop.set()  # queued batches are not sent; requests under way are cut at once
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.http.close()
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
            "gave_up": self.gave_up,
        }
        self.log(
            f"upload: {c['landed']} landed, {c['duplicates']} duplicates (already in the project), "
            f"{c['failed']} failed, {c['previously_uploaded']} uploaded by an earlier run"
            + (f", {not_sent} not sent (a rerun sends them)" if not_sent else "")
            + f"; {c['requests']} requests, {c['retries']} retries"
        )
        if self.gave_up is not None:
            self.log(f"ERROR upload: {self.gave_up}")
        if self.fatal is not None and not interrupted:
            raise SinkError(self.fatal)
        return self.closed

    # -- main thread ---------------------------------------------------------------------------------------

    def _submit(self, group: tuple[str, str]) -> None:
        while len(self.inflight) >= 2 * self.settings.concurrency:  # bounded: at most 2 batches a thread
            if stop_requested():  # a signal: the runner stops; these stay pending (counted not sent)
                return
            self._reap(wait(self.inflight, timeout=0.2, return_when=FIRST_COMPLETED).done)
        items = self.pending.pop(group)
        self.pending_bytes.pop(group, None)
        if self.gave_up is not None:
            return self._cancel(items)
        self.inflight[self.pool.submit(self._send, group[0], group[1], items)] = items

    def _reap(self, finished: set[Future], check: bool = True) -> None:
        for future in finished:
            items = self.inflight.pop(future, [])
            if future.cancelled():
                self._cancel(items)
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
            return self._cancel(items)
        try:
            header_label = encode_label(label)
        except ValueError as e:
            self._record(category, [(item, "failed", str(e), None) for item in items])
            return
        outcome = self._post(category, header_label, items)
        if outcome is not None:
            self._record(category, outcome)

    def _post(self, category: str, label: str, items: list[_Item]) -> list[tuple] | None:
        """Send ``items`` in one request, again while the answer does not say they were stored (within the time
        budget); (item, status, error, sample id) each, or None if the run must stop."""
        if self.stop.is_set():  # (also between the files of a batch sent one by one)
            self._cancel(items)
            return None
        rows: list[tuple] = []
        doubt: str | None = None  # why the last answer did not confirm the files
        with self.http.call() as call:
            for attempt in itertools.count():
                outcome = self._exchange(category, label, items, call, doubt)
                if outcome is None or outcome == "each":
                    break
                rows += [row for row in outcome if row[1] != UNCONFIRMED]
                unsure = [row for row in outcome if row[1] == UNCONFIRMED]
                if not unsure:
                    return rows
                items, doubt = [row[0] for row in unsure], unsure[0][2]
                try:  # resending is safe: a stored file comes back as a duplicate
                    call.wait(min(30.0, self.settings.backoff * 2**attempt), doubt)
                except OutOfTime:
                    self._exhausted(items[0].name)
                    return rows + [(i, UNCONFIRMED, f"{doubt} ({attempt + 1} tries)", None) for i in items]
                except Stopped:
                    self._cancel(items)
                    return rows
        if outcome is None:
            return rows or None
        return rows + [row for item in items for row in (self._post(category, label, [item]) or [])]

    def _exchange(
        self, category: str, label: str, items: list[_Item], call: Any, doubt: str | None
    ) -> list[tuple] | str | None:
        """One request and what its answer says: rows, "each" (send each file alone), or None (stop).
        ``doubt``: why the previous answer to these files did not confirm them (None on the first try)."""
        import requests

        parts: list[tuple[str, tuple[str, bytes, str]]] = []
        boxes: dict[str, Any] = {}
        for item in items:
            filename = PurePosixPath(item.name).name
            try:
                data = self.staging.path(item.name).read_bytes()
            except OSError as e:
                return [(i, FAILED, f"cannot read the staged file: {e.strerror}", None) for i in items]
            parts.append(("data", (filename, data, content_type(filename))))
            if item.entry.boxes is not None:
                boxes[filename] = list(item.entry.boxes)
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
        before = call.attempts
        try:
            response = self.http.post(url, headers=headers, files=parts)
        except (requests.RequestException, OutOfTime, Stopped) as e:
            self._count(call.attempts - before, before > 0)
            if doubt is not None and call.cut == "time" and call.attempt_end >= call.end:
                return [(item, UNCONFIRMED, doubt, None) for item in items]  # the budget ended this try: as a wait
            return self._unreachable(url, e, items, call)
        retries = getattr(getattr(response.raw, "retries", None), "history", ()) or ()
        self._count(call.attempts - before, before > 0)
        status, text = response.status_code, self.http.text(response)  # text: None if cut short or huge
        if 300 <= status < 400:  # never followed: the key would go wherever the Location points
            self._stop(f"{url} answered HTTP {status} (a redirect, not followed): check --ingestion-url")
            return None
        if status in (401, 403):
            self._stop(
                f"Edge Impulse refused the project API key (HTTP {status}) at {url}: "
                "check EI_PROJECT_API_KEY or the PROJECT_API_KEY secret"
            )
            return None
        if status in (429, 500, 502, 503, 504):
            self._stop(f"{url} answered HTTP {status} after {len(retries)} retries in {self._took(call)}")
            return None
        if status == 200 and text is None:
            return [
                (item, UNCONFIRMED, "HTTP 200, but the answer was cut short or is over 1 MiB", None) for item in items
            ]
        text = self._redact(text or "")
        if 200 < status < 300:
            return [(item, UNCONFIRMED, f"HTTP {status}, not 200: not stored for sure", None) for item in items]
        if status != 200:
            if len(items) > 1:  # which file? send each alone (one that had landed comes back a duplicate)
                return "each"
            body = parse_json(text)
            error = (body.get("error") if isinstance(body, dict) else None) or text.strip()[:300] or "no details"
            error = f"HTTP {status}: {error}"
            self.answered = True
            return [(items[0], "duplicate" if DUPLICATE in error else FAILED, error, None)]
        names = [part[1][0] for part in parts[: len(items)]]
        results = answer_results(names, bool(boxes), text, response.headers.get("Content-Type", ""))
        if results is None:  # a batch answer that cannot be matched to its files: send each alone
            return "each"
        self.answered = self.answered or any(result[0] != UNCONFIRMED for result in results)
        return [
            (item, "duplicate" if result == FAILED and DUPLICATE in error else result, error, sample_id)
            for item, (result, error, sample_id) in zip(items, results, strict=True)
        ]

    def _unreachable(self, url: str, error: Exception, items: list[_Item], call: Any) -> None:
        """No answer: a stop (signal, or another thread's fatal error) or a run-stopping failure."""
        self._cancel(items)  # not sent for sure: a rerun sends them
        if self.stop.is_set() or isinstance(error, Stopped):
            return None
        limits = self.settings.limits()
        if isinstance(error, OutOfTime):
            reason = f"gave up after {self._took(call)} (--upload-retry-time {limits.budget:g}): {error}"
        elif call.cut == "time":
            reason = f"no complete answer within --upload-timeout {limits.attempt:g} s, {self._took(call)} in all"
        else:
            reason = f"{_reason(error)} (after retries, {self._took(call)})"
        self._stop(f"cannot upload to {url}: {reason}")
        return None

    def _count(self, sent: int, resend: bool) -> None:
        """``sent`` requests of one exchange: all but the first are retries, and so is the first of a resend."""
        with self.lock:
            self.counts["requests"] += sent
            self.counts["retries"] += max(0, sent - 1) + (1 if resend and sent else 0)

    def _cancel(self, items: list[_Item]) -> None:
        """Not sent, or cut before an answer: counted not sent (a rerun sends them), or failed once given up."""
        if self.gave_up is not None:
            self._record("", [(item, UNCONFIRMED, self.gave_up, None) for item in items], quiet=True)
            return
        with self.lock:
            self.counts["cancelled"] += len(items)

    def _exhausted(self, name: str) -> None:
        """``name`` went unconfirmed for its whole retry time. If no answer of this run said of any file that it
        was stored, a duplicate or refused, none will: stop rather than spend the retry time on each file."""
        with self.lock:
            if self.answered or self.gave_up is not None:
                return
            self.gave_up = (
                "stopped uploading: no answer of this run said a file was stored or refused, and "
                f"{name} went unconfirmed for its whole --upload-retry-time ({self.settings.retry_time:g} s)"
            )
        self.log(f"ERROR upload: {self.gave_up}; the files not confirmed are failed, a rerun sends them")
        self.stop.set()

    @staticmethod
    def _took(call: Any) -> str:
        return f"{time.monotonic() - call.start:.0f} s"

    def _metadata(self, items: list[_Item]) -> dict[str, str]:
        """``x-metadata`` (string values) is per request: the fields every file of the batch shares."""
        per_file = [
            {
                "generated_by": "edge-augment",
                "block_version": __version__,
                "recipe": self.settings.recipe,
                "seed": str(item.entry.seed),
                "source": item.entry.source,
                "variant": item.entry.variant,
                "ops": json.dumps(list(item.entry.ops), sort_keys=True, separators=(",", ":")),
            }
            for item in items
        ]
        return {k: v for k, v in per_file[0].items() if all(m[k] == v for m in per_file[1:])}

    def _record(self, category: str, rows: list[tuple], quiet: bool = False) -> None:
        with self.lock:
            if self.ledger is None:
                self.ledger_path.parent.mkdir(parents=True, exist_ok=True)
                self.ledger = self.ledger_path.open("a", encoding="utf-8")
            for item, status, error, sample_id in rows:
                key = {LANDED: "landed", "duplicate": "duplicates", FAILED: "failed", UNCONFIRMED: "failed"}[status]
                self.counts[key] += 1
                line = {"output": item.name, "sha256": item.entry.sha256, "category": category, "status": status}
                if sample_id is not None:
                    line["sample_id"] = sample_id
                if error:
                    line["error"] = error
                if status in (FAILED, UNCONFIRMED):
                    if len(self.failures) < 100:  # the report lists 100 (all are counted and logged)
                        self.failures.append({"output": item.name, "error": error or ""})
                    if not quiet:
                        self.log(f"ERROR upload {item.name}: {error}")
                if status != UNCONFIRMED:  # the ledger holds what the project answered, never a guess
                    self.ledger.write(json.dumps(line, sort_keys=True) + "\n")
            self.ledger.flush()  # a kill loses at most the responses under way: resent, they come back duplicates

    def _stop(self, message: str) -> None:
        with self.lock:
            self.fatal = self.fatal or message
        self.stop.set()

    def _redact(self, text: str) -> str:
        return text.replace(self.settings.api_key, "***") if self.settings.api_key else text


def _reason(error: Exception) -> str:
    """A short cause (requests' messages name host, port and path; never headers)."""
    return (str(error) or type(error).__name__)[:300]
