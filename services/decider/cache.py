"""The pictures a decider keeps between batches, so that a person met again is neither read from
Redis nor decoded again, nor its contribution slots unpacked again (BENCHMARKS.md: the monthly
burst meets each person once a month).

What is kept is exactly what the worker's last successful commit of the partition left in Redis,
so it is valid only while the stored position is the one this worker committed. The worker drops
a partition's entries when it finds the position moved by someone else, loses a commit, fails
part-way through a batch (pictures are changed in place), or re-reads its positions (a new share
of partitions, an outage, an emptied Redis). Bounded: at most ``limit`` pictures, shared evenly
over the partitions; the least recently used go first.
"""

from __future__ import annotations

from itertools import islice

from services.picture.picture import Picture


class PictureCache:
    def __init__(self, limit: int, partitions: int) -> None:
        self.per_partition = limit // max(partitions, 1)
        self.parts: dict[int, dict[bytes, Picture]] = {}
        self.hits = 0  # pictures found here instead of read from Redis

    def __len__(self) -> int:
        return sum(len(d) for d in self.parts.values())

    def lookup(self, p: int, keys: list[bytes]) -> tuple[dict[bytes, Picture], list[bytes]]:
        """The pictures of ``keys`` held for partition ``p``, and the keys not held."""
        held = self.parts.get(p)
        if not held:
            return {}, keys
        found: dict[bytes, Picture] = {}
        missing: list[bytes] = []
        for k in keys:
            pic = held.get(k)
            if pic is None:
                missing.append(k)
            else:
                found[k] = pic
        self.hits += len(found)
        return found, missing

    def put(self, p: int, pictures: dict[bytes, Picture]) -> None:
        """Keep ``pictures`` as committed for ``p``; they become the most recently used."""
        if self.per_partition <= 0 or not pictures:
            return
        held = self.parts.setdefault(p, {})
        for k, pic in pictures.items():
            held.pop(k, None)
            held[k] = pic
        excess = len(held) - self.per_partition
        if excess > 0:
            for k in list(islice(held, excess)):
                del held[k]

    def drop(self, p: int) -> None:
        self.parts.pop(p, None)

    def clear(self) -> None:
        self.parts.clear()
