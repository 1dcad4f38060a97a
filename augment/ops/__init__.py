"""The op registry: every augmentation op by name."""

from __future__ import annotations

from augment.ops import geometric, noise, photometric
from augment.ops.base import Op, RecipeError

REGISTRY: dict[str, Op] = {op.name: op for op in (*geometric.OPS, *photometric.OPS, *noise.OPS)}


def get_op(name: str, where: str = "recipe") -> Op:
    """The op called ``name``; a RecipeError listing the known ops otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise RecipeError(f"{where}: unknown op {name!r}; known ops: {', '.join(sorted(REGISTRY))}") from None


__all__ = ["REGISTRY", "Op", "RecipeError", "get_op"]
