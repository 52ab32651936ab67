"""A person's contribution records, packed: 13 bytes a (month, type, region) slot.

CONTRACT.md: a later record for the same person, type, month and region replaces the earlier
one. Each slot keeps the fingerprint of the record now in force; fingerprints of replaced
records are kept apart, so that a department's retry of an old record (same ``LSH``) is
recognised as a duplicate and cannot undo a later correction.
"""

from __future__ import annotations

import struct
from array import array

from services.ingress.contribution import EMPLOYEE_TYPES

# month index (y*12+m-1); region<<4 | type index<<1 | paid in 24 bits (low 16, high 8); fingerprint
_SLOT = struct.Struct("<HHBQ")
TYPES: tuple[str, ...] = ("110", "120", "210", "310", "410", "510", "170", "390")
_TYPE_INDEX = {t: i for i, t in enumerate(TYPES)}
_EMPLOYEE = frozenset(_TYPE_INDEX[t] for t in EMPLOYEE_TYPES)
_MEDICAL = _TYPE_INDEX["310"]


def month_index(yyyymm: int) -> int:
    return (yyyymm // 100) * 12 + (yyyymm % 100) - 1


class Contributions:
    __slots__ = ("slots", "old", "dirty")

    def __init__(self, packed: bytes = b"", old: bytes = b"") -> None:
        self.slots: dict[tuple[int, int, int], list[int]] = {}
        for m, lo, hi, fp in _SLOT.iter_unpack(packed):
            v = lo | hi << 16
            self.slots[(m, (v >> 1) & 7, v >> 4)] = [v & 1, fp]
        self.old = set(array("Q", old))
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
        body = b"".join(
            _SLOT.pack(m, (v := r << 4 | t << 1 | paid) & 0xFFFF, v >> 16, fp)
            for (m, t, r), (paid, fp) in sorted(self.slots.items())
        )
        return body, array("Q", sorted(self.old)).tobytes()
