"""A person's contribution records, packed: 12 bytes a (month, type, region) slot.

CONTRACT.md: a later record for the same person, type, month and region replaces the earlier
one. Each slot keeps the fingerprint of the record now in force; fingerprints of replaced
records are kept apart, so that a department's retry of an old record (same ``LSH``) is
recognised as a duplicate and cannot undo a later correction.
"""

from __future__ import annotations

import struct
from array import array

from services.ingress.contribution import EMPLOYEE_TYPES

_SLOT = struct.Struct("<HBIBI")  # month index (y*12+m-1), type index, region, paid, fingerprint
TYPES: tuple[str, ...] = ("110", "120", "210", "310", "410", "510", "170", "390")
_TYPE_INDEX = {t: i for i, t in enumerate(TYPES)}
_EMPLOYEE = frozenset(_TYPE_INDEX[t] for t in EMPLOYEE_TYPES)
_MEDICAL = _TYPE_INDEX["310"]


def month_index(yyyymm: int) -> int:
    return (yyyymm // 100) * 12 + (yyyymm % 100) - 1


class Contributions:
    __slots__ = ("slots", "old", "dirty")

    def __init__(self, packed: bytes = b"", old: bytes = b"") -> None:
        self.slots: dict[tuple[int, int, int], list[int]] = {
            (m, t, r): [paid, fp] for m, t, r, paid, fp in _SLOT.iter_unpack(packed)
        }
        self.old = set(array("I", old))
        self.dirty = False

    def record(self, fp: int, yyyymm: int, insurance_type: str, region: str, paid: bool) -> bool:
        """Apply one record; False when it is a duplicate (its effect already happened)."""
        key = (month_index(yyyymm), _TYPE_INDEX[insurance_type], int(region))
        slot = self.slots.get(key)
        if slot is not None:
            if slot[1] == fp or fp in self.old:
                return False
            self.old.add(slot[1])
            slot[0], slot[1] = int(paid), fp
        else:
            if fp in self.old:
                return False
            self.slots[key] = [int(paid), fp]
        self.dirty = True
        return True

    def recognised_months(self) -> int:
        """POLICY.md: months with a paid employee-scheme record from a Jiangsu region (32xxxx)."""
        return len(
            {m for (m, t, r), (paid, _) in self.slots.items() if paid and t in _EMPLOYEE and r // 10000 == 32}
        )

    def paid_medical_months(self) -> list[int]:
        """Month indexes with a paid employee medical (310) record, any region."""
        return sorted({m for (m, t, _), (paid, _) in self.slots.items() if paid and t == _MEDICAL})

    def pack(self) -> tuple[bytes, bytes]:
        body = b"".join(_SLOT.pack(m, t, r, paid, fp) for (m, t, r), (paid, fp) in sorted(self.slots.items()))
        return body, array("I", sorted(self.old)).tobytes()
