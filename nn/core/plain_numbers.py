"""Numbers as people type them, read strictly: ASCII digits, an optional sign, decimal point and
exponent. Python's own ``int`` and ``float`` also read ``1_0`` as 10, Arabic-Indic or
full-width digits, ``nan`` and ``inf``, and stop at 4,300 digits with a message about
``sys.set_int_max_str_digits``; a form or a flag that means a number refuses all of those."""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = ["plain_float", "plain_int"]

_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?")
_INT = re.compile(r"[+-]?[0-9]{1,30}")


def plain_float(text: Any) -> float:
    """``text`` as a finite float; ``ValueError`` saying how to write one."""
    shown = str(text).strip()
    if len(shown) > 40 or not _FLOAT.fullmatch(shown):
        raise ValueError(f"{shown[:40]!r} is not a number (write e.g. 0.001 or 1e-4)")
    value = float(shown)
    if not math.isfinite(value):
        raise ValueError(f"{shown[:40]!r} is beyond a float's range")
    return value


def plain_int(text: Any) -> int:
    """``text`` as a whole number of at most 30 digits; ``ValueError`` otherwise."""
    shown = str(text).strip()
    if not _INT.fullmatch(shown):
        raise ValueError(f"{shown[:40]!r} is not a whole number (write e.g. 128)")
    return int(shown)


plain_float.__name__ = "float"  # argparse says "invalid float value: '1_0'"
plain_int.__name__ = "int"
