"""augment.report: per-class counts by what became of each output, errors and warnings logged (every one) and
listed (the first LISTED), a progress line every ``every`` samples, the summary table and the report."""

from __future__ import annotations

from augment.books.report import LISTED, OutputRecord, Progress, Status, TaskResult
from augment.sinks import OutputEntry


def _entry(name: str) -> OutputEntry:
    return OutputEntry(name, "a/x.png", "a", "aug0", 1, (), "00", 3, "11")


def result(label: str, *statuses: Status, error: str | None = None, warnings: list[str] | None = None) -> TaskResult:
    records = [OutputRecord(f"{label}/{i}.png", s, None if s is Status.DROPPED else _entry(f"{i}.png"))
               for i, s in enumerate(statuses)]  # fmt: skip
    return TaskResult(f"{label}/x.png", label, records, error, warnings or [])


def test_outputs_are_counted_per_class_by_status():
    progress = Progress(3, lambda line: None)
    progress.update(result("a", Status.WRITTEN, Status.WRITTEN, Status.EXISTING))
    progress.update(result("a", Status.EXISTING, Status.DROPPED))
    progress.update(result("b", error="cannot read: gone"))
    report = progress.report({"extra": 1})
    assert report["classes"]["a"] == {"originals": 2, "written": 2, "existing": 2, "failed": 0, "dropped": 1}
    assert report["classes"]["b"] == {"originals": 1, "written": 0, "existing": 0, "failed": 1, "dropped": 0}
    assert report["totals"] == {"originals": 3, "written": 2, "existing": 2, "failed": 1, "dropped": 1}
    assert report["errors"] == [{"source": "b/x.png", "error": "cannot read: gone"}] and report["extra"] == 1
    assert progress.failed == 1


def test_every_error_and_warning_is_logged_and_the_first_listed_ones_are_reported():
    lines: list[str] = []
    progress = Progress(LISTED + 2, lines.append, every=10**9)
    for i in range(LISTED + 2):
        progress.update(result(f"c{i}", error=f"bad {i}", warnings=[f"odd {i}"]))
    report = progress.report({})
    assert len(report["errors"]) == len(report["warnings"]) == LISTED
    assert report["not_listed"] == {"errors": 2, "warnings": 2}
    assert sum(line.startswith("ERROR ") for line in lines) == LISTED + 2
    assert sum(line.startswith("warning: ") for line in lines) == LISTED + 2


def test_a_progress_line_every_few_samples_and_at_the_end():
    lines: list[str] = []
    progress = Progress(5, lines.append, every=2)
    for _ in range(5):
        progress.update(result("a", Status.WRITTEN))
    assert [line.split(" samples")[0] for line in lines] == ["[2/5]", "[4/5]", "[5/5]"]
    assert "5 outputs written" in lines[-1]


def test_the_summary_table_totals_the_classes():
    progress = Progress(2, lambda line: None)
    progress.update(result("b", Status.WRITTEN, Status.EXISTING))
    progress.update(result("a", Status.WRITTEN))
    table = progress.summary_lines()
    assert [row.split()[0] for row in table[2:4]] == ["a", "b"]  # sorted by class
    assert table[-2].split() == ["total", "2", "2", "1", "0"]
