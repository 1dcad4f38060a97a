"""The container runner: run the image built by ``scripts/container.sh build`` like ``docker run`` does.

Host paths in the arguments are mounted at the same path in the container, so a test passes the same paths
to both runners. The image's default user is root (as EI's example blocks; tests/test_ei_local.py runs it so),
but this runner runs it as an arbitrary unprivileged uid (``UNPRIVILEGED``, in no /etc/passwd), so every
end-to-end test also proves the block needs no root and no home folder. When all paths are absolute it keeps
its WORKDIR /app and ENTRYPOINT, as on Edge Impulse; a relative path runs /app/transform.py in the test's
workdir instead, as the venv runner does. The out-directory (or, if it does not exist yet, its nearest
existing parent) is made world-writable so that uid can write there: root podman has no ``--userns keep-id``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.support.blockrun import ROOT, Completed

SCRIPT = ROOT / "scripts" / "container.sh"
PATH_OPTIONS = ("--in-directory", "--in-file", "--out-directory")
NOT_PASSED = {"PATH", "HOME"}  # the host's values would break the image's venv PATH and non-root HOME
UNPRIVILEGED = "54321:54321"  # run_in_container's user: any uid works, none is needed in the image


@functools.cache
def settings() -> dict[str, str]:
    """IMAGE and CONTAINERS_CONF, as scripts/container.sh uses them (EDGE_AUGMENT_IMAGE overrides IMAGE)."""
    out = subprocess.run(["bash", str(SCRIPT), "env"], capture_output=True, text=True, check=True).stdout
    values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    values["IMAGE"] = os.environ.get("EDGE_AUGMENT_IMAGE") or values["IMAGE"]
    return values


def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": settings()["CONTAINERS_CONF"]}


@functools.cache
def unavailable_reason() -> str | None:
    """Why the container can't run here, or None."""
    if shutil.which("podman") is None:
        return "podman is not installed (scripts/container.sh build installs it and builds the image)"
    image = settings()["IMAGE"]
    label = '{{index .Config.Labels "edge-augment.source"}}'
    inspect = subprocess.run(
        ["podman", "image", "inspect", f"--format={label}", image], capture_output=True, text=True, env=podman_env()
    )
    if inspect.returncode != 0:
        return f"image {image} is not built (run scripts/container.sh build)"
    if inspect.stdout.strip() != settings()["SOURCE"]:
        return f"image {image} is older than the working tree (run scripts/container.sh build)"
    return None


def require_image() -> str:
    """The image tag; skips the calling test when podman or the image is missing."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    return settings()["IMAGE"]


def _option_values(args: Sequence[str], option: str) -> list[str]:
    values = [a.split("=", 1)[1] for a in args if a.startswith(option + "=")]
    values += [args[i + 1] for i, a in enumerate(args[:-1]) if a == option]
    return values


def _existing(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path


def _add_mode(path: Path, bits: int) -> None:
    with contextlib.suppress(FileNotFoundError):  # a temp file another run (still writing here) just renamed
        path.chmod(path.stat().st_mode & 0o7777 | bits)


def make_writable(out: Path) -> None:
    """Let any uid write the out-directory: all of it if it exists, else its nearest existing parent."""
    target, tmp = _existing(out).resolve(), Path(tempfile.gettempdir()).resolve()
    if not target.is_relative_to(tmp) or target == tmp:
        raise ValueError(f"{out}: the container runner only opens up folders inside {tmp}")
    if not out.exists():
        _add_mode(_existing(out), 0o777)
        return
    _add_mode(out, 0o777)
    for dirpath, dirnames, filenames in os.walk(out):
        for name in dirnames:
            _add_mode(Path(dirpath) / name, 0o777)
        for name in filenames:
            _add_mode(Path(dirpath) / name, 0o666)


def host_mounts(args: Sequence[str], workdir: Path) -> list[str]:
    """podman options: mount every path in ``args`` at the same path (outermost folders only). With a relative
    path option, the container also runs in ``workdir``, with /app/transform.py, as the venv runner does."""
    relative = any(not os.path.isabs(v) for option in PATH_OPTIONS for v in _option_values(args, option))
    outs = [workdir / value for value in _option_values(args, "--out-directory")]
    for out in outs:
        make_writable(out)
    # Existing paths, and the nearest existing parent of an out-directory still to be made; a missing input
    # path is not mounted, so it is missing in the container too.
    paths = {_existing(out) for out in outs} | ({workdir} if relative else set())
    paths |= {Path(v) for a in args if os.path.isabs(v := a.split("=", 1)[-1]) and os.path.exists(v)}
    roots: list[Path] = []
    for path in sorted(paths, key=lambda p: len(p.parts)):
        if path == Path("/"):
            raise ValueError(f"refusing to mount / for the arguments {list(args)}")
        if not any(path.is_relative_to(root) for root in roots):
            roots.append(path)
    options = [f"--volume={root}:{root}" for root in roots]
    if relative:
        options += [f"--workdir={workdir}", '--entrypoint=["python3", "-u", "/app/transform.py"]']
    return options


def podman_run(
    podman_args: Sequence[str], args: Sequence[str], *, image: str | None = None, timeout: float = 300
) -> Completed:
    """``podman run --rm --network host PODMAN_ARGS IMAGE ARGS``; removes the container on timeout."""
    image = image or require_image()
    name = f"edge-augment-test-{uuid.uuid4().hex[:12]}"
    cmd = ["podman", "run", "--rm", "--network", "host", f"--name={name}", *podman_args, image, *args]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, env=podman_env()
        )
    except subprocess.TimeoutExpired:
        subprocess.run(["podman", "rm", "--force", name], capture_output=True, env=podman_env())
        raise
    return Completed(proc.returncode, proc.stdout, proc.stderr)


def run_in_container(
    args: list[str], *, workdir: Path, env: dict[str, str], timeout: float = 300, podman_args: Sequence[str] = ()
) -> Completed:
    """tests.support.blockrun's container runner: the same arguments and env vars as the venv runner."""
    reason = unavailable_reason()
    if reason:  # EDGE_AUGMENT_RUNNER=podman was asked for explicitly: don't pass by skipping everything
        pytest.fail(f"EDGE_AUGMENT_RUNNER=podman: {reason}")
    envs = [f"--env={k}={v}" for k, v in env.items() if k not in NOT_PASSED]
    options = [f"--user={UNPRIVILEGED}", *host_mounts(args, workdir.resolve()), *envs, *podman_args]
    return podman_run(options, args, timeout=timeout)
