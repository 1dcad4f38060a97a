"""How a parameter's text becomes a value: one rule per kind, each failure a ConfigError naming the flag."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from augment.errors import UsageError

_PATH_MAX, _NAME_MAX = 4096, 255  # Linux's limits (bytes)


class ConfigError(UsageError, ValueError):
    """A parameter or environment variable is invalid; the message names it and the fix."""


def parse_bool(value: str | bool | None, name: str) -> bool:
    """EI passes booleans as 1/0; people type true/false/yes/no."""
    if isinstance(value, bool):
        return value
    text = (value or "").strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"--{name}: expected 1/0 (or true/false), got {value!r}")


def choice(raw: Any, name: str, options: tuple[str, ...]) -> str:
    """One of ``options`` (all lower case), matched after trimming and lower-casing: the rule for every flag
    with choices (``--output-layout Flat`` is ``flat``)."""
    value = str(raw or "").strip().lower()
    if value not in options:
        raise ConfigError(f"--{name}: {raw!r} is not one of {', '.join(options)}")
    return value


def whole(raw: Any, name: str, lo: int, hi: int) -> int:
    """A whole number in lo..hi (``name``: ``--flag`` without its dashes, or an environment variable)."""
    return ranged(raw, name, lo, hi, int)


def number(raw: Any, name: str, lo: float, hi: float) -> float:
    """A finite number in lo..hi."""
    return ranged(raw, name, lo, hi, float)


def ranged(raw: Any, name: str, lo: float, hi: float, kind: type) -> Any:
    """``raw`` as a ``kind`` (int or float) within lo..hi; the error names ``--name`` (or the variable)."""
    shown = name if name.isupper() else f"--{name}"
    try:
        value = kind(str(raw).strip())
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise ConfigError(f"{shown}: expected {what}, got {raw!r}") from None
    if not (math.isfinite(value) and lo <= value <= hi):
        low, high, got = (f"{v}" if kind is int else f"{v:g}" for v in (lo, hi, value))
        raise ConfigError(f"{shown}: {got} is outside {low}..{high}")
    return value


def folder(raw: str, name: str) -> Path:
    """An absolute folder path whose links resolve (a symlink loop is refused here, not met mid-run)."""
    path = absolute(raw, name)
    try:
        path.resolve()
    except (RuntimeError, OSError) as e:  # Python 3.11 raises RuntimeError for a loop
        raise ConfigError(f"--{name} {path}: cannot be resolved ({e})") from None
    return path


def absolute(raw: str, flag: str) -> Path:
    """An absolute path the system can open: not over PATH_MAX in all, nor over NAME_MAX in one part."""
    path = Path(raw).absolute()
    size = len(os.fsencode(str(path)))
    longest = max((len(os.fsencode(part)) for part in path.parts), default=0)
    if size >= _PATH_MAX or longest > _NAME_MAX:
        shown = f"{str(path)[:60]!r}… ({size} bytes)"
        raise ConfigError(f"--{flag}: {shown} is longer than a path can be ({_PATH_MAX} bytes, {_NAME_MAX} a name)")
    return path
