"""The hold-out is exact per class (round(fraction x n), at least 1 and at most n - 1 from two originals),
chosen by a stable hash of the key: the same whatever the order, shard or machine, and adding an image moves
at most one existing original between the sets. The tests ask the run's own on-disk ranking (``RunIndex``, via
tests/support/plans.py); a plain in-memory twin (tests/support/oracles.py) agrees with it."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from augment.plan.holdout import TESTING, TRAINING, held_out_count
from tests.support import oracles
from tests.support.plans import holdout as split
from tests.test_determinism import run_dir


@pytest.mark.parametrize(
    ("n", "fraction", "expected"),
    [(5, 0.2, 1), (10, 0.2, 2), (250, 0.2, 50), (1, 0.2, 0), (2, 0.2, 1), (3, 0.01, 1), (2, 0.9, 1),
     (5, 0.5, 3), (7, 0.5, 4), (10, 0.0, 0), (0, 0.2, 0), (1, 0.6, 1)],
)  # fmt: skip
def test_count_rounds_half_up_and_keeps_both_sets_from_two_originals(n, fraction, expected):
    assert held_out_count(n, fraction) == expected


def keys(label: str, n: int, start: int = 0) -> list[tuple[str, str]]:
    return [(f"{label}/img-{i:04d}.png", label) for i in range(start, start + n)]


def test_each_class_gets_exactly_its_share_whatever_the_order():
    pairs = keys("five", 5) + keys("ten", 10) + keys("many", 250)
    result = split(pairs, 0.2)
    tested = Counter(label for (key, label) in pairs if result[key] == TESTING)
    assert tested == {"five": 1, "ten": 2, "many": 50}
    shuffled = random.Random(3).sample(pairs, len(pairs))
    assert split(shuffled, 0.2) == result
    assert split(pairs, 0.0) == {}


@pytest.mark.parametrize("fraction", [0.2, 0.33, 0.5])
def test_adding_an_image_moves_at_most_one_existing_original(fraction):
    pairs: list[tuple[str, str]] = []
    before = split(pairs, fraction)
    rng = random.Random(7)
    for i in range(120):
        pairs.append((f"c/{rng.getrandbits(48):012x}.png", "c"))
        after = split(pairs, fraction)
        moved = [k for k in before if before[k] != after[k]]
        assert len(moved) <= 1, (i, moved)
        assert sum(c == TESTING for c in after.values()) == held_out_count(len(pairs), fraction)
        before = after


@settings(max_examples=40, deadline=None)
@given(
    st.dictionaries(st.text(min_size=1, max_size=12), st.sampled_from(["a", "b", "c", "d"]), max_size=60),
    st.sampled_from([0.0, 0.1, 0.2, 0.5, 0.9]),
)
def test_the_run_index_ranks_as_the_plain_rule_does(labels: dict[str, str], fraction: float):
    pairs = list(labels.items())
    assert split(pairs, fraction) == oracles.split(pairs, fraction)


def test_a_run_holds_out_exactly_per_class_and_shards_agree(tmp_path: Path):
    sizes = {"five": 5, "ten": 10, "many": 40}
    for label, n in sizes.items():
        (tmp_path / "in" / label).mkdir(parents=True)
        for i in range(n):
            Image.new("L", (8, 8), i * 5).save(tmp_path / "in" / label / f"{i:02d}.png")
    args = ["--test-fraction", "0.2", "--copies", "1"]
    rc, out = run_dir(tmp_path / "in", tmp_path / "single", *args)
    assert rc == 0, out
    report = json.loads((tmp_path / "single" / "report.json").read_text())
    counts = {label: c[TESTING] for label, c in report["holdout"]["originals"].items()}
    assert counts == {"five": 1, "ten": 2, "many": 8}
    assert any(line.startswith("hold-out: five") and line.endswith("1 of 5") for line in out), out
    tested = {
        p.relative_to(tmp_path / "single" / "testing").as_posix()
        for p in (tmp_path / "single" / "testing").rglob("*.png")
    }
    pairs = [(f"{label}/{i:02d}.png", label) for label, n in sizes.items() for i in range(n)]
    expected = {k for k, c in split(pairs, 0.2).items() if c == TESTING}
    assert {f"{t.split('/')[0]}/{t.split('.')[1]}.png" for t in tested} == expected
    for i in range(3):  # three shards into one folder: the same testing set as the single run
        rc, out = run_dir(tmp_path / "in", tmp_path / "shards", *args, "--shard-index", str(i), "--shard-count", "3")
        assert rc == 0, out
    sharded = {p.relative_to(tmp_path / "shards").as_posix() for p in (tmp_path / "shards").rglob("*.png")}
    single = {p.relative_to(tmp_path / "single").as_posix() for p in (tmp_path / "single").rglob("*.png")}
    assert sharded == single and any(name.startswith(TRAINING + "/") for name in single)
