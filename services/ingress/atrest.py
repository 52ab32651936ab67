"""The last step of a normalizer: an event as it may rest on a partition stream.

The person's ID number is replaced by the person's keyed pseudonym (the key of the picture: the
decider needs no ID to find it) and by the ID sealed under the data key (the decider opens it
only when a decision must name the subject); a child's ID by the child's sealed ID and birth
date. Names never get this far: the normalizers do not copy them into events.

Sealing costs a few microseconds, pseudonyms about one: both are kept per ID number for the
people met recently (a contribution file holds several records per person), so the monthly burst
seals each person about once. Re-using one sealed value for one ID reveals no more than the
pseudonym next to it does (that two events are the same person's).
"""

from __future__ import annotations

from schemas.events import Event, SchoolApplied
from services.ingress.fields import birth_date
from services.runtime.identity import Pseudonymizer
from services.runtime.sealing import DataKeys

CACHE = 200_000  # ID numbers whose pseudonym and sealed value are kept (~200 bytes each)


class Protector:
    def __init__(self, pseudonym: Pseudonymizer, keys: DataKeys, cache: int = CACHE) -> None:
        self.pseudonym = pseudonym
        self.keys = keys
        self.cache = cache
        self._known: dict[str, tuple[bytes, bytes]] = {}

    def person(self, id_number: str) -> tuple[bytes, bytes]:
        """ID number -> (pseudonym, sealed ID)."""
        known = self._known.get(id_number)
        if known is None:
            if len(self._known) >= self.cache:
                self._known.clear()  # a new month's people: start again
            known = self._known[id_number] = (self.pseudonym(id_number), self.keys.seal(id_number))
        return known

    def protect(self, ev: Event) -> Event:
        """Replace the clear ID numbers of ``ev`` (in place); an event already protected (or a
        ``DateTick``, which names a pseudonym only) is left as it is."""
        if ev.person_id:
            ev.pseudonym, ev.sealed_id = self.person(ev.person_id)
            ev.person_id = ""
        if isinstance(ev, SchoolApplied) and ev.child_id:
            ev.child_born = birth_date(ev.child_id)
            ev.child_sealed = self.keys.seal(ev.child_id)
            ev.child_id = ""
        return ev
