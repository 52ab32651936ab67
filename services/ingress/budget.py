"""How many ingress entries the normalizer reads at a time: bounded by bytes, not only by count.

Redis reads streams by count. ``batch_size`` (2,500) records of 150 bytes are 375 KB; of 64 KiB
they are 160 MB, held three times over (the batch in hand, the one read ahead, the one being
read) and copied again into the quarantine pipeline. So the count of the next read is what the
byte budget allows at the mean entry size seen in the last batch, at most ``batch_size``; after
an idle read (a burst begins) it starts from one entry and at most doubles from one batch to the
next: a burst of large records (64 KiB, or 10 MB ones that will be quarantined ``TOO_LARGE``) is
read in bounded batches from its first one, and ordinary records reach the full batch size after
a dozen reads of a few milliseconds.

What it does not bound: a read that meets much larger entries than the batch before it (a mix
that changes from small to large records without a pause) holds at most ``count`` of them once;
the next read is bounded again.
"""

from __future__ import annotations

from itertools import chain
from operator import itemgetter


class ReadBudget:
    def __init__(self, max_count: int, budget_bytes: int) -> None:
        self.max_count = max_count
        self.budget_bytes = budget_bytes
        self.current = 1

    def count(self) -> int:
        """Entries to ask for in the next read."""
        return self.current

    def saw(self, entries: int, size: int) -> None:
        """A batch of ``entries`` entries and ``size`` bytes was read."""
        if entries <= 0:
            return
        fits = self.budget_bytes * entries // max(1, size)
        self.current = max(1, min(self.max_count, fits, 2 * max(self.current, entries)))

    def idle(self) -> None:
        """A read found nothing: the next burst starts small again."""
        self.current = 1


def batch_bytes(entries: list[tuple[bytes, dict[bytes, bytes]]]) -> int:
    """The bytes of the entries' field names and values (ids aside). On the hot path: C calls
    only (a generator over the entries cost 0.36 us an entry, this 0.15)."""
    maps = list(map(itemgetter(1), entries))
    return (sum(map(len, chain.from_iterable(map(dict.keys, maps))))
            + sum(map(len, chain.from_iterable(map(dict.values, maps)))))
