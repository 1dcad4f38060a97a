"""JSON that users hand in (recipes, labels files, ``--metadata``): parsed with a cap on the digits of a
number, so a value of hundreds of digits is a one-line error instead of an OverflowError (a float cannot
hold it) or Python's 4,300-digit ValueError."""

from __future__ import annotations

import json
from typing import Any

MAX_DIGITS = 30  # no setting or pixel value needs more; 1e30 and beyond is a broken file


class NumberTooLong(ValueError):
    """A number in JSON text with more than ``MAX_DIGITS`` digits."""


def loads(text: str, **hooks: Any) -> Any:
    """``json.loads`` that raises NumberTooLong (or json.JSONDecodeError) for what it cannot take."""
    return json.loads(text, parse_int=_int, parse_float=_float, **hooks)


def _int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_DIGITS:
        raise NumberTooLong(f"a number of {len(digits.lstrip('-'))} digits (at most {MAX_DIGITS})")
    return int(digits)


def _float(text: str) -> float:
    mantissa = text.lower().split("e")[0].lstrip("-").replace(".", "")
    if len(mantissa) > MAX_DIGITS + 300:  # precision beyond a double's is harmless; megabytes of it are not
        raise NumberTooLong(f"a number of {len(mantissa)} digits")
    return float(text)
