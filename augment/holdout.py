"""The leakage-free hold-out: which originals go to the testing set (``--test-fraction``).

An original is held out when a stable hash of its key falls below ``fraction``: a decision per sample that
needs no other sample, so it is the same whatever the file order, the shard a sample lands in, the subset a
rerun sees, or the machine. Keys include the class folder, and the hash is uniform, so each class gets
``fraction`` of its originals in expectation (the report lists the actual counts per class).

A held-out original is written once, unchanged, to ``testing``; it gets no augmented copies. Every other
original and all augmented copies go to ``training``. So no two outputs of one original are ever split
across training and testing, which is what Edge Impulse's own ``split`` (by file hash) does to augmented
copies.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from augment.samples import stable_hash

TRAINING, TESTING = "training", "testing"
DEFAULT_TEST_FRACTION = 0.2
_SALT = "edge-augment/holdout/"  # not the seed: changing --seed must not move samples between sets


def held_out(key: str, fraction: float) -> bool:
    """Whether the original at ``key`` belongs to the testing set."""
    return fraction > 0 and stable_hash(_SALT + key) < fraction * 2**64


def category_of(key: str, fraction: float) -> str | None:
    """``testing``/``training`` for the original at ``key``; None when no hold-out is made."""
    if fraction <= 0:
        return None
    return TESTING if held_out(key, fraction) else TRAINING


def counts(samples: Iterable[tuple[str, str | None]]) -> dict[str, dict[str, int]]:
    """(label, category) pairs of originals -> {label: {"training": n, "testing": m}}."""
    table: dict[str, dict[str, int]] = defaultdict(lambda: {TRAINING: 0, TESTING: 0})
    for label, category in samples:
        if category is not None:
            table[label][category] += 1
    return dict(sorted(table.items()))


def notes(table: dict[str, dict[str, int]], fraction: float) -> list[str]:
    """One summary line, and a warning per class left without testing (or training) originals."""
    if fraction <= 0:
        return []
    test = sum(c[TESTING] for c in table.values())
    total = test + sum(c[TRAINING] for c in table.values())
    lines = [f"hold-out: {test} of {total} originals go to testing (--test-fraction {fraction:g}), per class by key"]
    for label, c in table.items():
        if c[TESTING] == 0 or c[TRAINING] == 0:
            empty = TESTING if c[TESTING] == 0 else TRAINING
            lines.append(
                f"warning: class {label!r} has no {empty} originals ({c[TRAINING]} training, {c[TESTING]} testing)"
            )
    return lines


def report(table: dict[str, dict[str, int]], fraction: float) -> dict[str, Any]:
    return {"test_fraction": fraction, "originals": table}
