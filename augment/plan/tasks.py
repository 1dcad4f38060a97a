"""The plan: which outputs each sample gets, and their names. Pure bookkeeping, no I/O (a run plans every
sample once, from its index: ``augment.plan.planner``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from augment.errors import BlockError
from augment.plan.holdout import TESTING
from augment.plan.samples import ORIGINAL, Sample, output_name, output_names
from augment.render.codec import EncodeOptions, output_format
from augment.render.recipe import Node, Recipe


class PlanError(BlockError, ValueError):
    """The plan cannot be made (e.g. two sources would write the same output)."""


@dataclass(frozen=True)
class PlannedOutput:
    name: str  # relative output path
    variant: str  # "orig", a fixed variant's name, or "augNN"
    index: int  # copy index (seeds the output's rng); -1 for the original
    pipeline: tuple[Node, ...] | None  # None = the original, copied through
    image_format: str  # Pillow format to encode
    category: str | None = None  # training | testing with a hold-out (--test-fraction): also the name's folder


@dataclass(frozen=True)
class Task:
    """One sample and all its outputs: decoded once, augmented per output."""

    sample: Sample
    outputs: tuple[PlannedOutput, ...]


@dataclass(frozen=True)
class PlanSettings:
    recipe: Recipe
    copies: int | None  # None = the recipe's own count
    include_originals: bool
    layout: str  # folders | flat
    encode: EncodeOptions


def plan_task(sample: Sample, settings: PlanSettings, category: str | None, copies: int | None = None) -> Task:
    """The outputs of one sample: its original (when kept, or held out) and its copies (``copies`` when
    balanced, else the settings'), under ``category``'s folder with a hold-out."""
    variants = [] if category == TESTING else settings.recipe.outputs(settings.copies if copies is None else copies)
    fmt, ext = output_format(settings.encode, sample.suffix)
    original = settings.include_originals or category == TESTING  # a held-out original is its only output
    kinds = [(ORIGINAL, -1, None)] if original else []
    kinds += [(variant, index, pipeline) for index, variant, pipeline in variants]
    names = output_names(sample, [variant for variant, _, _ in kinds], ext, settings.layout)
    folder = "" if category is None else f"{category}/"
    outputs = [
        PlannedOutput(folder + name, variant, index, pipeline, fmt, category)
        for name, (variant, index, pipeline) in zip(names, kinds, strict=True)
    ]
    return Task(sample, tuple(outputs))


def collision(sample: Sample, name: str, other: Sample, other_name: str, layout: str) -> str:
    """What two sources really collide on: one name, or names that differ only in case or normalisation."""
    if name == other_name:
        what = f"would both write {name!r}"
    else:
        what = (
            f"would write {other_name!r} and {name!r}, which differ only in case or Unicode normalisation (one"
            " file on case-insensitive or normalising file systems such as macOS's, and in Edge Impulse)"
        )
    hint = "; rename one"
    if layout == "flat" and output_name(sample, "x", "", "folders") != output_name(other, "x", "", "folders"):
        hint += " or use --output-layout folders (the flat layout folds folders into names)"
    elif PurePosixPath(sample.key).stem == PurePosixPath(other.key).stem:
        hint += " (same name, other extension: outputs share one format)"
    return f"{other.key!r} and {sample.key!r} {what}{hint}"
