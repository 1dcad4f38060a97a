"""The leakage-free hold-out: which originals go to the testing set (``--test-fraction``).

Each class gets exactly ``held_out_count(n, fraction)`` testing originals: ``round(fraction * n)`` (halves up),
at least one and at most ``n - 1`` when a class has two or more. They are the class's originals with the
lowest ``rank_key``, a stable hash of the key, so the choice is the same whatever the file order, the shard,
or the machine (every shard lists the whole source), and adding one image to a class moves at most one
existing original between the sets.

A held-out original is written once, unchanged, to ``testing``; it gets no augmented copies. Every other
original and all augmented copies go to ``training``. So no two outputs of one original are ever split
across training and testing, which is what Edge Impulse's own ``split`` (by file hash) does to augmented
copies.
"""

from __future__ import annotations

import math
from typing import Any

from augment.plan.samples import stable_hash

TRAINING, TESTING = "training", "testing"
DEFAULT_TEST_FRACTION = 0.2
_SALT = "edge-augment/holdout/"  # not the seed: changing --seed must not move samples between sets


def held_out_count(n: int, fraction: float) -> int:
    """How many of a class's ``n`` originals are held out."""
    if fraction <= 0 or n == 0:
        return 0
    k = math.floor(fraction * n + 0.5)
    return min(max(k, 1), n - 1) if n >= 2 else k


def rank_key(key: str) -> int:
    """The order in which a class's originals are held out (lowest first); ties, if any, go by key."""
    return stable_hash(_SALT + key)


def notes(table: dict[str, dict[str, int]], fraction: float) -> list[str]:
    """A summary line, the testing count of each class, and a warning per class left without testing (or
    training) originals."""
    if fraction <= 0:
        return []
    test = sum(c[TESTING] for c in table.values())
    total = test + sum(c[TRAINING] for c in table.values())
    lines = [f"hold-out: {test} of {total} originals go to testing (--test-fraction {fraction:g}, exact per class)"]
    lines += [f"hold-out: {label[:24]:<24} {c[TESTING]:>7} of {c[TESTING] + c[TRAINING]}" for label, c in table.items()]
    for label, c in table.items():
        if c[TESTING] == 0 or c[TRAINING] == 0:
            empty = TESTING if c[TESTING] == 0 else TRAINING
            lines.append(
                f"warning: class {label!r} has no {empty} originals ({c[TRAINING]} training, {c[TESTING]} testing)"
            )
    return lines


def report(table: dict[str, dict[str, int]], fraction: float) -> dict[str, Any]:
    return {"test_fraction": fraction, "originals": table}
