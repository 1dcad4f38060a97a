"""Work started now and waited for later: a request a run need not wait for yet (a listing, a header, a read)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

T = TypeVar("T")


def in_background(work: Callable[[], T], name: str) -> Future[T]:
    """``work()`` in a daemon thread (a run that stops never waits for it); its result, or its error raised
    again, from the future."""
    future: Future[T] = Future()

    def run() -> None:
        try:
            result = work()
        except BaseException as e:  # noqa: BLE001  (raised again by whoever asks the future)
            future.set_exception(e)
        else:
            future.set_result(result)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future
