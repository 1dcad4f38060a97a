"""augment.runner, in-process: a run writes its outputs, manifest and report and says what it did; a rerun
keeps what is done; what stops a run (nothing to read, nothing to write) is one ERROR line and an exit code;
bad inputs count against the failure budget; --since skips sources that are old and recorded whole."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

from augment.books.manifest import MANIFEST, parse_entry
from augment.cli import parse
from augment.config import build_config
from augment.errors import BlockError
from augment.run.runner import EXIT_FAILED, EXIT_OK, EXIT_USAGE, run
from tests.conftest import gradient


def block(src: Path, out: Path, *extra: str, env: dict[str, str] | None = None) -> tuple[int, list[str]]:
    args, _ = parse(["--in-directory", str(src), "--out-directory", str(out), "--copies", "1", *extra])
    lines: list[str] = []
    try:
        return run(build_config(args, env or {}), lines.append), lines
    except BlockError as e:  # as transform.py reports it (the one place that catches it)
        return e.exit_code, [*lines, f"ERROR: {e}"]


def report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def test_a_run_writes_outputs_manifest_and_report_and_a_rerun_keeps_them(sample_dir: Path, tmp_path: Path):
    out = tmp_path / "out"
    code, lines = block(sample_dir, out)
    assert code == EXIT_OK and lines[0].startswith("edge-augment ") and "24 images in 3 classes" in lines[0]
    assert report(out)["totals"] == {"originals": 24, "written": 48, "existing": 0, "failed": 0, "dropped": 0}
    entries = [parse_entry(line) for line in (out / MANIFEST).read_text().splitlines()[1:]]
    assert len(entries) == 48 and all(e is not None and (out / e.output).stat().st_size == e.size for e in entries)
    code, _ = block(sample_dir, out)
    assert code == EXIT_OK and report(out)["totals"]["existing"] == 48 and report(out)["totals"]["written"] == 0
    assert [parse_entry(line) for line in (out / MANIFEST).read_text().splitlines()[1:]] == entries


def test_no_images_is_one_error_line_and_exit_1(tmp_path: Path):
    (tmp_path / "in" / "a").mkdir(parents=True)
    code, lines = block(tmp_path / "in", tmp_path / "out")
    assert code == EXIT_FAILED and lines[-1].startswith("ERROR: no images found in ")


def test_a_run_that_would_write_nothing_is_a_usage_error(sample_dir: Path, tmp_path: Path):
    code, lines = block(sample_dir, tmp_path / "out", "--copies", "0", "--include-originals", "0")
    assert code == EXIT_USAGE and "this run would write nothing" in lines[-1]
    assert not (tmp_path / "out" / MANIFEST).exists()


def test_bad_inputs_within_the_budget_exit_0_beyond_it_1(sample_dir: Path, tmp_path: Path):
    (sample_dir / "circle" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    code, lines = block(sample_dir, tmp_path / "ok", "--max-failures", "1")
    assert code == EXIT_OK and any(line.startswith("ERROR circle/broken.png: ") for line in lines)
    assert report(tmp_path / "ok")["totals"]["failed"] == 1
    assert not list((tmp_path / "ok").rglob("broken*"))
    code, lines = block(sample_dir, tmp_path / "strict", "--max-failures", "0")
    assert code == EXIT_FAILED and lines[-1].startswith("FAILED: 1 of 25 images could not be augmented")


def test_a_dry_run_writes_nothing_but_the_preview(sample_dir: Path, tmp_path: Path):
    code, lines = block(sample_dir, tmp_path / "out", "--dry-run", "1")
    assert code == EXIT_OK and lines[0] == "dry run: nothing is written except the preview"
    assert [p.name for p in (tmp_path / "out").rglob("*")] == ["preview.png"]


def test_since_runs_only_new_and_changed_sources(sample_dir: Path, tmp_path: Path):
    out = tmp_path / "out"
    assert block(sample_dir, out)[0] == EXIT_OK
    since = datetime.now(UTC).isoformat()  # after every input's mtime and ctime
    time.sleep(0.01)
    gradient("RGB", (96, 96), seed=5).save(sample_dir / "circle" / "changed.png")  # new
    (sample_dir / "square" / sorted(os.listdir(sample_dir / "square"))[0]).write_bytes(
        (sample_dir / "triangle" / sorted(os.listdir(sample_dir / "triangle"))[0]).read_bytes()
    )  # modified: other bytes under the same name
    code, lines = block(sample_dir, out, "--since", since)
    assert code == EXIT_OK
    assert report(out)["since"] == {"time": since, "new": 2, "unchanged": 23, "done": 2}
    assert report(out)["totals"]["written"] == 4
    assert any(line.startswith(f"since {since}: 2 new or modified (2 done), 23 unchanged") for line in lines)
