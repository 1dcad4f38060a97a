"""Edge Impulse transformation block entrypoint: EI-style arguments in, exit code out."""

from __future__ import annotations

import io
import os
import sys

from augment.books.manifest import ManifestMismatchError
from augment.cli import parse, unknown_note
from augment.config import ConfigError, build_config
from augment.plan.labels import LabelsError
from augment.plan.tasks import PlanError
from augment.render.ops.base import RecipeError
from augment.run.runner import EXIT_FAILED, EXIT_SIGINT, EXIT_USAGE, run
from augment.sinks import SinkError
from augment.sources import SourceError


def main(argv: list[str]) -> int:
    for stream in (sys.stdout, sys.stderr):  # an ASCII or C locale must not turn a file name into a traceback
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
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
    except KeyboardInterrupt:  # Ctrl-C outside the phases that note it (listing, planning): nothing half-written
        print("interrupted (SIGINT)")
        return EXIT_SIGINT


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
