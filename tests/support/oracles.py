"""Pure-Python twins of rules the run applies in SQL over its on-disk index (``augment.plan.index``): written the
plain way, for agreement tests only (tests/test_holdout.py, tests/test_scale.py). No other test uses them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from augment.plan.holdout import TESTING, TRAINING, held_out_count, rank_key
from augment.plan.samples import Sample
from augment.plan.selection import ClassBalance, balance_key, class_quota


def split(pairs: Iterable[tuple[str, str]], fraction: float) -> dict[str, str]:
    """``(key, label)`` -> {key: category}: each class's ``held_out_count`` lowest ``rank_key``s go to testing."""
    if fraction <= 0:
        return {}
    by_label: dict[str, list[str]] = defaultdict(list)
    for key, label in pairs:
        by_label[label].append(key)
    result = {}
    for keys in by_label.values():
        keys.sort(key=lambda k: (rank_key(k), k))
        k = held_out_count(len(keys), fraction)
        result.update({key: TESTING if rank < k else TRAINING for rank, key in enumerate(keys)})
    return result


def balance_copies(
    samples: Iterable[Sample], copies: int, include_originals: bool, target: int | None, max_copies: int
) -> tuple[dict[str, int], dict[str, ClassBalance]]:
    """Copies per key so each class ends near ``target`` (None: the largest class's count at ``copies``); the
    remainder one copy each to the lowest ``balance_key``s."""
    by_class: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_class[s.label].append(s)
    kept = 1 if include_originals else 0
    before = {label: len(members) * (copies + kept) for label, members in by_class.items()}
    goal = target or max(before.values(), default=0)
    per_sample: dict[str, int] = {}
    table: dict[str, ClassBalance] = {}
    for label in sorted(by_class):
        members = sorted(by_class[label], key=lambda s: (balance_key(s.key), s.key))
        base, extra = class_quota(len(members), goal, kept, max_copies)
        for rank, s in enumerate(members):
            per_sample[s.key] = base + (1 if rank < extra else 0)
        table[label] = ClassBalance(len(members), before[label], len(members) * (kept + base) + extra)
    return per_sample, table
