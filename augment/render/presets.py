"""Built-in recipes, as the same JSON a user could pass with ``--recipe``.

``workshop`` reproduces EI's Image Data Augmentation Workshop notebook (14 fixed variants, without its
duplicated flips). ``light``/``medium``/``heavy`` are random compound chains that cover capture conditions
(pose, framing, lighting, focus, sensor noise); ``trivial`` makes one wide change per copy and is the default
(chosen on the outcome benchmark: docs/quality.md).
"""

from __future__ import annotations

from typing import Any

from augment.render.ops.base import RecipeError
from augment.render.recipe import Recipe, parse_recipe

_EDGE = {"fill": "edge"}
_SHIFT = {"op": "translate", "x": [-0.25, 0.25], "y": [-0.25, 0.25], **_EDGE}

WORKSHOP: dict[str, Any] = {
    "name": "workshop",
    "description": "EI workshop notebook: 3 flips, rotations 45/90/135, 2 zoom crops at 1.3x, 3 shifts, 3 noises",
    "variants": [
        {"name": "flip_h", "pipeline": [{"op": "hflip"}]},
        {"name": "flip_v", "pipeline": [{"op": "vflip"}]},
        {"name": "flip_hv", "pipeline": [{"op": "hflip"}, {"op": "vflip"}]},
        {"name": "rot45", "pipeline": [{"op": "rotate", "angles": [45], **_EDGE}]},
        {"name": "rot90", "pipeline": [{"op": "rotate", "angles": [90], **_EDGE}]},
        {"name": "rot135", "pipeline": [{"op": "rotate", "angles": [135], **_EDGE}]},
        {"name": "zoom1", "pipeline": [{"op": "zoom", "scale": 1.3}]},
        {"name": "zoom2", "pipeline": [{"op": "zoom", "scale": 1.3}]},
        {"name": "shift1", "pipeline": [_SHIFT]},
        {"name": "shift2", "pipeline": [_SHIFT]},
        {"name": "shift3", "pipeline": [_SHIFT]},
        {"name": "gaussian", "pipeline": [{"op": "gaussian_noise", "sigma": 0.1}]},
        {"name": "poisson", "pipeline": [{"op": "poisson_noise", "peak": 0}]},
        {"name": "saltpepper", "pipeline": [{"op": "salt_pepper", "amount": 0.05}]},
    ],
}


def _chain(
    geo: dict[str, Any],
    light: dict[str, Any],
    focus: float,
    noise: float,
    flips: list,
    last: list,
) -> list:
    """A capture-conditions chain: pose/framing, lighting, focus, sensor noise, in that order."""
    return [
        {"op": "hflip", "p": 0.5},
        *flips,
        {"some_of": geo["ops"], "k": geo["k"]},
        {"some_of": light["ops"], "k": light["k"], "p": light.get("p", 1.0)},
        {
            "one_of": [
                {"op": "blur", "sigma": light["blur"]},
                {"op": "sharpen", "amount": light["sharpen"]},
            ],
            "p": focus,
        },
        {"one_of": light["noise"], "p": noise},
        *last,
    ]


LIGHT = {
    "name": "light",
    "description": "small pose and lighting changes; safe for fine-grained classes",
    "copies": 4,
    "pipeline": _chain(
        {
            "k": [1, 2],
            "ops": [
                {"op": "rotate", "degrees": [-8, 8], "fill": "reflect"},
                {
                    "op": "translate",
                    "x": [-0.05, 0.05],
                    "y": [-0.05, 0.05],
                    "fill": "reflect",
                },
                {"op": "zoom", "scale": [1.0, 1.1]},
            ],
        },
        {
            "k": [1, 2],
            "ops": [
                {"op": "brightness", "factor": [0.85, 1.15]},
                {"op": "contrast", "factor": [0.85, 1.15]},
            ],
            "blur": [0.2, 0.6],
            "sharpen": [0.2, 0.6],
            "noise": [{"op": "gaussian_noise", "sigma": [0.005, 0.02]}],
        },
        focus=0.2,
        noise=0.2,
        flips=[],
        last=[],
    ),
}

MEDIUM = {
    "name": "medium",
    "description": "pose, distance, framing, lighting, focus, sensor noise: one or two of each per copy",
    "copies": 8,
    "pipeline": _chain(
        {
            "k": [1, 2],
            "ops": [
                {"op": "rotate", "degrees": [-15, 15], "fill": "reflect"},
                {"op": "scale", "factor": [0.6, 1.0], "fill": "reflect"},
                {"op": "zoom", "scale": [1.0, 1.3]},
                {
                    "op": "translate",
                    "x": [-0.25, 0.25],
                    "y": [-0.25, 0.25],
                    "fill": "reflect",
                },
            ],
        },
        {
            "k": [1, 2],
            "p": 0.9,
            "ops": [
                {"op": "brightness", "factor": [0.5, 1.5]},
                {"op": "contrast", "factor": [0.4, 1.3]},
                {"op": "gamma", "gamma": [0.5, 1.8]},
                {
                    "op": "hue_saturation",
                    "hue": [-0.05, 0.05],
                    "saturation": [0.6, 1.4],
                },
            ],
            "blur": [0.5, 2.0],
            "sharpen": [0.3, 1.0],
            "noise": [
                {"op": "gaussian_noise", "sigma": [0.01, 0.06]},
                {"op": "poisson_noise", "peak": 0},
                {"op": "salt_pepper", "amount": [0.002, 0.01]},
            ],
        },
        focus=0.3,
        noise=0.3,
        flips=[],
        last=[],
    ),
}

HEAVY = {
    "name": "heavy",
    "description": "wide geometric and lighting changes plus cutout; for small datasets or robust models",
    "copies": 8,
    "pipeline": _chain(
        {
            "k": [2, 3],
            "ops": [
                {"op": "rotate", "degrees": [-30, 30], "fill": "reflect"},
                {"op": "zoom", "scale": [1.0, 1.4]},
                {
                    "op": "translate",
                    "x": [-0.2, 0.2],
                    "y": [-0.2, 0.2],
                    "fill": "reflect",
                },
                {"op": "shear", "x": [-15, 15], "y": [-5, 5], "fill": "reflect"},
            ],
        },
        {
            "k": [2, 3],
            "ops": [
                {"op": "brightness", "factor": [0.5, 1.5]},
                {"op": "contrast", "factor": [0.5, 1.5]},
                {"op": "gamma", "gamma": [0.5, 2.0]},
                {
                    "op": "hue_saturation",
                    "hue": [-0.08, 0.08],
                    "saturation": [0.6, 1.4],
                },
            ],
            "blur": [0.5, 2.0],
            "sharpen": [0.5, 2.0],
            "noise": [
                {"op": "gaussian_noise", "sigma": [0.02, 0.08]},
                {"op": "poisson_noise", "peak": 0},
                {"op": "salt_pepper", "amount": [0.005, 0.03]},
            ],
        },
        focus=0.6,
        noise=0.6,
        flips=[{"op": "vflip", "p": 0.2}],
        last=[{"op": "cutout", "p": 0.3, "count": [1, 2], "size": [0.1, 0.3]}],
    ),
}

# TrivialAugment-style (Mueller & Hutter 2021): one change per copy, drawn uniformly from the list, its magnitude
# uniform over a wide range. Framing is listed twice (shifts were its weakest lever), borders extend the edge
# pixels (a wider view shows more of the same background, not a mirror image). Measured: docs/quality.md.
TRIVIAL = {
    "name": "trivial",
    "description": "one wide change per copy: pose, distance, framing, lighting, colour, focus or noise (default)",
    "copies": 8,
    "pipeline": [
        {"op": "hflip", "p": 0.5},
        {
            "one_of": [
                {"op": "rotate", "degrees": [-15, 15], "fill": "edge"},
                {"op": "zoom", "scale": [1.0, 1.4]},
                {"op": "translate", "x": [-0.25, 0.25], "y": [-0.25, 0.25], "fill": "edge"},
                {"op": "translate", "x": [-0.25, 0.25], "y": [-0.25, 0.25], "fill": "edge"},
                {"op": "scale", "factor": [0.6, 0.95], "fill": "edge"},
                {"op": "brightness", "factor": [0.35, 1.65]},
                {"op": "contrast", "factor": [0.35, 1.3]},
                {"op": "gamma", "gamma": [0.45, 2.2]},
                {"op": "hue_saturation", "hue": [-0.05, 0.05], "saturation": [0.6, 1.4]},
                {"op": "blur", "sigma": [0.3, 2.0]},
                {"op": "sharpen", "amount": [0.3, 1.5]},
                {"op": "gaussian_noise", "sigma": [0.01, 0.1]},
                {"op": "poisson_noise", "peak": 0},
            ]
        },
    ],
}

PRESETS: dict[str, dict[str, Any]] = {r["name"]: r for r in (LIGHT, MEDIUM, HEAVY, TRIVIAL, WORKSHOP)}
DEFAULT_PRESET = "trivial"
ORIENTATIONS = ("upright", "any")

# --orientation any (objects seen from above): every copy gets one of the 8 dihedral poses (a uniform quarter
# turn after the chain's horizontal flip, plus a vertical flip half the time), and the chain's free rotation
# spans one quarter turn either way, so together they cover the full circle.
_ANY_POSE = [
    {"op": "vflip", "p": 0.5},
    {"op": "rotate", "angles": [0, 90, 180, 270], "fill": "reflect"},
]
_ANY_ROTATION = [-45.0, 45.0]


def oriented(preset: dict[str, Any], orientation: str) -> dict[str, Any]:
    """``preset`` for objects photographed ``upright`` (as it is) or from above in ``any`` orientation."""
    if orientation == "upright" or "pipeline" not in preset:
        return preset
    if orientation != "any":
        raise RecipeError(f"--orientation: {orientation!r} is not one of {', '.join(ORIENTATIONS)}")
    pipeline = [step for step in preset["pipeline"] if step.get("op") != "vflip"]
    pipeline[1:1] = _ANY_POSE  # after the leading hflip
    return {**preset, "pipeline": [_rotate_any(step) for step in pipeline]}


def _rotate_any(step: dict[str, Any]) -> dict[str, Any]:
    if step.get("op") == "rotate" and "angles" not in step:
        return {**step, "degrees": _ANY_ROTATION}
    if "some_of" in step:
        return {**step, "some_of": [_rotate_any(s) for s in step["some_of"]]}
    if "one_of" in step:
        return {**step, "one_of": [_rotate_any(s) for s in step["one_of"]]}
    return step


def get_preset(name: str, orientation: str = "upright") -> Recipe:
    """The built-in recipe called ``name``, for objects in ``orientation`` (``upright`` or ``any``)."""
    if name not in PRESETS:
        raise RecipeError(f"--preset: unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    preset = oriented(PRESETS[name], orientation)
    return parse_recipe({k: v for k, v in preset.items() if k != "description"})
