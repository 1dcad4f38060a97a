"""When a planned output is done already: one rule for the run (``pipeline``) and the dry run (``review``)."""

from __future__ import annotations

import hashlib

from augment.plan.tasks import PlannedOutput
from augment.sinks import OutputEntry, Sink

Recorded = dict[str, OutputEntry]  # output name -> what an earlier run's manifest records of it


def is_done(planned: PlannedOutput, recorded: Recorded, sink: Sink, verify: bool) -> bool:
    """An earlier run recorded ``planned`` and the sink still holds it with its recorded size (a zero-byte
    or truncated file is not done); with ``verify`` (--verify-outputs), also with its recorded sha256."""
    entry = recorded.get(planned.name)
    if entry is None or entry.size <= 0 or sink.size(planned.name) != entry.size:
        return False
    if not verify:
        return True
    data = sink.read(planned.name)
    return data is not None and hashlib.sha256(data).hexdigest() == entry.sha256
