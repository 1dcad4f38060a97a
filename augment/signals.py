"""SIGTERM and SIGINT for the whole run (Kubernetes and EI stop a job with SIGTERM and kill it 30 s later).

Outside ``deferred()`` (listing, planning, the preview) a signal raises ``Interrupted`` in the
main thread at once, even inside a blocking network read: the run unwinds (temp files removed, lock released)
and exits 128 + the signal's number. Inside ``deferred()`` (rendering and uploading, where a result must
never be half booked; the final manifest and report, finished then) it is only noted; that phase polls
``received()`` and stops between two results.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}  # 128 + the signal's number, as shells report it
_active: list[Signals] = []  # the run's (a stack: nested runs in tests)
stopping = threading.Event()  # set by a signal: for threads that must not wait on (augment.storage.s3_limits)


def stop_requested() -> bool:
    """Has the run under way received a stop signal? (for loops that wait in the main thread)"""
    return bool(_active) and _active[-1].received()


class Interrupted(BaseException):  # like KeyboardInterrupt: no `except Exception` may swallow it
    """A signal arrived outside a deferred phase."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    @property
    def code(self) -> int:
        return EXIT_CODES[self.name]


class Signals:
    """Installed for one run (``with Signals() as signals``); the previous handlers come back at the end."""

    def __init__(self) -> None:
        self.name: str | None = None  # the first signal received
        self._deferring = 0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Signals:
        self._previous = {s: signal.signal(s, self._note) for s in (signal.SIGTERM, signal.SIGINT)}
        _active.append(self)
        stopping.clear()
        return self

    def __exit__(self, *exc: object) -> None:
        _active.remove(self)
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _note(self, signum: int, frame: Any) -> None:
        self.name = self.name or signal.Signals(signum).name
        stopping.set()
        if not self._deferring:
            raise Interrupted(self.name)

    def received(self) -> bool:
        return self.name is not None

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Within: a signal is only noted (``received()``); the caller stops at its next safe point."""
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1
