"""``manifest.jsonl``: a ``run`` header line (which settings the files belong to), then one JSON line per output.

During a run the file is a journal: the header lands before the first output, and each result's lines are
appended as it is booked, so a rerun after a crash at any moment knows what the folder holds (a line
repeated by a resumed run: the last one counts). It is never rewritten during the run. A run that resumed an
earlier manifest rewrites it once at the end, streamed from the run's on-disk index, in plan order with one
line per output: the same bytes whether the run went in one go or was interrupted and resumed (a run that
started the file wrote exactly that already).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from augment.errors import BlockError
from augment.plan.index import RunIndex
from augment.sinks import Journal, OutputEntry, Sink

MANIFEST = "manifest.jsonl"
_BATCH = 1000  # output names looked up at once while writing the final manifest


class ManifestMismatchError(BlockError, RuntimeError):
    """The out-directory holds outputs made with another recipe, seed or encoding."""


def fingerprint(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def entry_line(entry: OutputEntry) -> str:
    """The manifest line of ``entry`` (the only place one is written)."""
    line: dict[str, Any] = {
        "output": entry.output,
        "source": entry.source,
        "label": entry.label,
        "variant": entry.variant,
        "seed": entry.seed,
        "ops": list(entry.ops),
        "sha256": entry.sha256,
        "bytes": entry.size,
        "source_sha256": entry.source_sha256,
    }
    if entry.boxes is not None:
        line["boxes"] = list(entry.boxes)
    if entry.category is not None:
        line["category"] = entry.category
    return json.dumps(line, sort_keys=True)


def parse_entry(line: str) -> OutputEntry | None:
    """The entry of a manifest output line (the only place one is read); None for the header, a line cut by a
    hard kill or a damaged one. Fields an older version did not write get neutral values (``size`` -1: the
    output is not taken as done)."""
    value = json_object(line)
    if value is None or not isinstance(value.get("output"), str):
        return None
    ops, boxes, category = value.get("ops"), value.get("boxes"), value.get("category")
    try:
        return OutputEntry(
            output=value["output"],
            source=str(value.get("source", "")),
            label=str(value.get("label", "")),
            variant=str(value.get("variant", "")),
            seed=int(value.get("seed", 0)),
            ops=tuple(ops) if isinstance(ops, list) else (),
            sha256=str(value.get("sha256", "")),
            size=int(value.get("bytes", -1)),
            source_sha256=str(value.get("source_sha256", "")),
            boxes=tuple(boxes) if isinstance(boxes, list) else None,
            category=None if category is None else str(category),
        )
    except (TypeError, ValueError):
        return None


def read_entries(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    """``(output, line)`` for every well-formed output line (a line cut by a hard kill is skipped)."""
    for line in lines:
        entry = json_object(line)
        if entry is not None and isinstance(entry.get("output"), str):
            yield entry["output"], line


class Manifest:
    """One run's manifest: the previous one's lines (in ``index``), the journal, the final rewrite."""

    def __init__(self, sink: Sink, header: dict[str, Any], overwrite: bool, name: str, index: RunIndex) -> None:
        self.sink, self.name, self.index = sink, name, index
        self.header = {"type": "run", **header}
        self.journal: Journal | None = None
        self.resumed = False  # an earlier manifest of these settings is continued
        self.adopted = False  # booked outputs another manifest recorded: the final rewrite puts them in order
        self.read_version: str | None = None  # the sink's version of the earlier manifest this run read
        version = sink.version(name)  # taken before the read: if the file changes meanwhile, it differs later
        lines = None if overwrite else sink.read_lines(name)
        if lines is None:
            return
        first = next(lines, None)
        if first is None:
            return
        old = json_object(first)
        if old is None or old.get("fingerprint") != header["fingerprint"]:
            raise ManifestMismatchError(
                f"{sink.describe()} holds outputs of another recipe, seed or format (see its {name}); "
                "use an empty --out-directory, or --overwrite 1 to regenerate"
            )
        index.load_previous(read_entries(lines))
        self.resumed = True
        self.read_version = version

    def recorded(self, names: Iterable[str]) -> dict[str, OutputEntry]:
        """Outputs an earlier run recorded (here, or in another manifest of these settings in the folder, so
        a run never rewrites a file another run recorded); a damaged line's output is made again."""
        found = {}
        for name, line in self._earlier(list(names)).items():
            if (entry := parse_entry(line)) is not None:
                found[name] = entry
        return found

    def _earlier(self, names: list[str]) -> dict[str, str]:
        """Earlier lines of ``names``: this manifest's, else another manifest's of these settings."""
        lines = self.index.others(names)
        lines.update(self.index.previous(names))
        return lines

    def start(self) -> None:
        """Open the journal: a new file with the header, or the earlier manifest continued."""
        self.sink.sync()  # outputs an earlier run left (and a rerun adopts) are durable before any record
        self.journal = self.sink.open_journal(self.name, None if self.resumed else self._header_line())

    def record(self, written: list[OutputEntry], existing: list[str]) -> None:
        """Book one result: the entries of outputs written now (appended to the journal) and the names of
        outputs an earlier run made (their lines are in the journal already, or appended when another
        manifest recorded them); both kept in the index as this run's."""
        assert self.journal is not None
        adopted = self.index.others(existing) if existing else {}  # recorded by another run: not in our journal
        for name in self.index.previous(adopted):
            del adopted[name]
        lines = {entry.output: entry_line(entry) for entry in written}
        if lines or adopted:
            self.journal.append(list(lines.values()) + list(adopted.values()))
            self.adopted = self.adopted or bool(adopted)
        if existing:
            lines.update(self._earlier(existing))
        self.index.add_lines(lines.items())

    def checkpoint(self) -> None:
        """Outputs written so far reach storage, then the lines that record them."""
        self.sink.sync()
        if self.journal is not None:
            self.journal.sync()

    def close(self) -> None:
        if self.journal is not None:
            self.sink.sync()
            self.journal.close()
            self.journal = None

    def finish(self, tasks: Iterable[tuple[list[str], bool]], planned_here: Callable[[str], bool]) -> None:
        """Rewrite the manifest once: the header; for each of this shard's ``tasks`` (its output names in plan
        order, and whether it ran) the line of each output this run booked, or for a task that did not run (--since)
        the earlier line; then earlier lines of outputs this run does not plan (e.g. after lowering --copies:
        their files are still there). A run that started a file it appends to in place has nothing to
        rewrite: it appended each output once, in plan order."""
        in_place = self.journal is not None and self.journal.in_place
        if not (self.resumed or self.adopted or not in_place):
            self.close()
            return
        self.sink.sync()  # the outputs, then the lines: the journal's last ones, and the whole file
        journal, self.journal = self.journal, None
        self.sink.write_lines(self.name, self._final(tasks, planned_here), journal)

    def lines(self, tasks: Iterable[tuple[list[str], bool]], planned_here: Callable[[str], bool]) -> Iterator[str]:
        """The output lines of the final manifest (as ``finish`` writes them), streamed."""
        batch: list[tuple[str, bool]] = []
        for names, ran in tasks:
            batch += [(name, ran) for name in names]
            if len(batch) >= _BATCH:
                yield from self._lines_of(batch)
                batch = []
        yield from self._lines_of(batch)
        yield from self.index.unplanned_previous(planned_here)

    def _lines_of(self, batch: list[tuple[str, bool]]) -> Iterator[str]:
        """In ``batch`` order: this run's line of each output; for a task that did not run, the earlier one.
        (An output of a task that ran but could not remake it has no line: its file is gone or wrong.)"""
        now = self.index.lines(name for name, _ in batch)
        before = self.index.previous(name for name, ran in batch if not ran and name not in now)
        for name, _ in batch:
            line = now.get(name) or before.get(name)
            if line is not None:
                yield line

    def _final(self, tasks: Iterable[tuple[list[str], bool]], planned_here: Callable[[str], bool]) -> Iterator[str]:
        yield self._header_line()
        yield from self.lines(tasks, planned_here)

    def _header_line(self) -> str:
        return json.dumps(self.header, sort_keys=True)


def json_object(line: str) -> dict[str, Any] | None:
    """``line`` as a JSON object, or None (not JSON, or not an object)."""
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
