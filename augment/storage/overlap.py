"""Whether one folder lies inside another, judged by real paths and by identity (device and inode), so a
symlink or a bind mount cannot hide that the output folder and the input folder overlap."""

from __future__ import annotations

import os
from pathlib import Path

Identity = tuple[int, int]


def identity(path: str | os.PathLike[str]) -> Identity | None:
    """(device, inode) of what ``path`` points to, or None if it cannot be reached."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def below(outer: Path, inner: Path) -> str | None:
    """Where ``inner`` sits inside ``outer`` (a ``/``-separated relative path, ``""`` for the same folder),
    or None when it does not. Real paths first; then each real ancestor of ``inner`` is compared with
    ``outer`` by identity (a bind mount, or a path that does not exist yet, still counts)."""
    outer_real, inner_real = Path(os.path.realpath(outer)), Path(os.path.realpath(inner))
    if inner_real.is_relative_to(outer_real):
        return _relative(inner_real, outer_real)
    target = identity(outer_real)
    if target is None:
        return None
    for ancestor in (inner_real, *inner_real.parents):
        if identity(ancestor) == target:
            return _relative(inner_real, ancestor)
    return None


def _relative(path: Path, folder: Path) -> str:
    relative = path.relative_to(folder).as_posix()
    return "" if relative == "." else relative


def lands_in(name: str, folder: str) -> bool:
    """Whether the output ``name`` lands in ``folder`` (both relative to the output folder; ``""`` = all)."""
    return folder == "" or name == folder or name.startswith(folder + "/")
