"""An Edge Impulse project as the destination: the ingestion API (the only module that knows it).

How it fits the runner: outputs are written into a local staging folder (``--out-directory``, the same
files a local run writes), so ``exists``/``write``/``read_text``/``write_text`` are the local sink's. The
run then *commits* each booked output (its ``OutputEntry``) to an uploader that sends it
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

Retries (urllib3): 429 (honouring Retry-After), 500/502/503/504, resets and dropped connections, with
exponential backoff, POST included (safe: a resent file that had landed comes back as a duplicate); a 200
that does not say the file was stored (``ingestion_answers``) is resent too and never booked; once a file used
its whole retry time so and no answer of the run said of any file stored/duplicate/refused, the uploads stop
and the files left are failed (``Uploader._exhausted``). Every request
is cut at ``--upload-timeout`` and every file's tries at ``--upload-retry-time`` (``augment.sinks.http``).
Out of retries or time, HTTP 401/403, or any redirect (never followed: the key would go wherever it
points), the run stops (``SinkError``); per-file errors are counted and named, the run goes on and exits 1
at the end. The API key goes into one header to the configured URL and nowhere else: not in logs, files or
errors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from augment.plan.selection import Shard
from augment.sinks import Journal, OutputEntry, Sink, SinkError
from augment.sinks.ingestion_api import (
    CATEGORIES,
    DEFAULT_BATCH,
    DEFAULT_CONCURRENCY,
    DUPLICATE,
    HOLDOUT,
    MAX_FILE_BYTES,
    UploadSettings,
    encode_label,
    ingestion_url,
)
from augment.sinks.ingestion_upload import Uploader
from augment.sinks.local import LocalSink
from augment.sinks.lock import FolderLock

__all__ = [  # the API's rules live in ingestion_api; named here too, for callers that think "the EI sink"
    "CATEGORIES",
    "DEFAULT_BATCH",
    "DEFAULT_CONCURRENCY",
    "DUPLICATE",
    "HOLDOUT",
    "IngestionSink",
    "UploadSettings",
    "encode_label",
    "ingestion_url",
]


class IngestionSink(Sink):
    """Stages outputs in ``staging`` (a local folder) and uploads committed ones to the project."""

    def __init__(self, settings: UploadSettings, staging: LocalSink, log: Callable[[str], None] = print) -> None:
        self.settings = settings
        self.staging = staging
        self.log = log
        self._uploader: Uploader | None = None

    def describe(self) -> str:
        return f"Edge Impulse project via {self.settings.url} (staged in {self.staging.describe()})"

    def lock(self, shard: Shard, wait: float) -> FolderLock:
        """The staging folder's lock: two uploads cannot stage (and send) into one folder at once."""
        return self.staging.lock(shard, wait)

    def remove_stale_temps(self, lock: FolderLock | None) -> int:
        return self.staging.remove_stale_temps(lock)

    def manifests(self, books: str) -> list[str]:
        return self.staging.manifests(books)

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

    def delete(self, name: str) -> None:
        self.staging.delete(name)  # only booked outputs are uploaded

    def read_text(self, name: str) -> str | None:
        return self.staging.read_text(name)

    def read_lines(self, name: str) -> Iterator[str] | None:
        return self.staging.read_lines(name)

    def write_lines(self, name: str, lines: Iterable[str], journal: Journal | None = None) -> None:
        self.staging.write_lines(name, lines, journal)

    def open_journal(self, name: str, header: str | None) -> Journal:
        return self.staging.open_journal(name, header)

    def sync(self) -> None:
        self.staging.sync()

    def write_text(self, name: str, text: str) -> None:
        self.staging.write_text(name, text)

    def commit(self, entry: OutputEntry) -> None:
        """``entry.output`` is rendered and booked; upload it unless it already landed."""
        self._get().add(entry)

    def close(self, interrupted: bool = False, stopping: Callable[[], bool] | None = None) -> dict[str, Any]:
        """Send what is pending (unless interrupted) and wait; the upload summary for the report.

        Raises SinkError when the project refused the key or the service stayed unreachable."""
        return self._get().close(interrupted, stopping)

    def _get(self) -> Uploader:
        if self._uploader is None:
            self._uploader = Uploader(self.settings, self.staging, self.log)
        return self._uploader
