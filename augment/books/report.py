"""Progress lines, the end-of-run summary and the report (the manifest: ``augment.books.manifest``)."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from augment import __version__
from augment.plan.samples import printable
from augment.sinks import OutputEntry

REPORT = "report.json"
LISTED = 1000  # errors and warnings listed in the report (beyond: counted; every one is logged)
Log = Callable[[str], None]


class Status(Enum):
    """What became of a planned output in this run."""

    WRITTEN = "written"  # rendered and written now
    EXISTING = "existing"  # an earlier run's, recorded and still there: kept
    DROPPED = "dropped"  # not written: every box was cut off (detection datasets without --keep-boxless)


@dataclass(frozen=True)
class OutputRecord:
    name: str
    status: Status
    entry: OutputEntry | None = None  # what the manifest records of it (None when DROPPED)


@dataclass
class TaskResult:
    key: str
    label: str
    records: list[OutputRecord] = field(default_factory=list)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)  # e.g. boxes clipped to the image


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
        self.errors: list[tuple[str, str]] = []  # the first LISTED (all are logged)
        self.warnings: list[str] = []
        self.failed = 0
        self.warned = 0

    def update(self, result: TaskResult) -> None:
        counts = self.classes[result.label]
        counts.originals += 1
        self.done += 1
        for warning in result.warnings:
            self.warned += 1
            if len(self.warnings) < LISTED:
                self.warnings.append(warning)
            self.log(f"warning: {printable(warning)}")
        if result.error:
            counts.failed += 1
            self.failed += 1
            if len(self.errors) < LISTED:
                self.errors.append((result.key, result.error))
            self.log(f"ERROR {printable(result.key)}: {result.error} (skipped)")
        for record in result.records:
            if record.status is Status.WRITTEN:
                counts.written += 1
            elif record.status is Status.DROPPED:
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
            "not_listed": {"errors": self.failed - len(self.errors), "warnings": self.warned - len(self.warnings)},
            "seconds": round(self.elapsed, 3),
            "images_per_second": round(written / self.elapsed, 2) if self.elapsed else None,
            **extra,
        }
