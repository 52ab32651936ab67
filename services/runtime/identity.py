"""Identity numbers as the system handles them: partition, pseudonym, mask.

An 18-digit ID has a small, enumerable space, so a bare hash of it is reversible; keys use a
keyed HMAC (PIPL Art. 73). Logs and screens show ``320111********123X`` only.
"""

from __future__ import annotations

import hashlib
import hmac
import zlib


def mask(id_number: str | None) -> str:
    if not id_number:
        return "<none>"
    s = str(id_number)
    if len(s) <= 10:
        return "*" * len(s)
    return s[:6] + "*" * (len(s) - 10) + s[-4:]


def partition_of(id_number: str, partitions: int) -> int:
    return zlib.crc32(id_number.encode()) % partitions


class Pseudonymizer:
    def __init__(self, key: str) -> None:
        self._key = key.encode()

    def __call__(self, id_number: str) -> bytes:
        return hmac.new(self._key, id_number.encode(), hashlib.blake2b).digest()[:12]


def fingerprint(record_id: str) -> int:
    """32-bit fingerprint of a department record id, for duplicate detection in a person's picture."""
    return zlib.crc32(record_id.encode())
