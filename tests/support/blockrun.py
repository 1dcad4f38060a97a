"""Runs the block the way users do, as a subprocess: from a fresh venv checkout ("venv") or as the built
container image ("podman"). Chosen by EDGE_AUGMENT_RUNNER (default venv); both take the same arguments.

Paths in arguments are host paths under the test's temp dir; the container runner mounts that dir at the
same path, so tests are written once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNNER = os.environ.get("EDGE_AUGMENT_RUNNER", "venv")


# Why a test cannot run under the container runner (host_runner_only's reasons).
LINKED_MOUNTS = (
    "the container runner mounts each path argument as a volume of its own, "
    "so host-side links between them are not what the block sees there"
)
MIXED_UIDS = (
    "the test's other run is a host process (root) while the container runs as uid 54321; "
    "outputs follow the umask, so the two cannot write into each other's folders"
)


def host_runner_only(why: str):
    """Skip a test under the container runner, saying why its setup cannot be reproduced there."""
    import pytest

    return pytest.mark.skipif(RUNNER == "podman", reason=f"venv runner only: {why}")


@dataclass
class Completed:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


EI_FIRST_RUN = "1970-01-01T00:00:00.000Z"  # EI_LAST_SUCCESSFUL_RUN before a pipeline's first success


def ei_env(extra: dict[str, str] | None = None, last_run: str | None = None) -> dict[str, str]:
    """An environment like EI's: only PATH/HOME/LANG plus the EI_* variables (dummy values). EI also sets
    EI_LAST_SUCCESSFUL_RUN, which makes the run a --since run: only with ``last_run``, so a test that wants
    that says so and every other test runs the plain path."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "EI_API_ENDPOINT": "https://studio.example.invalid/v1",
        "EI_API_KEY": "ei_test_org_key_not_real",
        "EI_INGESTION_HOST": "example.invalid",
        "EI_ORGANIZATION_ID": "1",
    }
    if last_run is not None:
        env["EI_LAST_SUCCESSFUL_RUN"] = last_run
    env.update(extra or {})
    return env


def run_block(args: list[str], *, workdir: Path, env: dict[str, str] | None = None, timeout: float = 300) -> Completed:
    """Run ``transform.py args`` with the selected runner; ``workdir`` is an empty scratch folder."""
    env = ei_env() if env is None else env
    if RUNNER == "podman":
        from tests.support.podman import run_in_container  # provided by the container test support

        return run_in_container(args, workdir=workdir, env=env, timeout=timeout)
    proc = subprocess.run(
        [sys.executable, "-u", str(ROOT / "transform.py"), *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return Completed(proc.returncode, proc.stdout, proc.stderr)


def terminate_when_under_way(args: list[str], *, workdir: Path, env: dict[str, str], timeout: float = 120) -> Completed:
    """Run ``transform.py args`` (venv), send SIGTERM at its first progress line (work is under way), wait;
    ``stdout`` holds what it printed after that line (stderr included)."""
    cmd = [sys.executable, "-u", str(ROOT / "transform.py"), *args]
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("["):
            proc.send_signal(signal.SIGTERM)
            break
    rest = proc.stdout.read()
    return Completed(proc.wait(timeout=timeout), rest, "")


def sigterm_when(
    args: list[str],
    *,
    workdir: Path,
    env: dict[str, str],
    line: Callable[[str], bool] | None = None,
    ready: Callable[[], bool] | None = None,
    guard: float = 60,
    signum: int = signal.SIGTERM,
    hang: float = 15,
) -> tuple[Completed, float]:
    """Run ``transform.py args`` (venv); send SIGTERM (or ``signum``) at the first output line for which
    ``line`` is true, or once ``ready()`` is (polled); return what it printed (stderr included) and the
    seconds from the signal to its exit. ``guard`` bounds the wait for that moment, ``hang`` the wait for the
    exit after it (a generous hang guard, not a timing claim: the block promises 5 s)."""
    cmd = [sys.executable, "-u", str(ROOT / "transform.py"), *args]
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    seen = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for text in proc.stdout:
            lines.append(text)
            if line is not None and line(text):
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + guard
    while not (seen.is_set() or (ready is not None and ready())):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the moment to signal never came:\n" + "".join(lines))
        time.sleep(0.02)
    sent = time.monotonic()
    proc.send_signal(signum)
    try:
        code = proc.wait(timeout=hang)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("no exit after SIGTERM:\n" + "".join(lines)) from None
    took = time.monotonic() - sent
    reader.join(10)
    return Completed(code, "".join(lines), ""), took
