"""Edge Impulse transformation block entrypoint: EI-style arguments in, exit code out."""

from __future__ import annotations

import io
import os
import sys

# The block's parallelism is its worker processes. Without these, numpy's and OpenCV's OpenBLAS start a thread per
# core as they load, and those threads spin after the few 3x3 matrix products a run makes: 0.16 s of CPU a run of
# 0.42 (docs/performance.md). Set here, before numpy loads, for the block's process only (a library user's own
# process keeps its settings); a value the user set is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from augment.run import ahead  # imports nothing heavy


def main(argv: list[str]) -> int:
    for stream in (sys.stdout, sys.stderr):  # an ASCII or C locale must not turn a file name into a traceback
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    ahead.start(argv)  # S3 listings go out while numpy, OpenCV and Pillow load (~0.2 s), below
    from augment.cli import parse, unknown_note
    from augment.config import build_config
    from augment.errors import BlockError
    from augment.run.runner import EXIT_SIGINT, run

    args, unknown = parse(argv)
    if unknown:
        print(unknown_note(unknown))
    try:
        return run(build_config(args, dict(os.environ)))
    except BlockError as e:  # every error a user can cause: one line, its exit code, no traceback
        print(f"ERROR: {e}")
        return e.exit_code
    except KeyboardInterrupt:  # Ctrl-C outside the phases that note it (listing, planning): nothing half-written
        print("interrupted (SIGINT)")
        return EXIT_SIGINT
    finally:
        ahead.forget()  # a run that ended before it planned: a later listing in this process asks the store


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
