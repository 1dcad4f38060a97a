"""The on-disk maps a run keeps its per-output books in: any name round-trips, iteration is sorted and
batched, and nothing is left in TMPDIR, even while one is open (the file is unlinked once opened)."""

from __future__ import annotations

import tempfile

from augment.plan.index import RunIndex
from augment.storage.diskmap import DiskMap


def test_names_round_trip_in_order_and_nothing_is_left_in_tmpdir(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    books = DiskMap()
    index = RunIndex()
    try:
        assert list(tmp_path.iterdir()) == []  # open, yet no file to leave behind
        names = [f"c/{i:05d}.png" for i in range(2500)] + ["caf\udce9.png", "ünïcode.png"]
        books.update((n, f"line {n}") for n in reversed(names))
        books.set("c/00000.png", "replaced")
        assert len(books) == len(names) and "caf\udce9.png" in books and "x" not in books
        assert [k for k, _ in books.items(batch=7)] == sorted(names, key=lambda n: n.encode("utf-8", "surrogateescape"))
        assert books.get("c/00000.png") == "replaced" and books.get("ünïcode.png") == "line ünïcode.png"
    finally:
        books.close()
        index.close()
    assert list(tmp_path.iterdir()) == []
