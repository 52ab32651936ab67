"""``permitbus rekey``: re-seal every picture under the current data key.

After a new data key is made current (``PERMITBUS_DATA_KEY`` / ``PERMITBUS_DATA_KEY_ID``, the old
one moved to ``PERMITBUS_DATA_KEYS``), what the old key sealed is still opened by its id; the
deciders re-seal every picture they write. This pass re-seals the others, partition by
partition, while the deciders run: it reads a chunk of pictures (HSCAN), re-seals those that need
it (also the clear IDs of pictures stored before schema 3), and writes each back only if the
decider has not replaced it meanwhile (``pb_reseal`` compares; a picture the decider wrote is
already sealed under the current key). When it reports nothing left under an older key, that
key can go.

Only the sealed values change: the picture's key (the pseudonym), its partition, its months
stored apart, its due date and the figures stay as they are.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import msgspec

from schemas.picture import Person
from services.picture.picture import seal_at_rest
from services.runtime import topology as t
from services.runtime.redis import fn
from services.runtime.sealing import DataKeys, key_id

_decoder = msgspec.msgpack.Decoder(Person)
_encoder = msgspec.msgpack.Encoder()
CHUNK = 1000


@dataclass
class Rekeyed:
    pictures: int = 0  # pictures read
    resealed: int = 0  # pictures written back under the current key
    raced: int = 0  # changed by a decider meanwhile (already sealed under the current key)
    seconds: float = 0.0
    by_key: Counter = field(default_factory=Counter)  # sealed values by key id, after the pass


def sealed_values(person: Person) -> list[bytes]:
    return [person.sid, *(app.subject for app in person.apps.values())]


async def rekey(r, keys: DataKeys, partitions: Iterable[int], chunk: int = CHUNK, progress=None) -> Rekeyed:
    """One pass over the pictures of ``partitions``; pictures a decider replaced meanwhile are
    counted in ``raced`` (the decider sealed them under the current key)."""
    out = Rekeyed()
    started = time.monotonic()
    for p in partitions:
        async for batch in _chunks(r, t.people(p), chunk):
            args: list = []
            for k, blob in batch:
                person = _decoder.decode(blob)
                out.pictures += 1
                if seal_at_rest(person, keys):
                    args += [k, blob, _encoder.encode(person)]
                out.by_key.update(key_id(v) for v in sealed_values(person) if v)
            if args:
                n = await r.fcall(fn("pb_reseal"), 1, t.people(p), *args)
                out.resealed += n
                out.raced += len(args) // 3 - n
        if progress:
            progress(p, out)
    out.seconds = time.monotonic() - started
    return out


async def _chunks(r, key: str, chunk: int):
    cursor = 0
    while True:
        cursor, fields = await r.hscan(key, cursor, count=chunk)
        if fields:
            yield list(fields.items())
        if cursor == 0:
            return


async def remaining(r, keys: DataKeys, partitions: Iterable[int]) -> Counter:
    """Sealed values (and clear IDs, under key id 0) by key id, over every picture: what a
    deployment still needs each key for."""
    found: Counter = Counter()
    for p in partitions:
        async for batch in _chunks(r, t.people(p), CHUNK):
            for _, blob in batch:
                person = _decoder.decode(blob)
                found.update(key_id(v) for v in sealed_values(person) if v)
                found[0] += bool(person.id) + sum(bool(a.subject_id) for a in person.apps.values())
    return +found
