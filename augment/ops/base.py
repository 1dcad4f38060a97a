"""What an op is: a declared parameter spec, a sampler (rng -> concrete params) and a pure kernel.

The spec is what a recipe may say about the op (ranges, choices); the sampler turns a validated spec into
the concrete parameters of one application; the kernel applies those parameters to a Frame and does
nothing random itself (noise kernels receive a sampled seed). Concrete parameters are plain JSON values, so
the manifest can record them and a kernel can replay them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from augment.frame import Frame


class RecipeError(ValueError):
    """A recipe (or op spec) is invalid; the message names where and why."""


@dataclass(frozen=True)
class Range:
    """A float range ``[lo, hi]`` sampled uniformly; a single number means a fixed value."""

    default: tuple[float, float]
    bounds: tuple[float, float]
    help: str = ""

    def check(self, where: str, raw: Any) -> list[float]:
        values = [raw, raw] if _is_number(raw) else raw
        if not (isinstance(values, list) and len(values) == 2 and all(_is_number(v) for v in values)):
            raise RecipeError(f"{where}: expected a number or [low, high], got {raw!r}")
        lo, hi = float(values[0]), float(values[1])
        if lo > hi:
            raise RecipeError(f"{where}: low {lo:g} is above high {hi:g}")
        if lo < self.bounds[0] or hi > self.bounds[1]:
            raise RecipeError(f"{where}: [{lo:g}, {hi:g}] is outside the allowed {list(self.bounds)}")
        return [lo, hi]

    def json_default(self) -> list[float]:
        return list(self.default)


@dataclass(frozen=True)
class IntRange(Range):
    """An integer range ``[lo, hi]``, inclusive, sampled uniformly."""

    def check(self, where: str, raw: Any) -> list[float]:
        lo, hi = super().check(where, raw)
        if lo != int(lo) or hi != int(hi):
            raise RecipeError(f"{where}: expected whole numbers, got {raw!r}")
        return [int(lo), int(hi)]

    def json_default(self) -> list[float]:
        return [int(v) for v in self.default]


@dataclass(frozen=True)
class Number:
    """A single fixed number."""

    default: float
    bounds: tuple[float, float]
    help: str = ""

    def check(self, where: str, raw: Any) -> float:
        if not _is_number(raw):
            raise RecipeError(f"{where}: expected a number, got {raw!r}")
        if not self.bounds[0] <= raw <= self.bounds[1]:
            raise RecipeError(f"{where}: {raw:g} is outside the allowed {list(self.bounds)}")
        return float(raw)

    def json_default(self) -> float:
        return self.default


@dataclass(frozen=True)
class Choice:
    """One of a fixed set of strings."""

    default: str
    options: tuple[str, ...]
    help: str = ""

    def check(self, where: str, raw: Any) -> str:
        if raw not in self.options:
            raise RecipeError(f"{where}: {raw!r} is not one of {list(self.options)}")
        return raw

    def json_default(self) -> str:
        return self.default


@dataclass(frozen=True)
class NumberList:
    """A non-empty list of numbers to pick from uniformly (e.g. fixed angles); ``None`` = not used."""

    bounds: tuple[float, float]
    help: str = ""
    default: None = None

    def check(self, where: str, raw: Any) -> list[float] | None:
        if raw is None:
            return None
        if not (isinstance(raw, list) and raw and all(_is_number(v) for v in raw)):
            raise RecipeError(f"{where}: expected a non-empty list of numbers, got {raw!r}")
        for v in raw:
            if not self.bounds[0] <= v <= self.bounds[1]:
                raise RecipeError(f"{where}: {v:g} is outside the allowed {list(self.bounds)}")
        return [float(v) for v in raw]

    def json_default(self) -> None:
        return None


Param = Range | Number | Choice | NumberList


class Op:
    """Base class: subclasses declare ``name``, ``kind``, ``summary`` and ``spec``, and implement
    ``sample`` and ``apply``. Geometric ops also implement ``matrix``."""

    name: ClassVar[str]
    kind: ClassVar[str]  # "geometric" | "photometric" | "noise"
    summary: ClassVar[str]
    spec: ClassVar[dict[str, Param]] = {}

    def validate(self, where: str, raw: dict[str, Any]) -> dict[str, Any]:
        """Check a recipe's settings for this op; return them complete, with defaults filled in."""
        unknown = sorted(set(raw) - set(self.spec))
        if unknown:
            raise RecipeError(f"{where}: unknown setting(s) {unknown} for op {self.name!r}; known: {sorted(self.spec)}")
        out: dict[str, Any] = {}
        for key, param in self.spec.items():
            out[key] = param.check(f"{where}.{key}", raw[key]) if key in raw else param.json_default()
        return out

    def sample(self, spec: dict[str, Any], rng: np.random.Generator, size: tuple[int, int]) -> dict[str, Any]:
        """Draw the concrete parameters of one application from a validated spec."""
        raise NotImplementedError

    def apply(self, frame: Frame, params: dict[str, Any]) -> Frame:
        """Apply concrete parameters to a frame. Pure: same inputs, same output."""
        raise NotImplementedError

    def matrix(self, params: dict[str, Any], size: tuple[int, int]) -> np.ndarray | None:
        """The forward 3x3 affine this op applies to pixel coordinates (None for non-geometric ops)."""
        return None

    def occlusions(self, params: dict[str, Any]) -> list[list[int]]:
        """Rectangles ``[x, y, w, h]`` this op blanks out (boxes under them lose visibility)."""
        return []


def uniform(rng: np.random.Generator, bounds: list[float]) -> float:
    """A float in ``[lo, hi]``; no draw is wasted on a fixed value, so fixed specs stay stable."""
    lo, hi = bounds
    return float(lo) if lo == hi else float(rng.uniform(lo, hi))


def integer(rng: np.random.Generator, bounds: list[float]) -> int:
    lo, hi = int(bounds[0]), int(bounds[1])
    return lo if lo == hi else int(rng.integers(lo, hi + 1))


def noise_seed(rng: np.random.Generator) -> int:
    """A seed for a noise kernel, so the kernel stays pure and the manifest can replay it."""
    return int(rng.integers(0, 2**63 - 1))


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)
