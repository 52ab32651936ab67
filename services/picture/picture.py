"""The working view of one person during a batch: the stored ``Person`` plus derived facts.

The facts here are the vocabulary of docs/policy.md ("What the system knows of a person"); the
rules in ``services.rules`` read them and nothing else.
"""

from __future__ import annotations

import datetime as dt

from schemas.picture import Application, Permit, Person
from schemas.ids import birth_date
from services.picture.contributions import Contributions, month_index, split_for_storage
from services.runtime.sealing import DataKeys

_LAST_DAY = dt.date.max.toordinal()


class Picture:
    __slots__ = ("person", "_contrib", "keys")

    def __init__(self, person: Person, keys: DataKeys | None = None) -> None:
        self.person = person
        self._contrib: Contributions | None = None
        self.keys = keys  # opens the sealed IDs, when a decision names its subject

    @property
    def id(self) -> str:
        """The person's ID number: opened only when a decision names the person."""
        p = self.person
        if p.sid:
            return self.keys.open(p.sid)
        if p.id:
            return p.id
        raise LookupError("a decision about a person known from contributions only (no sealed ID): "
                          "every roster rule needs a permit or a settlement first")

    def subject_of(self, app: Application) -> str:
        """The ID number of an application's subject (the child, the applicant)."""
        return self.keys.open(app.subject) if app.subject else app.subject_id

    @property
    def contributions(self) -> Contributions:
        if self._contrib is None:
            p = self.person
            self._contrib = Contributions(p.contrib, p.old_fps, p.emp_months, p.archived)
        return self._contrib

    # -- facts -----------------------------------------------------------------------------
    def valid_permit(self, day: dt.date) -> Permit | None:
        """docs/policy.md, "What the system knows of a person": a permit, not cancelled, with qfrq ≤ D ≤ yxqz."""
        p = self.person.permit
        if p is None or p.cancelled:
            return None
        d = day.toordinal()
        return p if p.valid_from <= d <= p.valid_until else None

    @property
    def settled(self) -> bool:
        return self.person.settled_district is not None

    @property
    def settlement_district(self) -> str | None:
        return self.person.settled_district

    @property
    def has_contributions(self) -> bool:
        return self._contrib is not None or bool(self.person.contrib)

    def recognised_employee_months(self) -> int:
        return self.contributions.recognised_months() if self.has_contributions else 0

    def paid_employee_medical_near(self, day: dt.date, months: int) -> bool:
        """A paid 310 record (any region) for D's month or the months before it, ``months`` in all
        (the window of ``services/rules/medins.py``, a parameter)."""
        if not self.has_contributions:
            return False
        d = month_index(day.year * 100 + day.month)
        return self.contributions.paid_medical_in(d - months + 1, d)

    def paid_employee_in(self, first: int, last: int) -> bool:
        """A paid employee-scheme record (110 120 210 310 410 510, any region) for a month of
        indexes first..last (``month_index``)."""
        return self.has_contributions and self.contributions.paid_employee_in(first, last)

    def worked_around(self, month: int, floor: int) -> tuple[int | None, list[int]]:
        """See ``Contributions.worked_around``: the last month worked before month index
        ``month`` (not before ``floor``), and the months worked from ``month`` on."""
        return self.contributions.worked_around(month, floor) if self.has_contributions else (None, [])

    @property
    def birth_date(self) -> dt.date | None:
        """The birth date in the person's ID number; None for a person known from contributions
        only (they carry no ID). Read from the sealed ID once, then kept in the picture."""
        p = self.person
        if not p.born:
            if not p.sid and not p.id:
                return None
            p.born = birth_date(self.id).toordinal()
        return dt.date.fromordinal(p.born)

    def age_on(self, day: dt.date) -> int | None:
        """Whole years of age on ``day`` (None: birth date unknown)."""
        born = self.birth_date
        if born is None:
            return None
        return day.year - born.year - ((day.month, day.day) < (born.month, born.day))

    def latest_sector(self) -> str | None:
        p = self.person.permit
        return p.sector if p is not None else None

    # -- when the outcome may change with no event -----------------------------------------
    def next_change(self, day: dt.date) -> dt.date | None:
        """The first date after ``day`` on which the permit starts or stops being valid by itself.
        (The rules add their own dates: ``services/decider/emit.py``, ``next_change``.)"""
        d = day.toordinal()
        candidates: list[int] = []
        p = self.person.permit
        if p is not None and not p.cancelled:
            if d < p.valid_from:
                candidates.append(p.valid_from)
            if d <= p.valid_until:
                candidates.append(p.valid_until + 1)
        # a permit valid until 9999-12-31 ends on no date the calendar has: it never changes by itself
        candidates = [c for c in candidates if c <= _LAST_DAY]
        return dt.date.fromordinal(min(candidates)) if candidates else None

    def freeze(self) -> Person:
        c = self._contrib
        if c is not None and c.dirty:
            self.person.contrib, self.person.old_fps = c.pack()
            self.person.emp_months = c.employee_months
            c.dirty = False
        return self.person

    def storage_split(self) -> tuple[int, bytes | None]:
        """After ``freeze``: where the slots stored with the picture begin in ``person.contrib``
        (the earlier months go to ``arc:{pN}``), and the bytes to store there now (None: what is
        stored there is still right). Moves ``person.archived`` on when it is time."""
        person, c = self.person, self._contrib
        before = person.archived
        archived, split, write = split_for_storage(person.contrib, before, c is not None and c.archive_dirty)
        person.archived = archived
        if c is not None:
            c.archived, c.archive_dirty = archived, False
        if write and not split and not before:
            write = False  # nothing to store apart, and nothing was
        return split, person.contrib[:split] if write else None


def seal_at_rest(person: Person, keys: DataKeys) -> bool:
    """Make a picture fit to be stored (docs/contract.md, "Personal data at rest"): every ID number
    sealed under the current data key. Seals the clear IDs of a picture of schema 1 or 2 and
    re-seals what an older data key sealed; True if anything changed. Cheap when nothing has to:
    one byte compared per sealed value."""
    if not person.id and not person.apps and person.sid and person.sid[0] == keys.current_id:
        return False  # the common case, first: a v3 picture without applications, sealed under the current key
    changed = False
    if person.id:
        person.sid, person.id, changed = keys.seal(person.id), "", True
    elif person.sid and not keys.is_current(person.sid):
        person.sid, changed = keys.reseal(person.sid), True
    for app in person.apps.values():
        if app.subject_id:
            if app.entitlement.startswith("education."):
                app.born = birth_date(app.subject_id).toordinal()
            app.subject, app.subject_id, changed = keys.seal(app.subject_id), "", True
        elif app.subject and not keys.is_current(app.subject):
            app.subject, changed = keys.reseal(app.subject), True
    return changed
