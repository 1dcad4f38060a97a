"""augment.manifest: an OutputEntry becomes one JSON line and back; the journal is appended as results are
booked and continued by a rerun of the same settings; another settings' manifest is refused; the final
rewrite lists each planned output once, in plan order."""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path

import pytest

from augment.books.manifest import (
    MANIFEST,
    Manifest,
    ManifestMismatchError,
    entry_line,
    fingerprint,
    parse_entry,
    read_entries,
)
from augment.plan.index import RunIndex
from augment.sinks import OutputEntry
from augment.sinks.local import LocalSink

HEADER = {"fingerprint": fingerprint({"seed": 1}), "seed": 1}


def entry(name: str, **changes) -> OutputEntry:
    fields = dict(output=name, source="a/x.png", label="a", variant="aug0", seed=1, ops=({"op": "hflip"},),
                  sha256="ab" * 32, size=10, source_sha256="cd" * 32)  # fmt: skip
    fields.update(changes)
    return OutputEntry(**fields)


def test_an_entry_is_one_sorted_json_line_that_parses_back_to_itself():
    plain = entry("a/x.aug0.png")
    line = entry_line(plain)
    assert json.loads(line) == {
        "output": "a/x.aug0.png", "source": "a/x.png", "label": "a", "variant": "aug0", "seed": 1,
        "ops": [{"op": "hflip"}], "sha256": "ab" * 32, "bytes": 10, "source_sha256": "cd" * 32,
    }  # fmt: skip
    assert line == json.dumps(json.loads(line), sort_keys=True)
    assert parse_entry(line) == plain
    detected = entry("training/a/x.aug0.png", boxes=({"label": "cap", "x": 1},), category="training")
    assert json.loads(entry_line(detected))["boxes"] == [{"label": "cap", "x": 1}]
    assert parse_entry(entry_line(detected)) == detected


@pytest.mark.parametrize(
    "line",
    ['{"type": "run", "fingerprint": "x"}', '{"output": "a.png", "bytes": "ten"}', '{"output": "a', "[1]", ""],
)
def test_a_header_cut_or_damaged_line_is_no_entry(line: str):
    assert parse_entry(line) is None


def test_fields_of_the_wrong_type_get_neutral_values():
    odd = parse_entry('{"output": "a.png", "ops": "flip", "boxes": {"x": 1}, "bytes": 5}')
    assert odd is not None and (odd.ops, odd.boxes, odd.size) == ((), None, 5)


def test_a_line_of_an_older_version_gets_neutral_values():
    old = parse_entry('{"output": "a/x.png", "sha256": "00", "bytes": 5, "seed": 3}')
    assert old is not None and (old.source_sha256, old.boxes, old.category, old.size) == ("", None, None, 5)
    assert parse_entry('{"output": "a/x.png"}').size == -1  # never taken as done


def test_read_entries_skips_what_is_not_an_output_line():
    lines = ['{"type": "run"}', entry_line(entry("a.png")), '{"output": "b.p', entry_line(entry("c.png"))]
    assert [name for name, _ in read_entries(lines)] == ["a.png", "c.png"]


def _manifest(folder: Path, index: RunIndex, header=HEADER, overwrite=False) -> Manifest:
    return Manifest(LocalSink(folder), header, overwrite, MANIFEST, index)


def test_the_journal_holds_the_header_first_then_each_booked_result(tmp_path: Path):
    with closing(RunIndex()) as index:
        manifest = _manifest(tmp_path, index)
        manifest.start()
        assert json.loads((tmp_path / MANIFEST).read_text().splitlines()[0])["type"] == "run"
        manifest.record([entry("b.png"), entry("a.png")], [])
        manifest.checkpoint()
        lines = (tmp_path / MANIFEST).read_text().splitlines()
        assert [json.loads(line)["output"] for line in lines[1:]] == ["b.png", "a.png"]
        manifest.finish([(["a.png", "b.png"], True)], lambda name: True)
    assert [json.loads(line).get("output") for line in (tmp_path / MANIFEST).read_text().splitlines()] == [
        None,
        "b.png",
        "a.png",
    ]  # a run that started the file appended each output once: nothing to rewrite


def test_a_rerun_continues_the_journal_and_rewrites_it_once_in_plan_order(tmp_path: Path):
    with closing(RunIndex()) as index:
        first = _manifest(tmp_path, index)
        first.start()
        first.record([entry("b.png")], [])
        first.close()  # interrupted: b.png is recorded, a.png never made
    with closing(RunIndex()) as index:
        again = _manifest(tmp_path, index)
        assert again.resumed and set(again.recorded(["a.png", "b.png"])) == {"b.png"}
        assert again.recorded(["b.png"])["b.png"] == entry("b.png")
        again.start()
        again.record([entry("a.png", sha256="ef" * 32)], ["b.png"])
        again.finish([(["a.png", "b.png"], True)], lambda name: True)
    lines = (tmp_path / MANIFEST).read_text().splitlines()
    assert [json.loads(line).get("output") for line in lines] == [None, "a.png", "b.png"]
    assert parse_entry(lines[1]).sha256 == "ef" * 32


def test_a_manifest_of_other_settings_is_refused_unless_overwriting(tmp_path: Path):
    with closing(RunIndex()) as index:
        manifest = _manifest(tmp_path, index)
        manifest.start()
        manifest.record([entry("a.png")], [])
        manifest.close()
    other = {"fingerprint": fingerprint({"seed": 2}), "seed": 2}
    with closing(RunIndex()) as index, pytest.raises(ManifestMismatchError, match="another recipe, seed or format"):
        _manifest(tmp_path, index, other)
    with closing(RunIndex()) as index:
        assert _manifest(tmp_path, index, other, overwrite=True).recorded(["a.png"]) == {}


def test_a_task_that_did_not_run_keeps_its_earlier_lines_and_unplanned_outputs_stay_listed(tmp_path: Path):
    with closing(RunIndex()) as index:
        first = _manifest(tmp_path, index)
        first.start()
        first.record([entry("a.png"), entry("old.png"), entry("b.png")], [])
        first.close()
    with closing(RunIndex()) as index:
        again = _manifest(tmp_path, index)
        again.start()
        again.record([entry("b.png", size=11)], [])
        # a.png's task did not run (--since); old.png is no longer planned (fewer --copies): both stay listed
        again.finish([(["a.png"], False), (["b.png"], True)], lambda name: name != "old.png")
    outputs = [parse_entry(line) for line in (tmp_path / MANIFEST).read_text().splitlines()[1:]]
    assert [(e.output, e.size) for e in outputs] == [("a.png", 10), ("b.png", 11), ("old.png", 10)]
