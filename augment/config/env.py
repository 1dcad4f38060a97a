"""The environment knobs of the block (``EDGE_AUGMENT_*``, and ``AWS_MAX_ATTEMPTS`` which it reads itself):
one table, one policy. Unset or empty = the default; anything else must parse and be in range, else the run
stops before it starts with a one-line error naming the variable (exit 2), never a traceback mid-run.

EI's own variables (``EI_*``, the API keys) and the AWS credential chain are read where they are used
(``build``, ``augment.sinks.ingestion_api``, the S3 client); they are inputs, not knobs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from augment.config.values import ranged
from augment.storage.s3_client import DEFAULT_MAX_ATTEMPTS
from augment.storage.s3_limits import DEFAULT_TIMEOUT as DEFAULT_S3_TIMEOUT


@dataclass(frozen=True)
class Knob:
    name: str
    default: float
    lo: float
    hi: float
    whole: bool  # a whole number (else any finite number)
    help: str


KNOBS = (
    Knob("EDGE_AUGMENT_HUGE_PIXELS", 16_000_000, 1, 10**12, True,
         "images over this many pixels render one at a time across workers"),
    Knob("EDGE_AUGMENT_IO_THREADS", 128, 1, 256, True,
         "source reads and output writes in flight (hides a 50 ms round trip at ~2,400 requests/s; docs/s3.md)"),
    Knob("EDGE_AUGMENT_S3_TIMEOUT", DEFAULT_S3_TIMEOUT, 1, 86400, False, "seconds one S3 request may take in all"),
    Knob("AWS_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS, 1, 100, True, "tries of one S3 request"),
    Knob("EDGE_AUGMENT_LOCK_WAIT", 300.0, 0, 86400, False,
         "seconds a run waits for another to finish checking the output folder"),
    Knob("EDGE_AUGMENT_RETRY_BACKOFF", 0.5, 0, 60, False, "upload retry backoff factor, in seconds"),
)  # fmt: skip
BY_NAME = {knob.name: knob for knob in KNOBS}


def knob(name: str, env: Mapping[str, str]) -> float:
    """The value of knob ``name`` in ``env`` (an int for a whole-number knob); raises ConfigError."""
    spec = BY_NAME[name]
    raw = (env.get(name) or "").strip()
    return ranged(raw, name, spec.lo, spec.hi, int if spec.whole else float) if raw else spec.default


def unknown(env: Mapping[str, str]) -> list[str]:
    """A note for each ``EDGE_AUGMENT_*`` variable that is no knob (a misspelt name would be ignored silently)."""
    known = ", ".join(k.name for k in KNOBS if k.name.startswith("EDGE_AUGMENT_"))
    return [f"{name} is not a setting of this block: ignored (known: {known})"
            for name in sorted(env) if name.startswith("EDGE_AUGMENT_") and name not in BY_NAME]  # fmt: skip


@dataclass(frozen=True)
class Knobs:
    """Every knob, read once at the start of a run; the run passes each value to the part that uses it."""

    huge_pixels: int
    io_threads: int
    s3_timeout: float
    s3_max_attempts: int
    lock_wait: float
    retry_backoff: float

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Knobs:
        return cls(*(knob(spec.name, env) for spec in KNOBS))  # type: ignore[arg-type]
