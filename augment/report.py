"""Progress lines, the manifest (one JSON line per output) and the end-of-run summary and report."""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from augment import __version__
from augment.samples import printable
from augment.sinks import Sink

MANIFEST = "manifest.jsonl"
REPORT = "report.json"
Log = Callable[[str], None]


class ManifestMismatchError(RuntimeError):
    """The out-directory holds outputs made with another recipe, seed or encoding."""


@dataclass(frozen=True)
class OutputRecord:
    name: str
    variant: str
    status: str  # written | existing
    line: str  # the manifest JSON line


@dataclass
class TaskResult:
    key: str
    label: str
    records: list[OutputRecord] = field(default_factory=list)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)  # e.g. boxes clipped to the image


def fingerprint(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


class Manifest:
    """``manifest.jsonl``: a ``run`` header line, then one line per output, in plan order.

    Loaded at start so a rerun can skip outputs already recorded; rewritten whole (atomically) at the end
    and at checkpoints, so it is never half-written.
    """

    def __init__(self, sink: Sink, header: dict[str, Any], overwrite: bool, name: str = MANIFEST) -> None:
        self.sink = sink
        self.name = name  # a shard writes its own: manifest.shard-I-of-N.jsonl
        self.header = {"type": "run", **header}
        self.previous: dict[str, str] = {}
        self.lines: dict[str, str] = {}
        text = sink.read_text(name)
        if text is None or overwrite:
            return
        lines = text.splitlines()
        old = _json(lines[0]) if lines else None
        if lines and (old is None or old.get("fingerprint") != header["fingerprint"]):
            raise ManifestMismatchError(
                f"{sink.describe()} holds outputs of another recipe, seed or format (see its {name}); "
                "use an empty --out-directory, or --overwrite 1 to regenerate"
            )
        for line in lines[1:]:
            entry = _json(line)
            if entry and "output" in entry:
                self.previous[entry["output"]] = line

    def add(self, name: str, line: str) -> None:
        self.lines[name] = line

    def entries(self, order: list[str]) -> list[str]:
        """Output lines: this run's in ``order``, then earlier ones of the same settings it did not plan."""
        planned = set(order)
        lines = [self.lines[n] for n in order if n in self.lines]
        return lines + [line for n, line in sorted(self.previous.items()) if n not in planned and n not in self.lines]

    def save(self, order: list[str]) -> None:
        """Write the manifest: the outputs in ``order``, then earlier outputs of the same settings that this run
        did not plan (e.g. after lowering --copies: their files are still there, so their lines stay)."""
        sync = getattr(self.sink, "sync", None)
        if sync is not None:  # the outputs it records reach the disk before the record does
            sync()
        body = [json.dumps(self.header, sort_keys=True), *self.entries(order)]
        body.append("")  # the final newline
        stream = getattr(self.sink, "write_lines", None)
        if stream is not None:  # a local folder streams it: no whole-text copies (large runs: ~0.5 KB per output)
            stream(self.name, body)
        else:
            self.sink.write_text(self.name, "\n".join(body))


def _json(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


@dataclass
class ClassCounts:
    originals: int = 0
    written: int = 0
    existing: int = 0
    failed: int = 0
    dropped: int = 0  # copies not written: every box was cut off (detection datasets)


class Progress:
    """Counts per class, a log line every ``every`` samples, and the final summary."""

    def __init__(self, total: int, log: Log, every: int | None = None) -> None:
        self.total = total
        self.log = log
        self.every = every or max(1, min(500, total // 10))
        self.done = 0
        self.start = time.monotonic()
        self.classes: dict[str, ClassCounts] = defaultdict(ClassCounts)
        self.variants: Counter[str] = Counter()
        self.errors: list[tuple[str, str]] = []
        self.warnings: list[str] = []

    def update(self, result: TaskResult) -> None:
        counts = self.classes[result.label]
        counts.originals += 1
        self.done += 1
        for warning in result.warnings:
            self.warnings.append(warning)
            self.log(f"warning: {printable(warning)}")
        if result.error:
            counts.failed += 1
            self.errors.append((result.key, result.error))
            self.log(f"ERROR {printable(result.key)}: {result.error} (skipped)")
        for record in result.records:
            if record.status == "written":
                counts.written += 1
            elif record.status == "dropped":
                counts.dropped += 1
            else:
                counts.existing += 1
        if self.done % self.every == 0 or self.done == self.total:
            elapsed = time.monotonic() - self.start
            outputs = sum(c.written for c in self.classes.values())
            self.log(
                f"[{self.done}/{self.total}] samples, {outputs} outputs written, "
                f"{outputs / elapsed if elapsed else 0:.1f} outputs/s"
            )

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def summary_lines(self) -> list[str]:
        header = f"{'class':<24} {'originals':>9} {'written':>8} {'existing':>8} {'failed':>7}"
        lines = [header, "-" * len(header)]
        total = ClassCounts()
        for label in sorted(self.classes):
            c = self.classes[label]
            lines.append(f"{printable(label)[:24]:<24} {c.originals:>9} {c.written:>8} {c.existing:>8} {c.failed:>7}")
            for f in ("originals", "written", "existing", "failed"):
                setattr(total, f, getattr(total, f) + getattr(c, f))
        lines.append("-" * len(header))
        lines.append(f"{'total':<24} {total.originals:>9} {total.written:>8} {total.existing:>8} {total.failed:>7}")
        rate = total.written / self.elapsed if self.elapsed else 0.0
        lines.append(f"time {self.elapsed:.1f} s, {rate:.1f} images/s written")
        return lines

    def report(self, extra: dict[str, Any]) -> dict[str, Any]:
        classes = {k: vars(v) for k, v in sorted(self.classes.items())}
        written = sum(c.written for c in self.classes.values())
        return {
            "version": __version__,
            "classes": classes,
            "totals": {k: sum(c[k] for c in classes.values()) for k in vars(ClassCounts())},
            "errors": [{"source": k, "error": e} for k, e in self.errors],
            "warnings": self.warnings,
            "seconds": round(self.elapsed, 3),
            "images_per_second": round(written / self.elapsed, 2) if self.elapsed else None,
            **extra,
        }
