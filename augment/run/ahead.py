"""S3 listings started as the block starts, before its render modules load.

Python spends about 0.2 s importing numpy, OpenCV and Pillow before a run can plan; the first page of an
``--source`` or ``--dest`` s3:// prefix (and the AWS credentials, resolved on the way) can be on its way
meanwhile, a round trip the run no longer waits for (docs/s3.md). This module imports nothing heavy.

The flags are read as a hint, not parsed: only ``--source``, ``--dest`` and ``--s3-endpoint`` spelled out in
full. Nothing depends on reading them right: a page listed ahead is used only by a listing of exactly that
prefix, store and AWS settings (``S3Client.list_ahead``), and what planning did not use is dropped
(``forget``), so a later listing always asks the store.
"""

from __future__ import annotations

import math
import os

from augment.storage.s3_client import S3Client, forget_ahead
from augment.storage.s3_limits import DEFAULT_TIMEOUT
from augment.storage.s3_url import parse_s3_url

_FLAGS = ("--source", "--dest", "--s3-endpoint")
_NOT_A_RUN = ("-h", "--help", "--version")


def start(argv: list[str]) -> None:
    """List ahead the first page of each s3:// prefix ``argv`` names with ``--source`` or ``--dest``."""
    given = _flags(argv)
    urls = [given[f] for f in ("--source", "--dest") if given.get(f, "").strip().startswith("s3://")]
    if not urls:
        return
    client = S3Client((given.get("--s3-endpoint") or "").strip() or None, _time_limit())
    for text in urls:
        try:
            url = parse_s3_url(text)
        except ValueError:
            continue  # the run says why
        try:
            client.list_ahead(url.bucket, url.prefix)
        except RuntimeError:  # no thread can be started (a process or memory limit): the run lists it itself
            return


def forget() -> None:
    """Drop what was listed ahead and not used (planning is over: a later listing must ask the store)."""
    forget_ahead()


def _time_limit() -> float:
    """EDGE_AUGMENT_S3_TIMEOUT, the run's time limit of a request (its listing counts this one as its first
    try); the default for a value the run refuses (it says why)."""
    try:
        seconds = float(os.environ.get("EDGE_AUGMENT_S3_TIMEOUT") or DEFAULT_TIMEOUT)
    except ValueError:
        return DEFAULT_TIMEOUT
    return seconds if math.isfinite(seconds) and seconds > 0 else DEFAULT_TIMEOUT


def _flags(argv: list[str]) -> dict[str, str]:
    """The last value of each of ``_FLAGS`` (``--flag value`` or ``--flag=value``); nothing for a
    ``--help`` or ``--version`` run, nor when argparse could read a token as an abbreviation of one of those
    or of ``_FLAGS`` (``--vers``; ``--s3-e``: listed ahead from another store, the credentials would go
    where the run's do not), nor when one of ``_FLAGS`` has no value (a trailing ``--s3-endpoint``: argparse
    refuses the command line, the store ahead would be AWS). Stops at ``--``."""
    found: dict[str, str] = {}
    for i, token in enumerate(argv):
        if token == "--":
            return found
        name, eq, value = token.partition("=")
        if token in _NOT_A_RUN or (name.startswith("--") and name not in _FLAGS and _abbreviates(name)):
            return {}
        if name in _FLAGS:
            if not eq:
                value = argv[i + 1] if i + 1 < len(argv) else "-"
                if value.startswith("-"):  # argparse: "expected one argument", no run
                    return {}
            found[name] = value
    return found


def _abbreviates(name: str) -> bool:
    """Whether argparse may take ``name`` for one of the flags read here (or for --help, --version)."""
    return any(flag.startswith(name) for flag in (*_FLAGS, *_NOT_A_RUN) if flag.startswith("--"))
