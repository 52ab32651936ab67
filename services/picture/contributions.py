"""A person's contribution records, packed: 13 bytes a (month, type, region) slot.

docs/contract.md, "ingress:hrss:contribution": a later record for the same person, type, month and region replaces the earlier
one. Each slot keeps the fingerprint of the record now in force; fingerprints of replaced
records are kept apart, so that a department's retry of an old record (same ``LSH``) is
recognised as a duplicate and cannot undo a later correction.

The slots stay packed, sorted by month, and are worked on in place: a record finds its month
by a short scan back from the newest month and touches only that month's few slots, so its cost
does not grow with the person's history (unpacking 24 months of slots for every record was the
decider's largest cost, BENCHMARKS.md). The number of recognised months is kept as a running
count stored with the picture, corrected month by month as records arrive.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Iterator

from schemas.codes import EMPLOYEE_MEDICAL, EMPLOYEE_TYPES, INSURANCE_TYPES_IN_ORDER

# month index (y*12+m-1); region<<4 | type index<<1 | paid in 24 bits (low 16, high 8); fingerprint
_SLOT = struct.Struct("<HHBQ")
_SIZE = _SLOT.size
TYPES: tuple[str, ...] = INSURANCE_TYPES_IN_ORDER  # the stored type index (append-only, schemas/codes.py)
_TYPE_INDEX = {t: i for i, t in enumerate(TYPES)}
_EMPLOYEE = frozenset(_TYPE_INDEX[t] for t in EMPLOYEE_TYPES)
_MEDICAL = _TYPE_INDEX[EMPLOYEE_MEDICAL]
# what ``record`` did: DUPLICATE (nothing), STORED (kept; no fact a rule reads changed), CHANGED (the
# months recognised or worked changed, and maybe more), MEDICAL (only whether a month has a paid 310)
DUPLICATE, STORED, CHANGED, MEDICAL = 0, 1, 2, 3
UNKNOWN = -1  # a stored picture without its count (written before the count was kept)
_NONE_REPLACED: frozenset[int] = frozenset()  # most people's ``old``: shared, replaced by a set at the first replacement


def month_index(yyyymm: int) -> int:
    return (yyyymm // 100) * 12 + (yyyymm % 100) - 1


def _counts_as_employee_month(t: int, r: int) -> bool:
    """An employee scheme (110 120 210 310 410 510) paid in Jiangsu (32xxxx), clause （六）."""
    return t in _EMPLOYEE and r // 10000 == 32


class Contributions:
    """The packed slots of one person, changed in place, with the running count of recognised
    employee months (months with at least one paid employee slot in Jiangsu)."""

    __slots__ = ("buf", "old", "old_packed", "dirty", "employee_months", "archived", "archive_dirty")

    def __init__(self, packed: bytes = b"", old: bytes = b"", employee_months: int = UNKNOWN,
                 archived: int = 0) -> None:
        self.buf = bytearray(packed)
        self.old: set[int] | frozenset[int] = set(array("Q", old)) if old else _NONE_REPLACED
        self.old_packed: bytes | None = old  # ``old`` packed, until a record replaces another
        self.dirty = False
        self.employee_months = employee_months if employee_months >= 0 else self._count_employee_months()
        self.archived = archived  # months before this are stored apart (see ``split_for_storage``)
        self.archive_dirty = False  # a record changed a slot of those months

    # -- reading the packed slots ----------------------------------------------------------
    def __len__(self) -> int:
        return len(self.buf) // _SIZE

    def _month_at(self, i: int) -> int:
        o = i * _SIZE
        return self.buf[o] | self.buf[o + 1] << 8

    def _month_range(self, m: int) -> tuple[int, int]:
        """The slot indexes [lo, hi) of month index ``m`` (where it would be, if empty).

        Scanned from the newest month back: records arrive for recent months, so this touches
        a few slots, whatever the length of the history. (Hot: the month is read inline.)"""
        buf = self.buf
        hi = len(buf) // _SIZE
        o = hi * _SIZE - _SIZE
        while o >= 0 and (buf[o] | buf[o + 1] << 8) > m:
            o -= _SIZE
        hi = lo = o // _SIZE + 1
        while o >= 0 and (buf[o] | buf[o + 1] << 8) == m:
            o -= _SIZE
            lo -= 1
        return lo, hi

    def _slot(self, i: int) -> tuple[int, int, int, int]:
        """(type index, region, paid, fingerprint) of slot ``i``."""
        _, lo, hi, fp = _SLOT.unpack_from(self.buf, i * _SIZE)
        v = lo | hi << 16
        return (v >> 1) & 7, v >> 4, v & 1, fp

    def _paid(self) -> Iterator[tuple[int, int, int]]:
        """(month, type index, region) of every paid slot, oldest month first."""
        for m, lo, hi, _ in _SLOT.iter_unpack(self.buf):
            v = lo | hi << 16
            if v & 1:
                yield m, (v >> 1) & 7, v >> 4

    def _count_employee_months(self) -> int:
        return len({m for m, t, r in self._paid() if _counts_as_employee_month(t, r)})

    # -- applying a record -----------------------------------------------------------------
    def record(self, fp: int, yyyymm: int, insurance_type: str, region: str, paid: bool) -> int:
        """Apply one record. Returns ``DUPLICATE`` (its effect already happened), ``STORED`` (kept,
        but no fact a rule reads has changed), ``CHANGED`` (the recognised months changed, or
        whether a month has a paid employee-scheme slot in any region: the month worked) or
        ``MEDICAL`` (only whether a month has a paid 310 slot changed)."""
        m, t, r, p = month_index(yyyymm), _TYPE_INDEX[insurance_type], int(region), int(paid)
        lo, hi = self._month_range(m)
        # one pass over the month's slots: the slot this record replaces, if any, and whether the
        # month's other slots make it recognised / worked / give it a paid 310 whatever this record says
        buf, at, old_paid = self.buf, -1, 0
        other_employee = other_worked = other_medical = False
        for i in range(lo, hi):
            _, vlo, vhi, sfp = _SLOT.unpack_from(buf, i * _SIZE)
            v = vlo | vhi << 16
            st, sr = (v >> 1) & 7, v >> 4
            if st == t and sr == r:
                if sfp == fp or fp in self.old:
                    return DUPLICATE
                at, old_paid, old_fp = i, v & 1, sfp
            elif v & 1:
                other_employee = other_employee or _counts_as_employee_month(st, sr)
                other_worked = other_worked or st in _EMPLOYEE
                other_medical = other_medical or st == _MEDICAL
        if at < 0 and fp in self.old:
            return DUPLICATE
        v = r << 4 | t << 1 | p
        slot = _SLOT.pack(m, v & 0xFFFF, v >> 16, fp)
        if at >= 0:
            if self.old is _NONE_REPLACED:
                self.old = set()
            self.old.add(old_fp)  # a later record replaces the earlier one
            self.old_packed = None
            buf[at * _SIZE:(at + 1) * _SIZE] = slot
        else:
            buf[hi * _SIZE:hi * _SIZE] = slot
        self.dirty = True
        if m < self.archived:
            self.archive_dirty = True
        counts = _counts_as_employee_month(t, r)
        before = other_employee or (counts and old_paid == 1)
        after = other_employee or (counts and p == 1)
        self.employee_months += after - before
        medical_changed = t == _MEDICAL and not other_medical and old_paid != p
        worked_changed = t in _EMPLOYEE and not other_worked and old_paid != p
        if before != after or worked_changed:
            return CHANGED
        return MEDICAL if medical_changed else STORED

    # -- facts -----------------------------------------------------------------------------
    def recognised_months(self) -> int:
        """docs/policy.md, "What the system knows of a person": months with a paid employee-scheme record from a Jiangsu region (32xxxx),
        each month once however many types or cities paid it."""
        return self.employee_months

    def records(self) -> Iterator[tuple[int, str, str, bool]]:
        """(month index, insurance type, region code, paid) of every record in force, oldest month
        first: what an explanation lists (services/rules/explain.py), never the hot path."""
        for m, lo, hi, _ in _SLOT.iter_unpack(self.buf):
            v = lo | hi << 16
            yield m, TYPES[(v >> 1) & 7], f"{v >> 4:06d}", bool(v & 1)

    def paid_medical_months(self) -> list[int]:
        """Month indexes with a paid employee medical (310) record, any region."""
        return sorted({m for m, t, _ in self._paid() if t == _MEDICAL})

    def paid_medical_in(self, first: int, last: int) -> bool:
        """A paid 310 slot in month indexes first..last (scanned from the newest month back)."""
        i = len(self)
        while i and (m := self._month_at(i - 1)) >= first:
            i -= 1
            if m <= last:
                t, _, paid, _ = self._slot(i)
                if paid and t == _MEDICAL:
                    return True
        return False

    def paid_employee_in(self, first: int, last: int) -> bool:
        """A paid employee-scheme slot (110 120 210 310 410 510, any region) in month indexes
        first..last (scanned from the newest month back: recent months are asked for)."""
        i = len(self)
        while i and (m := self._month_at(i - 1)) >= first:
            i -= 1
            if m <= last:
                t, _, paid, _ = self._slot(i)
                if paid and t in _EMPLOYEE:
                    return True
        return False

    def worked_around(self, month: int, floor: int) -> tuple[int | None, list[int]]:
        """The months worked (a paid employee-scheme slot, any region) that can still move the
        unemployment window of month index ``month`` or later: the latest one before ``month``
        and not before ``floor`` (None if there is none), and those from ``month`` on, oldest
        first. Scanned from the newest month back, stopping at the first month worked before
        ``month``: older months no longer matter."""
        later: list[int] = []
        i = len(self)
        while i and (m := self._month_at(i - 1)) >= floor:
            i -= 1
            t, _, paid, _ = self._slot(i)
            if paid and t in _EMPLOYEE:
                if m < month:
                    return m, later[::-1]
                if not later or later[-1] != m:
                    later.append(m)
        return None, later[::-1]

    def pack(self) -> tuple[bytes, bytes]:
        if self.old_packed is None:
            self.old_packed = array("Q", sorted(self.old)).tobytes()
        return bytes(self.buf), self.old_packed


# -- storage: recent months with the picture, older months apart -------------------------------
ARCHIVE_KEEP_MONTHS = 6  # months left with the picture when older ones are moved apart


def first_slot_from(packed: bytes, month: int) -> int:
    """The byte offset of the first slot of month index ``month`` or later (slots are sorted)."""
    lo, hi = 0, len(packed) // _SIZE
    while lo < hi:
        mid = (lo + hi) // 2
        o = mid * _SIZE
        if (packed[o] | packed[o + 1] << 8) < month:
            lo = mid + 1
        else:
            hi = mid
    return lo * _SIZE


def split_for_storage(packed: bytes, archived: int, archive_dirty: bool) -> tuple[int, int, bool]:
    """How a person's slots are stored: the months before ``archived`` apart, the rest with the
    picture. Returns (archived, byte offset of the first slot kept with the picture, whether the
    part stored apart must be written).

    The boundary moves in steps: once the picture holds twice ``ARCHIVE_KEEP_MONTHS`` months or
    more, every month but the last ``ARCHIVE_KEEP_MONTHS`` is moved apart. So a month's records
    rewrite the picture's few recent months, and the part apart is rewritten about once every
    ``ARCHIVE_KEEP_MONTHS`` months (or when a record corrects a month in it)."""
    if packed:
        newest = packed[-_SIZE] | packed[-_SIZE + 1] << 8
        if newest - archived + 1 >= 2 * ARCHIVE_KEEP_MONTHS:
            archived = newest - ARCHIVE_KEEP_MONTHS + 1
            archive_dirty = True
    return archived, first_slot_from(packed, archived) if archived else 0, archive_dirty
