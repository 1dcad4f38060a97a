"""What an op is: a declared schema, a sampler (rng -> concrete params) and a pure kernel.

Three words, three stages: the ``schema`` is what a recipe may say about the op (ranges, choices);
``settings`` are one recipe step's validated values of it; the sampler turns settings into the concrete
``params`` of one application; the kernel applies params to a Frame and does nothing random itself (noise
kernels receive a sampled seed). Params are plain JSON values, so the manifest can record them and a
kernel can replay them. Geometric ops (GeometricOp) also say where pixels go (``matrix``, which boxes
follow) and how uncovered pixels are filled (``border``); ``check_op`` verifies both when the registry is built.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from augment.errors import UsageError
from augment.render.frame import Frame


class RecipeError(UsageError, ValueError):
    """A recipe (or an op's settings) is invalid; the message names where and why."""


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


Border = tuple[str, float]  # (fill mode, constant fill level): how a warp fills the pixels it uncovers


class Op(ABC):
    """Base class: subclasses declare ``name``, ``summary`` and ``schema``, and implement ``sample`` and
    ``apply``. An op that moves pixels derives from GeometricOp instead."""

    name: ClassVar[str]
    summary: ClassVar[str]
    schema: ClassVar[dict[str, Param]] = {}

    def validate(self, where: str, raw: dict[str, Any]) -> dict[str, Any]:
        """Check a recipe step's settings for this op; return them complete, with defaults filled in."""
        unknown = sorted(set(raw) - set(self.schema))
        if unknown:
            raise RecipeError(
                f"{where}: unknown setting(s) {unknown} for op {self.name!r}; known: {sorted(self.schema)}"
            )
        out: dict[str, Any] = {}
        for key, param in self.schema.items():
            out[key] = param.check(f"{where}.{key}", raw[key]) if key in raw else param.json_default()
        return out

    @abstractmethod
    def sample(self, settings: dict[str, Any], rng: np.random.Generator, size: tuple[int, int]) -> dict[str, Any]:
        """Draw the concrete params of one application from validated settings."""

    @abstractmethod
    def apply(self, frame: Frame, params: dict[str, Any]) -> Frame:
        """Apply concrete params to a frame. Pure: same inputs, same output."""

    def occlusions(self, params: dict[str, Any]) -> list[list[int]]:
        """Rectangles ``[x, y, w, h]`` this op blanks out (boxes under them lose visibility)."""
        return []


class GeometricOp(Op):
    """An op that moves pixels. Boxes follow it through ``matrix``; consecutive geometric ops that share a
    ``border`` are resampled once (engine.steps). Both are required, so a geometric op cannot silently
    leave boxes where they were."""

    @abstractmethod
    def matrix(self, params: dict[str, Any], size: tuple[int, int]) -> np.ndarray:
        """The forward 3x3 affine this op applies to pixel coordinates."""

    @abstractmethod
    def border(self, params: dict[str, Any]) -> Border | None:
        """How the pixels this op uncovers are filled; None for an op that resamples nothing (a flip)."""

    def magnification(self, settings: dict[str, Any]) -> float:
        """The most this op can enlarge content, from validated settings (how much detail it needs)."""
        return 1.0


def check_op(op: Op, fill_modes: tuple[str, ...]) -> None:
    """Refuse an op that would mislead the engine: a ``matrix`` outside GeometricOp (boxes would not follow
    it), or a geometric op whose default application gives no 3x3 affine or an unknown border."""
    if not isinstance(op, GeometricOp):
        if hasattr(op, "matrix") or hasattr(op, "border"):
            raise TypeError(
                f"op {op.name!r} has a matrix or border but is not a GeometricOp: boxes would not follow it"
            )
        return
    size = (12, 8)
    params = op.sample(op.validate(op.name, {}), np.random.default_rng(0), size)
    m = np.asarray(op.matrix(params, size))
    if m.shape != (3, 3) or not np.isfinite(m).all() or m[2].tolist() != [0.0, 0.0, 1.0]:
        raise TypeError(f"op {op.name!r}: matrix() must return a 3x3 affine, got {m!r}")
    border = op.border(params)
    if border is not None and not (len(border) == 2 and border[0] in fill_modes and _is_number(border[1])):
        raise TypeError(f"op {op.name!r}: border() must be None or (one of {fill_modes}, a number), got {border!r}")


def uniform(rng: np.random.Generator, bounds: list[float]) -> float:
    """A float in ``[lo, hi]``; no draw is wasted on a fixed value, so fixed settings stay stable."""
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
