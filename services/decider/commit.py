"""A decided batch as ``pb_commit`` arguments: each changed person's share (picture, months
stored apart, due date, figure deltas), packed, and the calls that carry the shares with the
outbox entries.

Bounded by bytes: arguments past ``lua_call_bytes`` go in several calls, people grouped in order,
each person's share in the same call as its outbox entries, and only the last call moves the
position. A crash between two calls then loses and repeats nothing: the people already written
have their events applied (duplicates when the batch is read again) and their decisions in the
outbox; the others are decided again. One person's share is never split (its size is bounded by
the events of one batch).
"""

from __future__ import annotations

from typing import NamedTuple

import msgspec

from schemas.picture import PICTURE_SCHEMA_VERSION
from services.decider.emit import figure_keys, next_change
from services.picture.picture import Picture, seal_at_rest
from services.runtime import topology as t
from services.runtime.redis import msgpack_strings

_person_encoder = msgspec.msgpack.Encoder()
RECHECK_FIGURES, RECHECK_DUE = 1, 2


class Share(NamedTuple):
    """One person's part of a commit. A commit split into several calls keeps each share whole
    and with the person's outbox entries: a picture is never stored without the decisions it led
    to (they would be lost: the events are duplicates when the batch is read again)."""
    state: bytes
    archive: bytes | None
    due: list
    figs: dict[str, int] | None


def pack(key: bytes, pic: Picture, flags: int, day) -> Share:
    """Recompute what ``flags`` says may have changed (city figures, next-change date) and pack
    the picture as it is to be stored (recent months with it, older ones apart)."""
    person = pic.person
    figs = None
    new_figs = figure_keys(pic, day) if flags & RECHECK_FIGURES else person.figs
    if new_figs != person.figs:
        figs = {}
        for k in person.figs:
            figs[k] = figs.get(k, 0) - 1
        for k in new_figs:
            figs[k] = figs.get(k, 0) + 1
        person.figs = new_figs
    if flags & RECHECK_DUE:
        nxt = next_change(pic, day)
        due = nxt.toordinal() if nxt else 0
    else:
        due = person.due
    dues = _NO_DUE
    if due != person.due:  # due:{pN} is written only when the date moves
        dues = [key, due or "-"]
        person.due = due
    pic.freeze()
    if pic.keys is not None:
        seal_at_rest(person, pic.keys)  # a picture of an earlier schema, or sealed under an older key
    split, archive = pic.storage_split()
    full = person.contrib
    person.v = PICTURE_SCHEMA_VERSION
    person.contrib = full[split:]  # the recent months are stored with the picture
    try:
        state = _person_encoder.encode(person)
    finally:
        person.contrib = full
    return Share(state, archive, dues, figs)


_NO_DUE: list = []


def _entry_bytes(entry: list) -> int:
    return sum(len(x) + 16 if isinstance(x, (bytes, str)) else 16 for x in entry)


def calls(pos: bytes, new_pos: bytes, shares: dict[bytes, Share], outbox: list[tuple[bytes, list]],
                  dead: list[bytes], limit: int) -> list[list]:
    """pb_commit's arguments for a decided batch, as one call, or as several when they would pass
    ``limit`` bytes: people are grouped in order, each person's share with its outbox entries
    (entries of no person, the dead letters, go last), and only the last call moves the position
    and clears the dead events' attempts. A person larger than ``limit`` gets a call alone."""
    total = 0
    for share in shares.values():
        total += len(share.state) + (len(share.archive) if share.archive else 0) + 64
    for _, entry in outbox:
        total += _entry_bytes(entry)
    if total <= limit:  # the usual case: one call
        return [_args(pos, new_pos, shares.items(), [e for _, e in outbox], dead)]
    sizes: dict[bytes, int] = {}
    for k, share in shares.items():
        sizes[k] = len(share.state) + (len(share.archive) if share.archive else 0) + 64
    for k, entry in outbox:
        sizes[k] = sizes.get(k, 0) + _entry_bytes(entry)
    if b"" in sizes:
        sizes[b""] = sizes.pop(b"")  # last
    parts: list[list[bytes]] = []
    size = limit + 1
    for k, n in sizes.items():
        if size + n > limit:
            parts.append([])
            size = 0
        parts[-1].append(k)
        size += n
    calls = []
    for i, part in enumerate(parts):
        final = i == len(parts) - 1
        members = set(part)
        calls.append(_args(pos, new_pos if final else pos, [(k, shares[k]) for k in part if k in shares],
                                  [e for k, e in outbox if k in members], dead if final else []))
    return calls


def _args(pos: bytes, new_pos: bytes, shares, entries: list[list], dead: list[bytes]) -> list:
    states: list = []
    archives: list = []
    dues: list = []
    figs: dict[str, int] = {}
    for k, share in shares:
        states += (k, share.state)
        if share.archive is not None:
            archives += (k, share.archive)
        if share.due:
            dues += share.due
        if share.figs:
            for f, v in share.figs.items():
                figs[f] = figs.get(f, 0) + v
    figs = {f: v for f, v in figs.items() if v}
    return [
        pos, new_pos,
        msgpack_strings(states),
        msgpack_strings(archives) if archives else b"",
        len(dues) // 2, *dues,
        len(figs), *[x for kv in figs.items() for x in kv],
        len(entries), *[x for e in entries for x in e],
        len(dead), *dead,
    ]


def keys(p: int) -> list[str]:
    keys = [t.decider_meta(p), t.people(p), t.due(p), t.figures(p), t.evt(p), t.attempts(p), t.archive(p)]
    return keys + [t.outbox(p, target) for target in t.RELAY_TARGETS]
