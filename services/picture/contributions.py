"""A person's contribution records, packed: 13 bytes a (month, type, region) slot.

CONTRACT.md: a later record for the same person, type, month and region replaces the earlier
one. Each slot keeps the fingerprint of the record now in force; fingerprints of replaced
records are kept apart, so that a department's retry of an old record (same ``LSH``) is
recognised as a duplicate and cannot undo a later correction.
"""

from __future__ import annotations

import struct
from array import array
from collections import Counter

from services.ingress.contribution import EMPLOYEE_TYPES

# month index (y*12+m-1); region<<4 | type index<<1 | paid in 24 bits (low 16, high 8); fingerprint
_SLOT = struct.Struct("<HHBQ")
TYPES: tuple[str, ...] = ("110", "120", "210", "310", "410", "510", "170", "390")
_TYPE_INDEX = {t: i for i, t in enumerate(TYPES)}
_EMPLOYEE = frozenset(_TYPE_INDEX[t] for t in EMPLOYEE_TYPES)
_MEDICAL = _TYPE_INDEX["310"]


def month_index(yyyymm: int) -> int:
    return (yyyymm // 100) * 12 + (yyyymm % 100) - 1


def _counts_as_employee_month(t: int, r: int) -> bool:
    """An employee scheme (110 120 210 310 410 510) paid in Jiangsu (32xxxx), clause （六）."""
    return t in _EMPLOYEE and r // 10000 == 32


class Contributions:
    """The slots, plus two running tallies kept up to date by ``record`` so that a burst of
    records for one person costs O(1) each: paid employee slots per month (recognised months) and
    paid 310 slots per month (medical insurance)."""

    __slots__ = ("slots", "old", "dirty", "_employee", "_medical")

    def __init__(self, packed: bytes = b"", old: bytes = b"") -> None:
        self.slots: dict[tuple[int, int, int], list[int]] = {}
        self._employee: Counter[int] = Counter()
        self._medical: Counter[int] = Counter()
        for m, lo, hi, fp in _SLOT.iter_unpack(packed):
            v = lo | hi << 16
            key = (m, (v >> 1) & 7, v >> 4)
            self.slots[key] = [v & 1, fp]
            if v & 1:
                self._tally(key, 1)
        self.old = set(array("Q", old))
        self.dirty = False

    def _tally(self, key: tuple[int, int, int], delta: int) -> None:
        m, t, r = key
        if _counts_as_employee_month(t, r):
            self._employee[m] += delta
            if not self._employee[m]:
                del self._employee[m]
        if t == _MEDICAL:
            self._medical[m] += delta
            if not self._medical[m]:
                del self._medical[m]

    def record(self, fp: int, yyyymm: int, insurance_type: str, region: str, paid: bool) -> bool:
        """Apply one record; False when it is a duplicate (its effect already happened)."""
        key = (month_index(yyyymm), _TYPE_INDEX[insurance_type], int(region))
        slot = self.slots.get(key)
        if slot is not None:
            if slot[1] == fp or fp in self.old:
                return False
            self.old.add(slot[1])
            if slot[0] != int(paid):  # a later record replaces the earlier one
                self._tally(key, 1 if paid else -1)
            slot[0], slot[1] = int(paid), fp
        else:
            if fp in self.old:
                return False
            self.slots[key] = [int(paid), fp]
            if paid:
                self._tally(key, 1)
        self.dirty = True
        return True

    def recognised_months(self) -> int:
        """POLICY.md: months with a paid employee-scheme record from a Jiangsu region (32xxxx),
        each month once however many types or cities paid it."""
        return len(self._employee)

    def paid_medical_months(self) -> list[int]:
        """Month indexes with a paid employee medical (310) record, any region."""
        return sorted(self._medical)

    def paid_medical_in(self, first: int, last: int) -> bool:
        return any(m in self._medical for m in range(first, last + 1))

    def pack(self) -> tuple[bytes, bytes]:
        body = b"".join(
            _SLOT.pack(m, (v := r << 4 | t << 1 | paid) & 0xFFFF, v >> 16, fp)
            for (m, t, r), (paid, fp) in sorted(self.slots.items())
        )
        return body, array("Q", sorted(self.old)).tobytes()
