"""The departments' field spellings, checked. Every failure raises ``Reject`` with a reason code.

Reason codes (also in the README):

=================  ==================================================================
NO_PAYLOAD         the stream entry has no ``payload`` field
TOO_LARGE          ``payload`` is over ``PERMITBUS_MAX_PAYLOAD_BYTES`` (64 KiB)
INVALID_JSON       ``payload`` is not UTF-8 JSON, or is nested deeper than 32 levels
NOT_AN_OBJECT      the JSON is not an object
DUPLICATE_FIELD    the same field twice in one object
MISSING_FIELD      a required field is absent, null or empty
WRONG_TYPE         a field has the wrong JSON type (e.g. a number where text is due)
BAD_ID             an ID number is not 17 digits + check character, or its birth date is impossible, before
                   1900-01-01 or after the record's own date (``czsj``, ``AAE002``, ``sqrq``, ``appliedOn``)
BAD_ID_CHECKSUM    an ID number's check digit is wrong (GB 11643-1999)
SAME_PERSON        the guardian's ID is the child's
UNKNOWN_CODE       a code outside its list (ywlx, AAE140, AAE078, xd)
BAD_DATE           a date or time in none of the contract's spellings, impossible, before 1900-01-01 or
                   after 2099-12-31; a month ``AAE002`` outside 199001-209912
DATE_ORDER         ``yxqz`` before ``qfrq``
UNKNOWN_DISTRICT   a district code that is not one of Nanjing's 11
BAD_REGION         ``AAB301`` is not a 6-digit region code
BAD_NUMBER         a number out of range (householdSize < 1, negative or non-numeric income, above 10^12,
                   not finite: ``1e400``, ``NaN``)
UNKNOWN_PERMIT     QZ/BG/ZX naming a permit the person does not hold (found by the decider)
=================  ==================================================================
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

from schemas.dates import FIRST_DATE, FIRST_MONTH, LAST_DATE, LAST_MONTH
from schemas.districts import DISTRICTS
from schemas.ids import PROBLEMS as _ID_PROBLEMS
from schemas.ids import id_problem

REASONS: tuple[str, ...] = (
    "NO_PAYLOAD",
    "TOO_LARGE",
    "INVALID_JSON",
    "NOT_AN_OBJECT",
    "DUPLICATE_FIELD",
    "MISSING_FIELD",
    "WRONG_TYPE",
    "BAD_ID",
    "BAD_ID_CHECKSUM",
    "SAME_PERSON",
    "UNKNOWN_CODE",
    "BAD_DATE",
    "DATE_ORDER",
    "UNKNOWN_DISTRICT",
    "BAD_REGION",
    "BAD_NUMBER",
    "UNKNOWN_PERMIT",
)


class Reject(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        assert reason in REASONS, reason
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def text(rec: dict[str, Any], name: str) -> str:
    value = rec.get(name)
    if value is None or value == "":
        raise Reject("MISSING_FIELD", f"required field {name!r} is missing")
    if not isinstance(value, str):
        raise Reject("WRONG_TYPE", f"field {name!r} must be a string, got {type(value).__name__}")
    return value


def optional_text(rec: dict[str, Any], name: str) -> str | None:
    value = rec.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise Reject("WRONG_TYPE", f"field {name!r} must be a string, got {type(value).__name__}")
    return value


def id_number(rec: dict[str, Any], name: str) -> str:
    """An 18-character resident ID with a valid check digit; returned with ``X`` upper-case."""
    value = text(rec, name)
    problem = id_problem(value)
    if problem is not None:
        raise Reject(problem, f"field {name!r} " + _ID_PROBLEMS[problem])
    return value.upper()


def born_by(id_no: str, name: str, on: dt.date) -> str:
    """``id_no`` (checked by ``id_number``) if its holder was born by ``on``, the record's own date:
    nobody applies, pays or gets a permit before being born (an ID born in 2099 is a typo or a
    forgery, and would otherwise be decided as a baby)."""
    if id_no[6:14] > on.strftime("%Y%m%d"):
        raise Reject("BAD_ID", f"field {name!r} is an ID number born after the record's own date")
    return id_no


# Dates a record may carry: schemas/dates.py (docs/contract.md, "Limits").


def in_range(day: dt.date, name: str) -> dt.date:
    if not FIRST_DATE <= day <= LAST_DATE:
        raise Reject("BAD_DATE", f"field {name!r} is outside {FIRST_DATE.isoformat()} to {LAST_DATE.isoformat()}")
    return day


_DATE_FORMATS: dict[str, re.Pattern[str]] = {
    "YYYY-MM-DD": re.compile(r"(\d{4})-(\d{2})-(\d{2})", re.ASCII),
    "YYYYMMDD": re.compile(r"(\d{4})(\d{2})(\d{2})", re.ASCII),
    "YYYY/MM/DD": re.compile(r"(\d{4})/(\d{2})/(\d{2})", re.ASCII),
    "YYYY年M月D日": re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})日", re.ASCII),
}


def date(rec: dict[str, Any], name: str, *spellings: str) -> dt.date:
    value = text(rec, name)
    for spelling in spellings:
        m = _DATE_FORMATS[spelling].fullmatch(value)
        if m:
            try:
                day = dt.date(int(m[1]), int(m[2]), int(m[3]))
            except ValueError:
                raise Reject("BAD_DATE", f"field {name!r} is an impossible date") from None
            return in_range(day, name)
    raise Reject("BAD_DATE", f"field {name!r} is not a date spelled {' or '.join(spellings)}")


_DATETIME_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})", re.ASCII)
BEIJING = dt.timezone(dt.timedelta(hours=8))


def beijing_time(rec: dict[str, Any], name: str) -> dt.datetime:
    value = text(rec, name)
    m = _DATETIME_RE.fullmatch(value)
    if not m:
        raise Reject("BAD_DATE", f"field {name!r} is not a time spelled YYYY-MM-DD HH:MM:SS")
    try:
        at = dt.datetime(*(int(g) for g in m.groups()), tzinfo=BEIJING)
    except ValueError:
        raise Reject("BAD_DATE", f"field {name!r} is an impossible time") from None
    in_range(at.date(), name)
    return at


def district(rec: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = text(rec, name) if required else optional_text(rec, name)
    if value is not None and value not in DISTRICTS:
        raise Reject("UNKNOWN_DISTRICT", f"field {name!r} is not one of Nanjing's 11 district codes")
    return value


def code(rec: dict[str, Any], name: str, allowed: frozenset[str] | dict[str, Any]) -> str:
    value = text(rec, name)
    if value not in allowed:
        raise Reject("UNKNOWN_CODE", f"field {name!r} has unknown code {value[:20]!r}")
    return value


def month(rec: dict[str, Any], name: str) -> int:
    value = text(rec, name)
    if len(value) != 6 or not value.isascii() or not value.isdigit() or not 1 <= int(value[4:]) <= 12:
        raise Reject("BAD_DATE", f"field {name!r} is not a month spelled YYYYMM")
    if not FIRST_MONTH <= int(value) <= LAST_MONTH:
        raise Reject("BAD_DATE", f"field {name!r} is outside {FIRST_MONTH} to {LAST_MONTH}")
    return int(value)


def boolean(rec: dict[str, Any], name: str) -> bool:
    value = rec.get(name)
    if value is None or value == "":
        raise Reject("MISSING_FIELD", f"required field {name!r} is missing")
    if not isinstance(value, bool):
        raise Reject("WRONG_TYPE", f"field {name!r} must be true or false")
    return value


def positive_int(rec: dict[str, Any], name: str, maximum: int) -> int:
    value = rec.get(name)
    if value is None or value == "":
        raise Reject("MISSING_FIELD", f"required field {name!r} is missing")
    if isinstance(value, bool) or not isinstance(value, int):
        raise Reject("WRONG_TYPE", f"field {name!r} must be an integer")
    if not 1 <= value <= maximum:
        raise Reject("BAD_NUMBER", f"field {name!r} must be between 1 and {maximum}")
    return value


MAX_NUMBER = 10**12  # docs/contract.md, "Limits": no figure a department sends is larger
_DECIMAL = re.compile(r"\s*[0-9]+(\.[0-9]+)?\s*", re.ASCII)


def amount(rec: dict[str, Any], name: str) -> float:
    """A number or a numeric string, finite, ≥ 0 and at most 10^12."""
    value = rec.get(name)
    if value is None or value == "":
        raise Reject("MISSING_FIELD", f"required field {name!r} is missing")
    if isinstance(value, bool):
        raise Reject("WRONG_TYPE", f"field {name!r} must be a number")
    if isinstance(value, str):
        if not _DECIMAL.fullmatch(value):
            raise Reject("BAD_NUMBER", f"field {name!r} is not a number")
        value = float(value)
    if not isinstance(value, (int, float)):
        raise Reject("WRONG_TYPE", f"field {name!r} must be a number")
    if value > MAX_NUMBER:  # before float(): an int of 400 digits overflows it
        raise Reject("BAD_NUMBER", f"field {name!r} is above 10^12")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise Reject("BAD_NUMBER", f"field {name!r} must be a finite number ≥ 0")
    return value
