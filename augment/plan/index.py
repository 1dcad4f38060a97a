"""The run's books on disk: the listing, each original's split, copies and planned task, every planned
output name, and the manifest lines of earlier runs and of this one.

A SQLite file in ``TMPDIR`` (see ``augment.storage.diskmap``) instead of lists, sets and dicts, so the main process
holds nothing per sample or per output for the whole run: a run of a million outputs looks names up on
disk through a few MB of page cache. Samples come back in key order, a batch at a time.
"""

from __future__ import annotations

import pickle
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from augment.errors import BlockError
from augment.plan.holdout import TESTING, TRAINING, held_out_count, rank_key
from augment.plan.labels import with_boxes
from augment.plan.samples import Sample, folded, printable
from augment.plan.selection import ClassBalance, balance_key, class_quota
from augment.render.boxes import Box
from augment.storage.diskmap import decode, encode, open_temp_db

_BATCH = 1000  # rows per query or insert: memory per batch, not per run

_SCHEMA = """
CREATE TABLE samples (
    key BLOB PRIMARY KEY, label BLOB NOT NULL, sample BLOB NOT NULL,
    hold INTEGER NOT NULL, spread INTEGER NOT NULL,  -- sort keys: hold-out rank, balance rank
    category TEXT, copies INTEGER,
    task BLOB, mine INTEGER, runs INTEGER, outputs INTEGER  -- the planning pass (augment.plan.planner)
) WITHOUT ROWID;
CREATE TEMP TABLE quota (label BLOB PRIMARY KEY, base INTEGER NOT NULL, extra INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE names (folded BLOB PRIMARY KEY, name BLOB NOT NULL, key BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE previous (name BLOB PRIMARY KEY, line BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE others (name BLOB PRIMARY KEY, line BLOB) WITHOUT ROWID;
CREATE TABLE lines (name BLOB PRIMARY KEY, line BLOB NOT NULL) WITHOUT ROWID;
"""


class DuplicateSample(BlockError, ValueError):
    """Two listed samples have the same key."""


@dataclass(frozen=True)
class Row:
    """A listed original with what the whole listing decided for it."""

    sample: Sample
    category: str | None  # training | testing with a hold-out
    copies: int | None  # --balance: this original's copies


@dataclass(frozen=True)
class Counts:
    """This shard's work, from the planning pass."""

    tasks: int = 0  # originals to run now
    outputs: int = 0  # their outputs
    unchanged: int = 0  # --since: originals left as they are
    labels: int = 0  # classes among the originals to run
    planned: int = 0  # outputs planned over all shards


class RunIndex:
    """One run's on-disk index. Used from the main thread only."""

    def __init__(self) -> None:
        self._db = open_temp_db("edge-augment-run-")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    # -- the listing ---------------------------------------------------------------------------------------

    def add_samples(self, samples: Iterable[Sample]) -> int:
        """Store the listing; how many samples. Raises DuplicateSample if a key repeats."""
        last: list[str] = []  # the key being inserted: the one that repeats, on an IntegrityError

        def rows() -> Iterator[tuple[bytes, bytes, bytes, int, int]]:
            for s in samples:
                last[:] = [s.key]
                yield (
                    encode(s.key),
                    encode(s.label),
                    pickle.dumps(s),
                    _signed(rank_key(s.key)),
                    _signed(balance_key(s.key)),
                )

        self._db.execute("BEGIN")
        try:
            self._db.executemany(
                "INSERT INTO samples (key, label, sample, hold, spread) VALUES (?, ?, ?, ?, ?)", rows()
            )
        except sqlite3.IntegrityError:
            self._db.execute("ROLLBACK")
            key = printable(last[0]) if last else "?"
            raise DuplicateSample(f"the source listed {key!r} twice; a listing must name each sample once") from None
        self._db.execute("COMMIT")
        return self.count()

    def attach_boxes(self, by_key: dict[str, tuple[Box, ...]], override: str | None) -> None:
        """A detection dataset: give every sample its boxes (``boxes.with_boxes``: none listed = ``()``)."""
        for batch in batches(self.rows()):
            updates = []
            for row in batch:
                sample = with_boxes(row.sample, by_key, override)
                updates.append((encode(sample.label), pickle.dumps(sample), encode(sample.key)))
            self._db.execute("BEGIN")
            self._db.executemany("UPDATE samples SET label = ?, sample = ? WHERE key = ?", updates)
            self._db.execute("COMMIT")

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM samples").fetchone()[0])

    def class_counts(self, category: str | None = None) -> dict[str, int]:
        """Originals per label (only those of ``category`` when given)."""
        where, args = ("WHERE category = ?", (category,)) if category else ("", ())
        rows = self._db.execute(f"SELECT label, count(*) FROM samples {where} GROUP BY label", args)
        return {decode(label): n for label, n in rows}

    def rows(self) -> Iterator[Row]:
        """Every sample in key order, fetched a batch at a time."""
        for _, blob, category, copies in self._scan("sample, category, copies"):
            yield Row(pickle.loads(blob), category, copies)

    def sample(self, key: str) -> Sample:
        row = self._db.execute("SELECT sample FROM samples WHERE key = ?", (encode(key),)).fetchone()
        return pickle.loads(row[0])

    def labels(self) -> list[str]:
        return sorted(decode(label) for (label,) in self._db.execute("SELECT DISTINCT label FROM samples"))

    # -- decisions over the whole listing -------------------------------------------------------------------

    def assign_holdout(self, fraction: float) -> None:
        """Each class's ``held_out_count`` originals with the lowest ``rank_key`` go to testing, the rest to
        training (nothing is set without a hold-out)."""
        if fraction <= 0:
            return
        self._set_quota({label: (held_out_count(n, fraction), 0) for label, n in self.class_counts().items()})
        self._db.execute(
            """UPDATE samples SET category = CASE WHEN r.rank < q.base THEN 'testing' ELSE 'training' END
            FROM (SELECT key, label, ROW_NUMBER() OVER (PARTITION BY label ORDER BY hold, key) - 1 AS rank
                  FROM samples) AS r JOIN quota AS q ON q.label = r.label
            WHERE samples.key = r.key"""
        )

    def assign_balance(
        self, copies: int, include_originals: bool, target: int | None, max_copies: int
    ) -> dict[str, ClassBalance]:
        """--balance over the training side (held-out originals get none); the before/after table per class."""
        split = self._has_split()
        counts = self.class_counts(TRAINING) if split else self.class_counts()
        kept = 1 if include_originals else 0
        goal = target or max((n * (copies + kept) for n in counts.values()), default=0)
        quota = {label: class_quota(n, goal, kept, max_copies) for label, n in counts.items()}
        self._set_quota(quota)
        training = "WHERE category = 'training'" if split else ""
        self._db.execute("UPDATE samples SET copies = 0")
        self._db.execute(
            f"""UPDATE samples SET copies = q.base + (r.rank < q.extra)
            FROM (SELECT key, label, ROW_NUMBER() OVER (PARTITION BY label ORDER BY spread, key) - 1 AS rank
                  FROM samples {training}) AS r JOIN quota AS q ON q.label = r.label
            WHERE samples.key = r.key"""
        )
        table = {}
        for label in sorted(counts):
            n, (base, extra) = counts[label], quota[label]
            table[label] = ClassBalance(n, n * (copies + kept), n * kept + base * n + extra)
        return table

    def _has_split(self) -> bool:
        return self._db.execute("SELECT 1 FROM samples WHERE category IS NOT NULL LIMIT 1").fetchone() is not None

    def _set_quota(self, quota: dict[str, tuple[int, int]]) -> None:
        self._db.execute("DELETE FROM quota")
        self._db.executemany("INSERT INTO quota VALUES (?, ?, ?)", [(encode(k), b, e) for k, (b, e) in quota.items()])

    # -- planned output names ---------------------------------------------------------------------------------

    def claim(self, names: Iterable[tuple[str, str]]) -> tuple[str, str, str, str] | None:
        """Record planned ``(name, source key)`` pairs; the first clash as ``(name, key, the other key, the
        other name)`` (names that are equal, or differ only in case or Unicode normalisation), else None."""
        for batch in batches(names):
            try:
                self._db.execute("BEGIN")
                self._db.executemany(
                    "INSERT INTO names VALUES (?, ?, ?)",
                    [(encode(folded(n)), encode(n), encode(k)) for n, k in batch],
                )
                self._db.execute("COMMIT")
            except sqlite3.IntegrityError:
                self._db.execute("ROLLBACK")
                for name, key in batch:  # find which one, then report it
                    row = self._db.execute(
                        "SELECT key, name FROM names WHERE folded = ?", (encode(folded(name)),)
                    ).fetchone()
                    if row is not None and decode(row[0]) != key:
                        return name, key, decode(row[0]), decode(row[1])
                    if row is None:
                        self._db.execute(
                            "INSERT INTO names VALUES (?, ?, ?)", (encode(folded(name)), encode(name), encode(key))
                        )
        return None

    def planned(self, name: str) -> str | None:
        """The source key that plans output ``name`` (exact name), or None."""
        row = self._db.execute(
            "SELECT key FROM names WHERE folded = ? AND name = ?", (encode(folded(name)), encode(name))
        ).fetchone()
        return None if row is None else decode(row[0])

    # -- planned tasks (augment.plan.planner) ---------------------------------------------------------------------

    def store_tasks(self, tasks: Iterable[tuple[str, bytes | None, bool, bool, int]]) -> None:
        """``(key, task, mine, runs, outputs)`` per sample: its packed outputs (None for another shard's),
        whether this shard owns it, whether it runs now, its number of outputs."""
        rows = ((task, mine, runs, n, encode(key)) for key, task, mine, runs, n in tasks)
        self._insert("UPDATE samples SET task = ?, mine = ?, runs = ?, outputs = ? WHERE key = ?", rows)

    def tasks(self, runs_only: bool) -> Iterator[tuple[Sample, bytes, bool]]:
        """This shard's samples in key order (only those that run now with ``runs_only``), each with its
        packed task and whether it runs."""
        for _, sample, task, runs in self._scan("sample, task, runs", "AND mine AND runs" if runs_only else "AND mine"):
            yield pickle.loads(sample), task, bool(runs)

    def counts(self) -> Counts:
        row = self._db.execute(
            """SELECT count(CASE WHEN mine AND runs THEN 1 END), total(CASE WHEN mine AND runs THEN outputs END),
            count(CASE WHEN mine AND NOT runs THEN 1 END), count(DISTINCT CASE WHEN mine AND runs THEN label END),
            total(outputs) FROM samples"""
        ).fetchone()
        return Counts(*(int(n) for n in row))

    def holdout_counts(self) -> dict[str, dict[str, int]]:
        """This shard's originals per label and category: {label: {"training": n, "testing": m}}."""
        table: dict[str, dict[str, int]] = {}
        rows = self._db.execute(
            "SELECT label, category, count(*) FROM samples WHERE mine AND category IS NOT NULL GROUP BY 1, 2"
        )
        for label, category, n in rows:
            table.setdefault(decode(label), {TRAINING: 0, TESTING: 0})[category] = n
        return dict(sorted(table.items()))

    def planned_here(self, name: str) -> bool:
        """Whether this shard plans output ``name`` (exact name)."""
        row = self._db.execute(
            """SELECT 1 FROM names JOIN samples ON samples.key = names.key
            WHERE names.folded = ? AND names.name = ? AND samples.mine""",
            (encode(folded(name)), encode(name)),
        ).fetchone()
        return row is not None

    # -- manifest lines ----------------------------------------------------------------------------------------

    def load_previous(self, entries: Iterable[tuple[str, str]]) -> None:
        """Earlier runs' ``(output, line)`` pairs, in file order (a later line for a name replaces an earlier)."""
        self._insert(
            "INSERT OR REPLACE INTO previous VALUES (?, ?)", ((encode(n), encode(line)) for n, line in entries)
        )

    def load_others(self, entries: Iterable[tuple[str, str | None]]) -> None:
        """Outputs the folder's manifests record (other shards' and runs'): ``(output, line)``, the line None
        when its file is not to be adopted (this run's own manifest, or other settings')."""
        rows = ((encode(n), None if line is None else encode(line)) for n, line in entries)
        self._insert("INSERT OR REPLACE INTO others VALUES (?, ?)", rows)

    def others(self, names: Iterable[str]) -> dict[str, str]:
        """Lines another run of these settings recorded for those of ``names`` it made."""
        found: dict[str, str] = {}
        for batch in batches(encode(n) for n in names):
            marks = ",".join("?" * len(batch))
            sql = f"SELECT name, line FROM others WHERE line IS NOT NULL AND name IN ({marks})"
            found.update((decode(name), decode(line)) for name, line in self._db.execute(sql, batch))
        return found

    def previous(self, names: Iterable[str]) -> dict[str, str]:
        """Earlier lines of those of ``names`` that have one."""
        return self._lookup("previous", names)

    def known(self, name: str) -> bool:
        """Whether ``name`` is planned or recorded by any manifest in the folder."""
        blob = encode(name)
        return (
            self.planned(name) is not None
            or self._db.execute("SELECT 1 FROM previous WHERE name = ?", (blob,)).fetchone() is not None
            or self._db.execute("SELECT 1 FROM others WHERE name = ?", (blob,)).fetchone() is not None
        )

    def add_lines(self, entries: Iterable[tuple[str, str]]) -> None:
        """This run's ``(output, line)`` pairs."""
        self._insert("INSERT OR REPLACE INTO lines VALUES (?, ?)", ((encode(n), encode(line)) for n, line in entries))

    def lines(self, names: Iterable[str]) -> dict[str, str]:
        """This run's lines of those of ``names`` it wrote."""
        return self._lookup("lines", names)

    def unplanned_previous(self, planned_here: Callable[[str], bool]) -> Iterator[str]:
        """Earlier lines whose output this run does not plan (by name order), a batch at a time."""
        after = b""
        while True:
            batch = self._db.execute(
                "SELECT name, line FROM previous WHERE name > ? ORDER BY name LIMIT ?", (after, _BATCH)
            ).fetchall()
            if not batch:
                return
            for name, line in batch:
                if not planned_here(decode(name)):
                    yield decode(line)
            after = batch[-1][0]

    def _scan(self, columns: str, where: str = "") -> Iterator[tuple]:
        """``(key, *columns)`` of every sample (``where``: more conditions) in key order, a batch at a time."""
        after = b""
        while True:
            batch = self._db.execute(
                f"SELECT key, {columns} FROM samples WHERE key > ? {where} ORDER BY key LIMIT ?", (after, _BATCH)
            ).fetchall()
            if not batch:
                return
            yield from batch
            after = batch[-1][0]

    def _insert(self, sql: str, rows: Iterable[tuple]) -> None:
        for batch in batches(rows):
            self._db.execute("BEGIN")
            self._db.executemany(sql, batch)
            self._db.execute("COMMIT")

    def _lookup(self, table: str, names: Iterable[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for batch in batches(encode(n) for n in names):
            marks = ",".join("?" * len(batch))
            for name, line in self._db.execute(f"SELECT name, line FROM {table} WHERE name IN ({marks})", batch):
                found[decode(name)] = decode(line)
        return found


def _signed(value: int) -> int:
    """A 64-bit unsigned hash as SQLite's signed 64-bit integer, order kept."""
    return value - 2**63


def batches(items: Iterable, size: int = 500) -> Iterator[list]:
    """``items`` in lists of ``size``."""
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
