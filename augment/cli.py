"""The EI-style command line: every parameters.json param is a ``--<param>`` flag of the same spelling.

EI adds ``--in-directory``/``--in-file``, ``--out-directory``, ``--hmac-key``, ``--metadata``,
``--upload-category`` and ``--upload-label``; unknown extra arguments are tolerated (and named in the log).
"""

from __future__ import annotations

import argparse
import re

from augment import __version__
from augment.config.options import GROUPS, OPTIONS


def build_parser() -> argparse.ArgumentParser:
    """The parser of every flag in ``augment.config.options.OPTIONS``, grouped as there; values stay strings
    (``build_config`` validates them)."""
    p = argparse.ArgumentParser(
        prog="transform.py",
        description="Augment a labelled image dataset per class folder (Edge Impulse transformation block).",
        epilog="Exit codes: 0 done (failures within --max-failures), 1 run failed, 2 invalid parameters.",
    )
    groups = {title: p.add_argument_group(title) for title in GROUPS}
    for option in OPTIONS:
        help_text = option.help + (f" ({' | '.join(option.choices)})" if option.choices else "")
        if option.switch:  # EI passes ``--flag 1``/``--flag 0``; people may type just ``--flag``
            groups[option.group].add_argument(option.flag, nargs="?", const="1", default=option.default, help=help_text)
        else:
            groups[option.group].add_argument(option.flag, default=option.default, help=help_text)
    p.add_argument("--version", action="version", version=f"edge-augment {__version__}")
    return p


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Parse known arguments; return them and the unknown extras (EI may pass more than we declare)."""
    return build_parser().parse_known_args(argv)


_FLAG = re.compile(r"--[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def unknown_note(unknown: list[str]) -> str:
    """The log note for arguments the block does not use: flag names only, never a value. A token is named
    only when it is spelled like a flag and does not follow an unknown flag without ``=`` (it could be that
    flag's value: a value starting with '-' reaches argparse's unknowns as a token of its own)."""
    names, hidden, after_flag = [], 0, False
    for token in unknown:
        name = token.split("=", 1)[0]
        if _FLAG.fullmatch(name) and not after_flag:
            names.append(name)
            after_flag = "=" not in token
        else:
            hidden += 1
            after_flag = False
    more = f" (and {hidden} value{'s' if hidden != 1 else ''} not shown)" if hidden else ""
    return f"note: ignoring arguments this block does not use: {' '.join(names) or '-'}{more}"
