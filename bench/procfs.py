"""Memory of a process tree from /proc (Linux), for the benchmarks."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, ValueError):
        pass
    return 0


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return pids


def watch_memory(proc: subprocess.Popen) -> Callable[[], tuple[int, int]]:
    """Sample ``proc``'s tree every 20 ms in a thread until it exits; the returned function waits for the
    sampler and gives (peak tree RSS, peak single-process RSS) in KiB. Call it after the process ended."""
    peak = [0, 0]

    def sample() -> None:
        while proc.poll() is None:
            sizes = [rss_kib(p) for p in process_tree(proc.pid)]
            peak[0] = max(peak[0], sum(sizes))
            peak[1] = max(peak[1], max(sizes, default=0))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()

    def result() -> tuple[int, int]:
        sampler.join()
        return peak[0], peak[1]

    return result


def time_first_output(proc: subprocess.Popen, out: Path, start: float) -> tuple[float | None, float]:
    """Seconds from ``start`` until a file appears under ``out`` (None if none did while ``proc`` ran),
    and until ``proc`` exits."""
    first = None
    while proc.poll() is None:
        if first is None and any(p.is_file() for p in out.rglob("*")):
            first = time.perf_counter() - start
        time.sleep(0.005)
    return first, time.perf_counter() - start
