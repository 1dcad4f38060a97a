"""The block's exit codes and the one base class of every error a user can cause or meet.

Each error the block expects (bad parameters or environment, a source or destination that cannot be used,
a plan that cannot be written) derives from ``BlockError`` and carries the exit code it ends the run with;
``transform.py`` catches ``BlockError`` once, prints its one-line message and exits with that code. Anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2  # 130/143: a signal (augment.signals.EXIT_CODES)


class BlockError(Exception):
    """An expected failure: ``str(error)`` is one line naming the file, flag or variable and the cause."""

    exit_code = EXIT_FAILED


class UsageError(BlockError):
    """Invalid parameters or environment: nothing was read or written."""

    exit_code = EXIT_USAGE
