"""Plans made by the run's own code (``RunIndex`` and ``planner.Planner``) from samples held in a test, so
tests exercise what a run does: the same index, hold-out, balancing, collision check and planning pass."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from augment.plan.index import RunIndex
from augment.plan.planner import Planner
from augment.plan.samples import Sample
from augment.plan.selection import ClassBalance, Shard
from augment.plan.tasks import PlanSettings, Task
from augment.run.prepare import list_source
from augment.sources import Listing, Source


def plan(
    samples: Iterable[Sample],
    settings: PlanSettings,
    *,
    test_fraction: float = 0.0,
    balance: tuple[int, bool, int | None, int] | None = None,
    shard: Shard | None = None,
    since: datetime | None = None,
) -> list[Task]:
    """This shard's tasks (all, in plan order) for ``samples``; ``balance`` = ``RunIndex.assign_balance``'s
    arguments. Raises PlanError as a run does."""
    index = RunIndex()
    try:
        index.add_samples(samples)
        index.assign_holdout(test_fraction)
        if balance is not None:
            index.assign_balance(*balance)
        return _planned(index, settings, shard or Shard(), since)
    finally:
        index.close()


def plan_source(source: Source, settings: PlanSettings) -> list[Task]:
    """The tasks of what ``source`` holds, listed (with boxes) and planned as a run does."""
    index = RunIndex()
    try:
        list_source(source, index, Listing())
        return _planned(index, settings, Shard(), None)
    finally:
        index.close()


def _planned(index: RunIndex, settings: PlanSettings, shard: Shard, since: datetime | None) -> list[Task]:
    planner = Planner(index, settings, shard)
    planner.plan(since)
    return [task for task, _ in planner.planned()]


def holdout(pairs: Iterable[tuple[str, str]], fraction: float) -> dict[str, str]:
    """``(key, label)`` pairs -> {key: "training" | "testing"} as a run splits them (empty without a hold-out)."""
    index = RunIndex()
    try:
        index.add_samples(Sample(key, label) for key, label in pairs)
        index.assign_holdout(fraction)
        return {row.sample.key: row.category for row in index.rows() if row.category is not None}
    finally:
        index.close()


def balance(
    samples: Iterable[Sample], copies: int, include_originals: bool, target: int | None, max_copies: int
) -> tuple[dict[str, int], dict[str, ClassBalance]]:
    """Copies per sample key and the before/after table, as a run balances (no hold-out)."""
    index = RunIndex()
    try:
        index.add_samples(samples)
        table = index.assign_balance(copies, include_originals, target, max_copies)
        return {row.sample.key: row.copies for row in index.rows()}, table
    finally:
        index.close()
