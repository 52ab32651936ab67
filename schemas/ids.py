"""Resident ID numbers (GB 11643-1999): check digit, birth date, validity, mask.

Shared vocabulary: ingress checks IDs with it, the picture and the rules read birth dates with it,
logs and screens mask with it. Imports nothing from ``services`` (tests/test_vocabulary.py).
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
import re

from schemas.dates import FIRST_DATE

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_ID_RE = re.compile(r"[0-9]{17}[0-9Xx]")

# the problems ``id_problem`` names: ingress's reason codes (services/ingress/fields.py, REASONS)
PROBLEMS = {"BAD_ID": "is not an 18-character ID number with a possible birth date",
            "BAD_ID_CHECKSUM": "has a wrong check digit"}


def check_digit(first17: str) -> str:
    """The check character for 17 digits (used by the simulator and tests)."""
    return _CHECK[sum(int(c) * w for c, w in zip(first17, _WEIGHTS)) % 11]


@functools.lru_cache(maxsize=1 << 16)
def id_problem(value: str) -> str | None:
    """None for a valid ID (either case of ``x``), else ``BAD_ID`` or ``BAD_ID_CHECKSUM``.

    Cached: a monthly burst names each person several times."""
    if not _ID_RE.fullmatch(value):
        return "BAD_ID"
    value = value.upper()
    if _CHECK[sum(map(operator.mul, map(int, value[:17]), _WEIGHTS)) % 11] != value[17]:
        return "BAD_ID_CHECKSUM"
    try:
        born = dt.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return "BAD_ID"
    if born < FIRST_DATE:
        return "BAD_ID"
    return None


def birth_date(id_no: str) -> dt.date:
    """The birth date of an ID that ``id_problem`` accepted."""
    return dt.date(int(id_no[6:10]), int(id_no[10:12]), int(id_no[12:14]))


def mask(id_number: str | None) -> str:
    """``320111********123X``: what logs and screens show of an ID (and of any other secret)."""
    if not id_number:
        return "<none>"
    s = str(id_number)
    if len(s) <= 10:
        return "*" * len(s)
    return s[:6] + "*" * (len(s) - 10) + s[-4:]
