"""The op registry: every augmentation op by name, each checked (base.check_op) as the registry is built."""

from __future__ import annotations

from augment.render.ops import geometric, noise, occlusion, photometric, pixels
from augment.render.ops.base import GeometricOp, Op, RecipeError, check_op


def _registry(ops: tuple[Op, ...]) -> dict[str, Op]:
    registry: dict[str, Op] = {}
    for op in ops:
        if op.name in registry:
            raise TypeError(f"two ops are called {op.name!r}")
        check_op(op, pixels.FILL_MODES)
        registry[op.name] = op
    return registry


REGISTRY = _registry((*geometric.OPS, *photometric.OPS, *noise.OPS, *occlusion.OPS))


def get_op(name: str, where: str = "recipe") -> Op:
    """The op called ``name``; a RecipeError listing the known ops otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise RecipeError(f"{where}: unknown op {name!r}; known ops: {', '.join(sorted(REGISTRY))}") from None


__all__ = ["REGISTRY", "GeometricOp", "Op", "RecipeError", "get_op"]
