"""Where outputs go. Each sink stores named outputs whole (never partially); it knows nothing of sources.

``Sink`` declares the whole interface a run uses. The hooks that only some destinations need (a folder
lock, temp-file clean-up, flushing to disk, acting on booked outputs, a summary at the end) are no-ops here.
``OutputEntry`` is what the run books of an output (its manifest line, ``augment.manifest``) and commits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from augment.errors import BlockError


@dataclass(frozen=True)
class OutputEntry:
    """One output as the manifest records it: enough to replay it (source, seed, recorded ops) and check it."""

    output: str  # its name in the destination
    source: str  # the sample's key
    label: str
    variant: str
    seed: int
    ops: tuple[dict[str, Any], ...]
    sha256: str
    size: int  # bytes
    source_sha256: str  # of the source bytes it was made from ("" if unknown)
    boxes: tuple[dict[str, Any], ...] | None = None  # detection datasets: the boxes it kept
    category: str | None = None  # with a hold-out: training | testing


class SinkError(BlockError, RuntimeError):
    """The destination cannot be written; the message names the path or object."""


class Journal:
    """An append-only text file (the manifest during a run): lines added as results arrive, made durable
    at ``sync``. A reader sees whole lines in order; a hard kill can cut at most the last one."""

    in_place = True  # the lines land in the file itself (False: in part objects beside it, as on S3)

    def append(self, lines: list[str]) -> None:
        raise NotImplementedError

    def sync(self) -> None:
        """Everything appended so far is stored (survives a crash)."""

    def close(self) -> None:
        self.sync()


class Sink:
    """A destination for named outputs. Names are relative, ``/``-separated paths."""

    # -- required --------------------------------------------------------------------------------------------

    def describe(self) -> str:
        raise NotImplementedError

    def write(self, name: str, data: bytes) -> None:
        """Store ``data`` as ``name``, whole or not at all; may be called from many threads at once."""
        raise NotImplementedError

    def read(self, name: str) -> bytes | None:
        raise NotImplementedError

    def delete(self, name: str) -> None:
        """Remove the output ``name`` if it is there (a sample that failed after some outputs were written)."""
        raise NotImplementedError

    def size(self, name: str) -> int | None:
        """Bytes of the output ``name``, or None if it is not there."""
        raise NotImplementedError

    def read_lines(self, name: str) -> Iterator[str] | None:
        """The lines of a text file (manifest and its journal), streamed; None if there is none."""
        raise NotImplementedError

    def write_lines(self, name: str, lines: Iterable[str], journal: Journal | None = None) -> None:
        """Replace a text file with ``lines`` (each ending in a newline), whole or not at all, streamed;
        ``journal``, that file's open journal, is closed first (or, where that is safe, meanwhile)."""
        raise NotImplementedError

    def open_journal(self, name: str, header: str | None) -> Journal:
        """A journal at ``name``: a new one holding ``header`` (replacing what was there), or, with None,
        the existing one continued."""
        raise NotImplementedError

    # -- with defaults ---------------------------------------------------------------------------------------

    def exists(self, name: str) -> bool:
        return self.size(name) is not None

    def read_text(self, name: str) -> str | None:
        data = self.read(name)
        return None if data is None else data.decode("utf-8")

    def write_text(self, name: str, text: str) -> None:
        self.write(name, text.encode("utf-8"))

    def names(self, skip: str | None = None) -> Iterator[str]:
        """The relative name of every file in the destination, sorted, leaving out hidden (``.``) folders and
        the folder ``skip`` (an input inside the output); none when the destination cannot say."""
        return iter(())

    @property
    def local_root(self) -> Path | None:
        """The folder outputs land in, when they land in one on this machine."""
        return None

    # -- hooks (no-ops unless a destination needs them) ------------------------------------------------------

    def lock(self, shard: Any, wait: float) -> Any:
        """This run's place in the destination (a ``FolderLock``, not yet taken; ``wait``: seconds to wait for
        another run's check), or None when it has none."""
        return None

    def remove_stale_temps(self, lock: Any) -> int:
        """Remove temp files left by killed runs (``lock``: this run's place, held); how many."""
        return 0

    def manifests(self, books: str) -> list[str]:
        """The names of every manifest (``manifest*.jsonl``) in the ``books`` folder: this run's and others'."""
        root = self.local_root
        if root is None or not (root / books).is_dir():
            return []
        return sorted(books + p.name for p in (root / books).glob("manifest*.jsonl") if p.is_file())

    def version(self, name: str) -> str | None:
        """What identifies the text file ``name`` and its journal as the run last saw them (S3: their listing
        entries), to tell whether it changed since; None when the destination cannot say (read it again)."""
        return None

    def prefetch(self) -> None:
        """Start, in the background, what the run will soon ask of the destination (S3: its listing)."""

    def refresh(self, prefix: str) -> None:
        """Forget what the run noted of the objects under ``prefix`` at its start and look again (S3: another
        run may have written there since the listing was taken)."""

    def settle(self) -> None:
        """Wait for the work the last writes left in the background (S3: deleting the manifest's journal
        parts); raise its error."""

    def sync(self) -> None:
        """Every output written so far is durable (before the manifest records it)."""

    def commit(self, entry: OutputEntry) -> None:
        """An output is written and booked: act on it (the EI upload)."""

    def close(self, interrupted: bool = False, stopping: Callable[[], bool] | None = None) -> dict[str, Any] | None:
        """Finish background work (stop early when ``interrupted``, or as soon as ``stopping()`` turns true);
        a summary for the report, or None."""
        return None
