"""``uploads.jsonl``, the upload ledger beside the manifest: one JSON line per file the project answered for
(output, sha256, category, status, sample id or error), appended by the uploader (``ingestion_upload``) after
every response; read back at the start of a run so a rerun sends only what has not landed."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from augment.sinks import SinkError
from augment.sinks.ingestion_answers import parse_json
from augment.storage.diskmap import DiskMap


def read_ledger(path: Path) -> DiskMap:
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
        entry = parse_json(line)
        if isinstance(entry, dict) and entry.get("status") in ("landed", "duplicate"):
            yield str(entry.get("output")), str(entry.get("sha256"))
