"""The last step of a normalizer: an event as it may rest on a partition stream.

The person's ID number is replaced by the person's keyed pseudonym (the key of the picture: the
decider needs no ID to find it) and, on every event but a contribution, by the ID sealed under
the data key, which the picture keeps and the decider opens only when a decision must name the
subject; a child's ID by the child's sealed ID and birth date. Names never get this far: the
normalizers do not copy them into events.

Contributions carry no sealed ID (the monthly burst is millions of them): no decision is ever
about a person known from contributions alone, since every roster rule needs a valid permit or a
settlement (docs/policy.md), which come from the permit feed, whose events carry the sealed ID; the
picture takes it from the first event that has one. Pseudonyms (about a microsecond each) are kept
per ID number for the people met recently (a contribution file holds several records a person).
"""

from __future__ import annotations

from schemas.events import ContributionRecorded, Event, SchoolApplied
from schemas.ids import birth_date
from services.runtime.identity import Pseudonymizer
from services.runtime.sealing import DataKeys

CACHE = 200_000  # ID numbers whose pseudonym is kept (~150 bytes each)


class Protector:
    """Turns events with clear ID numbers into events fit to rest (used by the normalizers, and by
    the decider for events an earlier release wrote). Keeps clear IDs in memory only."""

    def __init__(self, pseudonym: Pseudonymizer, keys: DataKeys, cache: int = CACHE) -> None:
        self.pseudonymize = pseudonym
        self.keys = keys
        self.cache = cache
        self._known: dict[str, bytes] = {}

    def pseudonym(self, id_number: str) -> bytes:
        known = self._known.get(id_number)
        if known is None:
            if len(self._known) >= self.cache:
                self._known.clear()  # a new month's people: start again
            known = self._known[id_number] = self.pseudonymize(id_number)
        return known

    def protect_contribution(self, ev: ContributionRecorded) -> ContributionRecorded:
        """``protect`` for the monthly burst's records (no sealed ID, no child): its hot path."""
        pid = ev.person_id
        ev.pseudonym = self._known.get(pid) or self.pseudonym(pid)
        ev.person_id = ""
        return ev

    def protect(self, ev: Event) -> Event:
        """Replace the clear ID numbers of ``ev`` (in place); an event already protected (or a
        ``DateTick``, which names a pseudonym only) is left as it is."""
        pid = ev.person_id
        if pid:
            ev.pseudonym = self._known.get(pid) or self.pseudonym(pid)  # (inlined: once per record)
            if type(ev) is not ContributionRecorded:
                ev.sealed_id = self.keys.seal(pid)
            ev.person_id = ""
        if isinstance(ev, SchoolApplied) and ev.child_id:
            ev.child_born = birth_date(ev.child_id)
            ev.child_sealed = self.keys.seal(ev.child_id)
            ev.child_id = ""
        return ev
