"""A person's picture: everything the rules need to know of one person, and what was last told.

Kept by the decider as one msgpack blob per person in the hash ``ppl:{pN}`` (field: the
person's pseudonym), with the older months of contributions apart in ``arc:{pN}``. Compact on
purpose (13 bytes per contribution record): at 2.5 million people the picture is most of Redis's
memory. Dates are proleptic ordinals (``date.toordinal()``); ``array_like`` drops field names
from the blob.
"""

from __future__ import annotations

import msgspec

# 2: older months of contributions stored apart (``archived``, ``arc:{pN}``). A decider refuses a
# picture of a newer version than it knows: writing it back would drop what it cannot read.
# 3: no ID number in clear: the person's ID sealed in ``sid``, an application's subject in
# ``subject`` (and a child's birth date in ``born``); ``id`` and ``subject_id`` are read from
# pictures of versions 1 and 2 and emptied when the decider next writes the picture.
PICTURE_SCHEMA_VERSION = 3


class Permit(msgspec.Struct, array_like=True):
    """The person's current residence permit (居住证)."""

    number: str
    district: str
    valid_from: int  # ordinal of qfrq
    valid_until: int  # ordinal of yxqz, inclusive
    sector: str | None = None
    cancelled: bool = False


class Outcome(msgspec.Struct, array_like=True):
    """The last decision published for one entitlement (and application) of this person."""

    status: str  # eligible | ineligible | revoked
    district: str | None
    priority: bool
    version: int


class Application(msgspec.Struct, array_like=True):
    """An application (school place or housing) decided on this person's situation."""

    entitlement: str
    id: str
    subject_id: str  # the child (education) or the applicant (housing), in clear: pictures before v3 only
    district: str
    applied_on: int  # ordinal
    stage: str | None = None  # education: XX | CZ
    household_size: int = 0  # housing
    monthly_income: float = 0.0
    owns_home: bool = False
    occupation: str | None = None
    last: Outcome | None = None
    # Past its closing day (31 December of its year) and off the roster: decided no more. Last
    # field, with a default: pictures written before it read as open, and close at the next tick.
    closed: bool = False
    subject: bytes = b""  # the subject's ID, sealed (services.runtime.sealing); v3
    born: int = 0  # education: ordinal of the child's birth date (from the ID; the age rules); v3


class Person(msgspec.Struct, array_like=True):
    v: int
    id: str = ""  # the ID number in clear: pictures before v3 only (see ``sid``)
    permit: Permit | None = None
    settled_district: str | None = None
    settled_on: int | None = None  # ordinal of the LH date
    seen: list[int] = []  # fingerprints of permit-feed record ids already applied
    contrib: bytes = b""  # packed contribution slots, see services.picture.contributions
    old_fps: bytes = b""  # fingerprints of contribution records that were later replaced
    apps: dict[str, Application] = {}
    roster: dict[str, Outcome] = {}  # roster entitlement -> last published outcome
    figs: list[str] = []  # city figures this person is counted in now
    emp_months: int = -1  # recognised employee months in contrib; -1: not yet counted
    due: int = 0  # the stored next-change ordinal in due:{pN}; 0: none
    # Contribution slots of months (index y*12+m-1) before this one are stored apart, in the
    # hash ``arc:{pN}``, and rewritten only when they change; in memory ``contrib`` holds all
    # slots. 0: nothing stored apart.
    archived: int = 0
    sid: bytes = b""  # the person's ID, sealed (services.runtime.sealing); v3
    # Ordinal of the birth date in the ID (the working ages of （九）); 0: not read yet. Last
    # field, with a default: a picture written before it reads as 0, and the decider fills it from
    # the sealed ID the first time a rule asks (``Picture.birth_date``). A release that does not
    # know it drops it when it writes the picture back: it is read again the same way.
    born: int = 0
