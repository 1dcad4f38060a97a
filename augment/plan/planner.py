"""The run's one planning pass: every listed original planned once, from the run's index, in key order.

Each task's output names are claimed (two sources must not write one name, nor two names that differ only in
case or Unicode normalisation), and what the rest of the run needs of the task is stored beside its sample:
the task itself (its pipelines as their number in the recipe), whether this shard owns it and whether it runs
now (--since). Rendering, the final manifest, the labels files, the preview and the dry run read those.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from augment.plan.index import RunIndex, batches
from augment.plan.selection import Shard, changed_since
from augment.plan.tasks import PlanError, PlannedOutput, PlanSettings, Task, collision, plan_task

_BATCH = 500  # samples planned, claimed and stored together


class Planner:
    """One run's plan in its index: ``plan`` once, then read the tasks as often as needed."""

    def __init__(self, index: RunIndex, settings: PlanSettings, shard: Shard) -> None:
        self.index, self.settings, self.shard = index, settings, shard
        self._pipelines = [v.pipeline for v in settings.recipe.variants]
        self._ids = {id(p): i for i, p in enumerate(self._pipelines)}

    def plan(self, since: datetime | None, check: Callable[[str], None] | None = None) -> None:
        """Plan every sample: claim its output names (PlanError on a clash), show each name to ``check``, and
        store its task. A task runs unless --since finds its source unchanged and every output recorded by
        the manifest (one renamed, new, copied with its old time kept, or recorded in part runs)."""
        for rows in batches(self.index.rows(), _BATCH):
            tasks = [plan_task(r.sample, self.settings, r.category, r.copies) for r in rows]
            if check is not None:
                for task in tasks:
                    for out in task.outputs:
                        check(out.name)
            clash = self.index.claim((o.name, t.sample.key) for t in tasks for o in t.outputs)
            if clash is not None:
                name, key, other_key, other_name = clash
                sample, other = self.index.sample(key), self.index.sample(other_key)
                raise PlanError(collision(sample, name, other, other_name, self.settings.layout))
            unchanged = [t for t in tasks if not changed_since(t.sample, since)]
            recorded = self.index.previous(o.name for t in unchanged for o in t.outputs)
            stored = []
            for task in tasks:
                key, mine = task.sample.key, self.shard.owns(task.sample.key)
                runs = changed_since(task.sample, since) or any(o.name not in recorded for o in task.outputs)
                stored.append((key, self._pack(task.outputs) if mine else None, mine, runs, len(task.outputs)))
            self.index.store_tasks(stored)

    def tasks(self) -> Iterator[Task]:
        """This shard's tasks that run now (--since leaves unchanged ones out), in plan order."""
        return (task for task, _ in self.planned(runs_only=True))

    def planned(self, runs_only: bool = False) -> Iterator[tuple[Task, bool]]:
        """This shard's tasks in plan order (only those that run now with ``runs_only``), each with whether
        it runs now."""
        for sample, outputs, runs in self.index.tasks(runs_only):
            yield Task(sample, _Unpickler(io.BytesIO(outputs), self._pipelines).load()), runs

    def _pack(self, outputs: tuple[PlannedOutput, ...]) -> bytes:
        out = io.BytesIO()
        _Pickler(out, self._ids).dump(outputs)
        return out.getvalue()


class _Pickler(pickle.Pickler):
    """Planned outputs with the recipe's pipelines stored as their number (the recipe holds them once)."""

    def __init__(self, file: io.BytesIO, ids: dict[int, int]) -> None:
        super().__init__(file, pickle.HIGHEST_PROTOCOL)
        self.ids = ids

    def persistent_id(self, obj: Any) -> int | None:
        return self.ids.get(id(obj)) if isinstance(obj, tuple) else None


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, pipelines: list[Any]) -> None:
        super().__init__(file)
        self.pipelines = pipelines

    def persistent_load(self, pid: Any) -> Any:
        return self.pipelines[pid]
