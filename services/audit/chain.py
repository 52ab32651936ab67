"""The audit chain: what an audit entry holds, and what its hash covers. Pure and keyless.

Every decision delivered to an outlet is appended, in the same ``pb_relay`` step, to the audit
stream of (outlet, partition) (``topology.audit``), under the outlet entry's own id, with three
fields in this order:

* ``prev``: the hash of the entry before it in its stream (32 bytes; the stream's genesis hash
  for its first entry ever);
* ``who``: the subject's keyed pseudonym (12 bytes; services/runtime/identity.py), by which a
  person's disclosures are found (``topology.audit_index``);
* ``dec``: the decision exactly as the outlet received it, sealed under the data key
  (``DataKeys.seal_audit``): no ID number and no name rests in the audit log in clear
  (docs/contract.md, "Personal data at rest").

An entry's hash is SHA-256 over a fixed prefix and its fields as stored, each name and value
preceded by its length (``entry_hash``): so ``permitbus audit verify`` recomputes every hash from
what Redis holds, with no key, and an entry altered, inserted or removed breaks the chain at that
point. The head of each chain (its last hash and entry id) is kept beside it
(``topology.audit_head``), so that entries removed at the end show too.

One chain per relay position (outlet and partition), not one per outlet: the position's
compare-and-set already makes the holder of a partition's lease its only writer, so chains need
no coordination between relays, and a relay that lost its lease (its position moved) can write
nothing, hashes included.

The hashes are computed by the relay (Redis's Lua has SHA-1 only): ``pb_relay`` checks that the
chain it extends starts at the stored head and stores the new one. What the hash does not cover is
the entry's id (Redis gives the outlet entry its id inside the step): the order of the chain binds
each entry between its neighbours, ``verify`` checks ids against the outlet while the outlet still
holds them, and the signed heads (services/audit/signing.py) name ids.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import AsyncIterator, Iterable

from services.runtime.redis import stream_id

PREFIX = b"permitbus:audit:v1\n"
GENESIS = b"permitbus:audit:genesis:v1\n"
FIELDS = (b"prev", b"who", b"dec")
_LEN = struct.Struct(">I")


def genesis(stream: str) -> bytes:
    """The ``prev`` of a stream's first entry ever: bound to the stream's name, so that a chain
    cannot be passed off as another stream's."""
    return hashlib.sha256(GENESIS + stream.encode()).digest()


def entry_hash(fields: Iterable[tuple[bytes, bytes]]) -> bytes:
    """SHA-256 of ``PREFIX`` then, per field as stored, ``len(name) name len(value) value``
    (lengths as 4-byte big-endian): unambiguous whatever bytes the values hold."""
    parts = [PREFIX]
    for name, value in fields:
        parts += (_LEN.pack(len(name)), name, _LEN.pack(len(value)), value)
    return hashlib.sha256(b"".join(parts)).digest()  # one C call: the relay hashes every decision


def link(prev: bytes, who: bytes, dec: bytes) -> bytes:
    """The hash of the entry ``pb_relay`` writes with these fields."""
    return entry_hash(((b"prev", prev), (b"who", who), (b"dec", dec)))


def refs(value: bytes | None) -> list[tuple[bytes, int]]:
    """An audit index value (``<id>@<p> <id>@<p> …``) -> [(audit entry id, partition)], oldest first."""
    out = []
    for ref in (value or b"").split():
        eid, _, p = ref.partition(b"@")
        out.append((eid, int(p)))
    return out


def partitions(heads: dict[bytes, bytes], configured: int) -> list[int]:
    """The partitions whose chains an outlet has: those configured (``PERMITBUS_PARTITIONS``) and
    any its heads name (a tool run with another setting still sees every chain)."""
    return sorted(set(range(configured)) | {int(f) for f in heads if f.isdigit()})


async def pages(r, key: str, start: bytes | str, end: bytes | str, count: int = 5000
                ) -> AsyncIterator[tuple[bytes, dict]]:
    """Entries of stream ``key`` from ``start`` to ``end`` (XRANGE bounds: ``(`` excludes), a page of
    ``count`` at a time, for verify and export."""
    lo = start
    while True:
        rows = await r.xrange(key, lo, end, count=count)
        for row in rows:
            yield row
        if len(rows) < count:
            return
        ms, seq = stream_id(rows[-1][0])
        lo = f"{ms}-{seq + 1}"
