"""The one validator per kind of value: numbers (float or integer) in a range, one of a set of
choices, and the shortened display of a bad value in an error.

Every layer checks its values here: ``ParamSpec.validate`` (method and problem parameters),
``Config.validated`` (config fields), the app's URL fields (``ui/state``). Errors are
``ValueError``s that name the field and the allowed range; the bad value is shown shortened, as
text (it may come from a URL or a file).
"""

from __future__ import annotations

import math
from typing import Any


def short_repr(value: Any, limit: int = 40) -> str:
    """``repr(value)``, cut to ``limit`` characters ("..." at the end) for an error message."""
    try:
        text = repr(value)
    except ValueError:  # an int beyond Python's int/str conversion limit (4300 digits)
        return f"an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def range_text(low: float | None, high: float | None, integer: bool = False) -> str:
    """'[low, high]' with -inf/inf for a missing bound (integers without a decimal point)."""

    def bound(value: float | None, infinite: str) -> str:
        if value is None:
            return infinite
        return str(int(value)) if integer else f"{value:g}"

    return f"[{bound(low, '-inf')}, {bound(high, 'inf')}]"


def check_number(
    value: Any,
    where: str,
    low: float | None,
    high: float | None,
    integer: bool = False,
    written: str | None = None,
) -> float | int:
    """``value`` checked to lie in [low, high] (None: unbounded): a float (ints accepted) or, with
    ``integer``, an exact Python int. Booleans and non-numbers are rejected. An integral float is
    accepted as an integer only up to 2**53, where every integer is a float exactly (a larger one
    may already have been rounded, e.g. by a JSON reader). ``written``: the text the value was
    parsed from, shown in the error instead of the parsed value."""
    allowed = range_text(low, high, integer)
    kind = "an integer" if integer else "a number"
    shown = short_repr(value if written is None else written)
    bad = ValueError(f"{where} must be {kind} in {allowed}, got {shown}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad
    if integer:
        if isinstance(value, float):
            if math.isfinite(value) and value == int(value) and abs(value) > 2**53:
                raise ValueError(
                    f"{where} must be an integer in {allowed} written without a decimal point or "
                    f"exponent (a float above 2**53 may be rounded), got {shown}"
                )
            if not math.isfinite(value) or value != int(value):
                raise bad
        number = int(value)
    else:
        try:
            number = float(value)
        except OverflowError:  # an int too large for a float
            raise bad from None
        if not math.isfinite(number):
            raise bad
    if (low is not None and number < low) or (high is not None and number > high):
        raise bad
    return number


def check_choice(value: Any, where: str, choices: tuple[str, ...]) -> str:
    """``value`` checked to be one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{where} must be one of {list(choices)}, got {short_repr(value)}")
    return value
