"""A picture as stored (``ppl:{pN}``, its older months apart in ``arc:{pN}``) back into a ``Person``.

One definition for the decider (``services/decider/worker.py``) and for the readers that explain a
decision (``services/outlets/explain.py``): the picture's blob, with the months stored apart put
back in front of its own. Both hashes are in the partition's slot and change together in one
``pb_commit``, so a reader takes both in one MULTI/EXEC (``read``): two separate reads could straddle
a commit that moved months from one to the other.
"""

from __future__ import annotations

import msgspec

from schemas.picture import PICTURE_SCHEMA_VERSION, Person
from services.runtime import topology as t

decoder = msgspec.msgpack.Decoder(Person)


class NewerPicture(RuntimeError):
    """A stored picture of a newer schema version: deciding it here would lose what this release
    cannot read, so the decider stops instead (and nothing explains it)."""


def person_of(key: bytes, blob: bytes, archive: bytes | None) -> Person:
    """The stored picture of pseudonym ``key`` with all its contribution slots."""
    person = decoder.decode(blob)
    if person.v > PICTURE_SCHEMA_VERSION:
        raise NewerPicture(
            f"the picture {key.hex()} was written by a newer release (picture schema "
            f"v{person.v}; this one knows v{PICTURE_SCHEMA_VERSION}): stop this decider, run the newer one")
    if person.archived and archive:
        person.contrib = archive + person.contrib
    return person


async def read(r, p: int, key: bytes) -> Person | None:
    """The picture of pseudonym ``key`` in partition ``p`` as last committed; None if there is none."""
    async with r.pipeline(transaction=True) as pipe:
        pipe.hget(t.people(p), key)
        pipe.hget(t.archive(p), key)
        blob, archive = await pipe.execute()
    return person_of(key, blob, archive) if blob else None
