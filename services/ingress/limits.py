"""The shape of a payload, checked before anything parses it into a record.

docs/contract.md, "What bad input gets": a payload over ``PERMITBUS_MAX_PAYLOAD_BYTES`` (64 KiB) is
``TOO_LARGE``; JSON nested deeper than 32 levels is ``INVALID_JSON``; the same field twice in one
object is ``DUPLICATE_FIELD``; a number too large for a 64-bit float (``1e400``: the only way JSON
spells a number that is not finite; ``NaN`` is not JSON) is ``BAD_NUMBER``. Each is decided here,
on the bytes, so that no parser recurses 100,000 levels (msgspec raises ``RecursionError`` there,
which is no ``DecodeError``), no duplicate key is silently resolved to its last value, and nothing
downstream meets such a value.

``parse`` is the slow path: the field-by-field normalizers. It costs a few regular-expression
passes over the payload (C), and a walk over the decoded objects to count their keys.
The contribution fast path takes none of this: it accepts only a flat object of exactly its
seven string fields (``flat_quotes``), which can be neither deep nor hold a field twice.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import msgspec

from services.ingress.fields import Reject

MAX_PAYLOAD_BYTES = 65_536  # the default of PERMITBUS_MAX_PAYLOAD_BYTES
MAX_DEPTH = 32
_json = msgspec.json.Decoder()
# A JSON string token: read left to right, it matches exactly the strings of valid JSON.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def too_large(raw: bytes, max_bytes: int) -> Reject | None:
    if len(raw) > max_bytes:
        return Reject("TOO_LARGE", f"payload is {len(raw):,} bytes, over the limit of {max_bytes:,}")
    return None


def flat_quotes(n: int) -> int:
    """The quote characters of an object of exactly ``n`` fields whose values are strings.

    For the fast path, whose typed decode requires ``n`` string fields: their keys and values
    take 4 quotes each. A payload it decodes that has no more quotes than that has no other key
    (a key is a string), so no field twice, no unknown field, and no nested object or array (each
    would be the value of another key); nor an escaped quote. Anything else takes ``parse``,
    which names the problem. The check costs one ``bytes.count``."""
    return 4 * n


def parse(raw: bytes) -> dict[str, Any] | Reject:
    """UTF-8 JSON bytes -> the object, or why it is not one this bus accepts."""
    skeleton = _STRING.sub(b"", raw)  # valid JSON without its strings: structure, numbers, literals
    brackets = skeleton.translate(None, _NOT_BRACKETS)
    if len(brackets) > 2 * MAX_DEPTH and max(itertools.accumulate(map(_STEP.__getitem__, brackets))) > MAX_DEPTH:
        return Reject("INVALID_JSON", f"JSON is nested deeper than {MAX_DEPTH} levels")
    try:
        rec = _json.decode(raw)
    except msgspec.ValidationError:  # the only one a schemaless decode raises: a number out of range
        return Reject("BAD_NUMBER", "a number is not finite (out of the range of a 64-bit float)")
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:  # bad UTF-8 in strings: the latter
        return Reject("INVALID_JSON", f"payload is not UTF-8 JSON ({str(exc)[:80]})")
    if not isinstance(rec, dict):
        return Reject("NOT_AN_OBJECT", f"payload is a JSON {type(rec).__name__}, not an object")
    # Outside strings, valid JSON has a colon only between a key and its value: the keys written.
    if skeleton.count(b":") != _keys(rec):
        return Reject("DUPLICATE_FIELD", "the same field appears twice in one object")
    return rec


def _keys(value: Any) -> int:
    """Distinct keys of every object in a decoded value (depth is at most MAX_DEPTH here)."""
    if isinstance(value, dict):
        return len(value) + sum(_keys(v) for v in value.values() if isinstance(v, (dict, list)))
    if isinstance(value, list):
        return sum(_keys(v) for v in value if isinstance(v, (dict, list)))
    return 0
