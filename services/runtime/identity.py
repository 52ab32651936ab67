"""Identity numbers as the system handles them: partition, pseudonym, fingerprint.

An 18-digit ID has a small, enumerable space, so a bare hash of it is reversible; keys use a
keyed MAC (PIPL Art. 73). Logs and screens show ``320111********123X`` only (``schemas.ids.mask``).
"""

from __future__ import annotations

import hashlib
import zlib


def partition_of(id_number: str, partitions: int) -> int:
    return zlib.crc32(id_number.encode()) % partitions


class Pseudonymizer:
    """Keyed BLAKE2b (a MAC by construction, RFC 7693 §2.9): one C call per ID."""

    def __init__(self, key: str) -> None:
        self._key = hashlib.blake2b(key.encode(), digest_size=32).digest()

    def __call__(self, id_number: str) -> bytes:
        return hashlib.blake2b(id_number.encode(), key=self._key, digest_size=12).digest()


def fingerprint(record_id: str) -> int:
    """64-bit fingerprint of a department record id, for duplicate detection in a person's picture.

    Compared only with the few records of one person; a false duplicate needs a 64-bit collision
    among them (about 1 in 10^17 for a person with a thousand records)."""
    return int.from_bytes(hashlib.blake2b(record_id.encode(), digest_size=8).digest(), "little")
