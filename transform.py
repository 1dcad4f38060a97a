"""Edge Impulse transformation block entrypoint: EI-style arguments in, exit code out."""

from __future__ import annotations

import os
import sys

from augment.boxes import LabelsError
from augment.cli import parse, unknown_note
from augment.config import ConfigError, build_config
from augment.manifest import ManifestMismatchError
from augment.ops.base import RecipeError
from augment.plan import PlanError
from augment.runner import EXIT_FAILED, EXIT_USAGE, run
from augment.sinks import SinkError
from augment.sources import SourceError


def main(argv: list[str]) -> int:
    args, unknown = parse(argv)
    if unknown:
        print(unknown_note(unknown))
    try:
        config = build_config(args, dict(os.environ))
    except (ConfigError, RecipeError) as e:
        print(f"ERROR: {e}")
        return EXIT_USAGE
    try:
        return run(config)
    except (SourceError, SinkError, PlanError, ManifestMismatchError, LabelsError) as e:
        print(f"ERROR: {e}")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
