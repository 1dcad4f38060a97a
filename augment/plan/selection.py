"""Which samples a run works on, and how many copies each gets: shards, --since, class balancing.

Pure functions over the full listing, so every machine of a sharded run, and every scheduled refresh, makes
the same decisions for the same sample whatever else it sees:

* a shard is chosen by a stable hash of the sample's key (``shard_of``), never by position in the listing;
* balancing counts classes over the whole listing (before --since and shard filtering), and picks which
  samples get one copy more by a stable hash, so the copies a sample gets do not depend on file order;
* --since compares the source's change time (the later of a file's mtime and ctime, S3 LastModified) with a
  fixed instant (``changed_since``); the run skips only sources the manifest records whole (``planner``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from augment.plan.samples import Sample, stable_hash

# Environment variables that carry a shard index (and count) on the engines that run array jobs.
AWS_INDEX, AWS_SIZE = "AWS_BATCH_JOB_ARRAY_INDEX", "AWS_BATCH_JOB_ARRAY_SIZE"
K8S_INDEX = "JOB_COMPLETION_INDEX"  # Kubernetes Indexed Job; the count comes from --shard-count
MAX_SHARDS = 1_000_000  # far more than any array job; keeps each shard's lock byte in range
OFF = ("", "off", "none", "0")  # --since values that turn it off (also the EI_LAST_SUCCESSFUL_RUN default)


@dataclass(frozen=True)
class Shard:
    index: int = 0
    count: int = 1

    @property
    def active(self) -> bool:
        return self.count > 1

    def owns(self, key: str) -> bool:
        """Whether this shard works on the sample at ``key`` (every one when the run is not sharded)."""
        return not self.active or shard_of(key, self.count) == self.index

    def suffix(self) -> str:
        """Inserted into the manifest and report names so shards sharing a folder never overwrite each other's."""
        return f".shard-{self.index}-of-{self.count}" if self.active else ""


def shard_of(key: str, count: int) -> int:
    """The shard (0..count-1) that owns the sample at ``key``: sha256 of the key, modulo ``count``."""
    return stable_hash(key) % count


def parse_since(text: str | None) -> datetime | None:
    """An ISO 8601 instant (``2026-11-25T12:00:00Z``, ``2026-11-25``; no zone = UTC), or None for off."""
    raw = (text or "").strip()
    if raw.lower() in OFF:
        return None
    value = datetime.fromisoformat(raw.replace("z", "Z"))  # raises ValueError; 3.11 accepts a trailing Z
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def changed_since(sample: Sample, since: datetime | None) -> bool:
    """Whether ``sample`` changed after ``since`` (always without --since; a sample whose time is unknown
    counts as changed)."""
    return since is None or sample.mtime is None or sample.mtime > since.timestamp()


@dataclass(frozen=True)
class ClassBalance:
    originals: int
    before: int  # outputs the class would get at --copies
    after: int  # outputs after balancing


def balance_key(key: str) -> int:
    """The order in which a class's originals get one copy more (lowest first)."""
    return stable_hash("balance:" + key)


def class_quota(n: int, goal: int, kept: int, max_copies: int) -> tuple[int, int]:
    """(copies every original of a class of ``n`` gets, how many get one more) to reach ``goal`` outputs,
    ``kept`` (0 or 1) being the original itself; capped at ``max_copies``."""
    base, extra = divmod(max(0, goal - n * kept), n) if n else (0, 0)
    return (max_copies, 0) if base >= max_copies else (base, extra)


def balance_lines(table: Mapping[str, ClassBalance], goal_note: str) -> list[str]:
    """The before/after table printed at the start of a balanced run."""
    header = f"{'class':<24} {'originals':>9} {'before':>8} {'after':>8}"
    lines = [f"balance: {goal_note}", header]
    for label, c in table.items():
        lines.append(f"{label[:24]:<24} {c.originals:>9} {c.before:>8} {c.after:>8}")
    return lines


def resolve_shard(index_arg: str | None, count_arg: str | None, env: Mapping[str, str]) -> tuple[Shard, str | None]:
    """The shard from --shard-index/--shard-count, else AWS Batch's or a Kubernetes Indexed Job's variables.

    Returns the shard and a note saying where it came from (None when not sharded). Raises ValueError
    with a message naming the parameter when the values do not make a shard.
    """
    index_text = (index_arg or "").strip()
    count_text = (count_arg or "").strip()
    source = "--shard-index"
    if not index_text and env.get(AWS_INDEX, "").strip():
        index_text, source = env[AWS_INDEX].strip(), AWS_INDEX
        count_text = count_text if count_text not in ("", "1") else env.get(AWS_SIZE, "").strip()
    elif not index_text and env.get(K8S_INDEX, "").strip():
        index_text, source = env[K8S_INDEX].strip(), K8S_INDEX
        if count_text in ("", "1"):  # Kubernetes does not pass the completions count to the pod
            raise ValueError(f"--shard-count is required with {K8S_INDEX} (set it to the Job's completions)")
    try:
        count = int(count_text) if count_text else 1
        index = int(index_text) if index_text else 0
    except ValueError:
        raise ValueError(
            f"--shard-index/--shard-count: expected whole numbers, got {index_text!r}/{count_text!r}"
        ) from None
    if not 1 <= count <= MAX_SHARDS:
        raise ValueError(f"--shard-count: {count} must be in 1..{MAX_SHARDS}")
    if not 0 <= index < count:
        hint = f" (count from {AWS_SIZE} or --shard-count)" if source == AWS_INDEX else ""
        raise ValueError(f"--shard-index: {index} (from {source}) must be in 0..{count - 1}{hint}")
    shard = Shard(index, count)
    return shard, (f"shard {index} of {count} (index from {source})" if shard.active else None)
