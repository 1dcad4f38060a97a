"""The plan: which outputs each sample gets, and their names. Pure bookkeeping, no I/O."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from augment.codec import EncodeOptions, output_format
from augment.holdout import TESTING, category_of
from augment.recipe import Node, Recipe
from augment.samples import ORIGINAL, Sample, output_name


class PlanError(ValueError):
    """The plan cannot be made (e.g. two sources would write the same output)."""


@dataclass(frozen=True)
class OutputSpec:
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
    outputs: tuple[OutputSpec, ...]


@dataclass(frozen=True)
class PlanSettings:
    recipe: Recipe
    copies: int | None  # None = the recipe's own count
    include_originals: bool
    layout: str  # folders | flat
    encode: EncodeOptions
    # Class balancing (augment.selection.balance_copies): copies per sample key, replacing ``copies``.
    copies_per_sample: dict[str, int] | None = None
    # Hold-out (augment.holdout): this share of originals goes, unaugmented, to testing/; the rest to training/.
    test_fraction: float = 0.0


def make_plan(samples: Iterable[Sample], settings: PlanSettings) -> list[Task]:
    """A task per sample, in the samples' order; raises PlanError if two outputs share a name."""
    variants = settings.recipe.outputs(settings.copies)
    tasks: list[Task] = []
    owner: dict[str, str] = {}
    for sample in samples:
        if settings.copies_per_sample is not None:  # balanced: each sample has its own count
            variants = settings.recipe.outputs(settings.copies_per_sample.get(sample.key, 0))
        fmt, ext = output_format(settings.encode, sample.suffix)
        outputs = []
        category = category_of(sample.key, settings.test_fraction)
        if settings.include_originals or category == TESTING:  # a held-out original is its only output
            outputs.append(
                OutputSpec(
                    output_name(sample, ORIGINAL, ext, settings.layout),
                    ORIGINAL,
                    -1,
                    None,
                    fmt,
                )
            )
        for index, variant, pipeline in () if category == TESTING else variants:
            outputs.append(
                OutputSpec(
                    output_name(sample, variant, ext, settings.layout),
                    variant,
                    index,
                    pipeline,
                    fmt,
                )
            )
        if category is not None:
            outputs = [replace(o, name=f"{category}/{o.name}", category=category) for o in outputs]
        for out in outputs:
            other = owner.setdefault(out.name.casefold(), sample.key)
            if other != sample.key:
                hint = " or use --output-layout folders" if settings.layout == "flat" else ""
                raise PlanError(f"{sample.key!r} and {other!r} would both write {out.name!r}; rename one{hint}")
        tasks.append(Task(sample, tuple(outputs)))
    return tasks
