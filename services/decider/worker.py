"""The decider: reads the partition streams ``evt:{pN}`` from each partition's applied position,
folds the events into pictures, runs the rules, and commits the whole batch in one atomic step.

Exactly-once effect without consumer groups: the position a partition has applied up to is
stored with its state and moved by the same ``pb_commit`` call that writes pictures, outbox
entries, figures and due dates, and only if it still is where this worker read it. A crash
anywhere leads to the same batch being read and decided again from the same state; a second
worker on the same partition loses the compare-and-set and re-reads.

The pictures a successful commit wrote are kept in memory (``services.decider.cache``) and used
for the next batch instead of reading them back, as long as nothing says Redis holds another state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import msgspec
import redis.asyncio as aioredis

from schemas.decision import decision_encoder
from schemas.events import DateTick, Event, decode_event, open_envelope
from schemas.picture import PICTURE_SCHEMA_VERSION, Person
from services.decider.cache import PictureCache
from services.decider.emit import evaluate, figure_keys
from services.picture.fold import CONTRIBUTIONS, STORED, Quarantine, fold
from services.ingress.atrest import Protector
from services.picture.picture import Picture, seal_at_rest
from services.runtime import topology as t
from services.runtime.clock import Clock
from services.runtime.identity import Pseudonymizer, mask
from services.runtime.lease import PartitionShare, run_partitioned
from services.runtime.outage import Outage
from services.runtime.sealing import SealError
from services.runtime.redis import fn, msgpack_strings
from services.runtime.settings import Settings

log = logging.getLogger("permitbus.decider")

_person_decoder = msgspec.msgpack.Decoder(Person)
_person_encoder = msgspec.msgpack.Encoder()
OUTBOX_INDEX = {target: i + 1 for i, target in enumerate(t.RELAY_TARGETS)}
OUTLET_OF = {ent: o.stream for ent, o in t.OUTLETS.items()}
QUARANTINE = t.FEEDS["psb:permit"].quarantine
SHARE_REFRESH_S = 0.5
RECHECK_FIGURES, RECHECK_DUE = 1, 2


class NewerPicture(RuntimeError):
    """A stored picture of a newer schema version: deciding it here would lose what this release
    cannot read, so the decider stops instead."""


@dataclass
class PartitionBatch:
    p: int
    pos: bytes
    entries: list[tuple[bytes, dict[bytes, bytes]]]
    events: list[tuple[bytes, bytes]] = field(default_factory=list)  # (event id, encoded event), in order
    new_pos: bytes = b""
    args: list = field(default_factory=list)
    n_out: int = 0
    keep: dict[bytes, Person] = field(default_factory=dict)  # the pictures as committed, for the cache


class Decider:
    def __init__(
        self,
        r: aioredis.Redis,
        settings: Settings,
        clock: Clock,
        partitions: Iterable[int] | None = None,
        owner: str = "decider",
    ) -> None:
        self.r = r
        self.settings = settings
        self.clock = clock
        # Given partitions are owned statically; otherwise they are shared among live deciders.
        self.partitions = list(partitions) if partitions is not None else list(range(settings.partitions))
        self.share = None if partitions is not None else PartitionShare(r, "decider", owner, self.partitions)
        self.active: list[int] = [] if self.share else list(self.partitions)
        self.pseudonym = Pseudonymizer(settings.pseudonym_secret())
        self.keys = settings.data_keyring()
        self.protector = Protector(self.pseudonym, self.keys)  # events of releases that wrote IDs in clear
        self.pos: dict[int, bytes] = {}
        self.cache = PictureCache(settings.decider_cache, settings.partitions)
        # per partition: events given up on (dead-lettered) in the batch not yet committed, so that
        # a retry of the batch for another failing event does not count their attempts again
        self.dead: dict[int, dict[bytes, list]] = {}
        self.stopping = asyncio.Event()
        self.outage = Outage(log, "decider")
        self.applied = 0  # events applied by this worker (progress, benchmarks)
        self.decisions = 0

    async def run(self) -> None:
        log.info("decider up for partitions %s", _ranges(self.partitions))
        await run_partitioned(self, SHARE_REFRESH_S)

    def stop(self) -> None:
        self.stopping.set()

    async def _load_positions(self) -> None:
        self.cache.clear()  # kept pictures are as of positions this worker no longer trusts
        pipe = self.r.pipeline(transaction=False)
        for p in self.active:
            pipe.hget(t.decider_meta(p), "pos")
        for p, pos in zip(self.active, await pipe.execute()):
            self.pos[p] = pos or b"0-0"

    async def step(self, block_ms: int | None = None) -> int:
        """Read one batch from every owned partition, decide and commit it. Returns events read."""
        if not self.pos:
            await self._load_positions()
        streams = {t.evt(p): self.pos[p] for p in self.active}
        resp = await self.r.xread(streams, count=self.settings.decider_entries, block=block_ms)
        if not resp:
            return 0
        index = {t.evt(p).encode(): p for p in self.active}
        batches = [PartitionBatch(index[name], self.pos[index[name]], entries,
                                  [ev for eid, fields in entries for ev in _events_of(eid, fields)])
                   for name, entries in resp]
        n = sum(len(b.events) for b in batches)
        await self._decide_and_commit(batches)
        return n

    async def _decide_and_commit(self, batches: list[PartitionBatch]) -> None:
        decoded = {b.p: [(eid, _decode(data, self.protector)) for eid, data in b.events] for b in batches}
        owners = {b.p: [ev.pseudonym if ev is not None else b"" for _, ev in decoded[b.p]] for b in batches}
        keys = {b.p: [k for k in dict.fromkeys(owners[b.p]) if k] for b in batches}
        held = {b.p: self.cache.lookup(b.p, keys[b.p]) for b in batches}  # (kept pictures, keys to read)
        # The position and the pictures need not be read atomically: pb_commit applies the batch
        # only if the position is still the one read here, so pictures newer than it are harmless.
        pipe = self.r.pipeline(transaction=False)
        for b in batches:
            pipe.hget(t.decider_meta(b.p), "pos")
            if held[b.p][1]:
                _read_pictures(pipe, b.p, held[b.p][1])
        replies = iter(await pipe.execute())
        snapshots = [(next(replies) or b"0-0", (next(replies), next(replies)) if held[b.p][1] else ([], []))
                     for b in batches]
        day, now = self.clock.today(), self.clock.now()
        ready = []
        try:
            for b, (pos, blobs) in zip(batches, snapshots):
                if pos != b.pos:  # another worker moved this partition on: read again from there
                    log.info("partition %d moved on to %s by another worker", b.p, pos.decode())
                    self.pos[b.p] = pos
                    self.dead.pop(b.p, None)
                    self.cache.drop(b.p)
                    continue
                kept, read = held[b.p]
                persons = kept | _stored(read, *blobs)
                if await self._decide(b, decoded[b.p], owners[b.p], keys[b.p], persons, day, now):
                    ready.append(b)
            if not ready:
                return
            pipe = self.r.pipeline(transaction=False)
            for b in ready:
                keys_ = [t.decider_meta(b.p), t.people(b.p), t.due(b.p), t.figures(b.p), t.evt(b.p),
                         t.attempts(b.p), t.archive(b.p)]
                keys_ += [t.outbox(b.p, target) for target in t.RELAY_TARGETS]
                pipe.fcall(fn("pb_commit"), len(keys_), *keys_, *b.args)
            results = await pipe.execute()
        except BaseException:
            self.cache.clear()  # kept pictures may have been changed for a batch not committed
            raise
        for b, (ok, pos) in zip(ready, results):
            self.pos[b.p] = pos
            self.dead.pop(b.p, None)
            if ok:
                self.applied += len(b.events)
                self.decisions += b.n_out
                self.cache.put(b.p, b.keep)
            else:
                log.info("partition %d: commit lost to another worker at %s", b.p, pos.decode())
                self.cache.drop(b.p)

    async def _decide(self, b: PartitionBatch, events, owners: list[bytes], keys: list[bytes],
                      persons: dict[bytes, Person], day, now) -> bool:
        """Decide one partition's batch in memory from the stored pictures ``persons`` (changed in
        place); fill ``b.args`` for pb_commit. False: retry later.

        An event whose processing raises (a bug, not bad input: that was quarantined upstream) is
        retried with the batch; after ``max_attempts`` it goes to ``dlq:decider`` and the batch is
        decided again, from the pictures read again from Redis, without it.
        """
        dead = self.dead.setdefault(b.p, {})
        while True:
            pics = {k: Picture(person, self.keys) for k, person in persons.items()}
            failed = await self._decide_once(b, events, owners, pics, day, now, dead)
            if failed is None:
                return True
            self.cache.drop(b.p)  # the attempt changed pictures in place
            if failed is False:
                return False
            eid, entry = failed
            dead[eid] = entry
            persons = await self._read_stored(b.p, keys)

    async def _read_stored(self, p: int, keys: list[bytes]) -> dict[bytes, Person]:
        if not keys:
            return {}
        pipe = self.r.pipeline(transaction=False)
        _read_pictures(pipe, p, keys)
        return _stored(keys, *await pipe.execute())

    async def _decide_once(self, b: PartitionBatch, events, owners, pics: dict[bytes, Picture], day, now, dead):
        outbox: list = []
        dirty: dict[bytes, Picture] = {}
        recheck: dict[bytes, int] = {}  # per dirty picture: which derived values may have changed
        created: set[bytes] = set()  # pictures of people not stored (yet)
        for (eid, ev), (_, raw), key in zip(events, b.events, owners):
            if eid in dead:
                outbox += dead[eid]
                continue
            try:
                if ev is None:
                    raise ValueError("undecodable event")
                pic = pics.get(key)
                if pic is None:
                    if isinstance(ev, DateTick):
                        continue  # nobody to re-decide
                    pic = pics[key] = Picture(Person(v=PICTURE_SCHEMA_VERSION, sid=ev.sealed_id), self.keys)
                    created.add(key)
                touched = fold(pic, ev)
                if touched is None:
                    continue  # a duplicate: no effect
                if isinstance(touched, Quarantine):
                    outbox += _quarantine_entry(ev, touched)
                    continue
                dirty[key] = pic
                caused_by = [] if isinstance(ev, DateTick) else [ev.record_id]
                decisions = evaluate(pic, touched, day, now, caused_by)
                for d in decisions:
                    outbox += [OUTBOX_INDEX[OUTLET_OF[d.entitlement]], 1, b"payload", decision_encoder.encode(d)]
                recheck[key] = recheck.get(key, 0) | _recheck(pic, touched, decisions)
            except SealError:
                raise  # a wrong or missing data key: stop, loudly, rather than dead-letter every event
            except Exception as exc:  # noqa: BLE001 - any bug in a rule must not stop the partition
                attempts = await self.r.fcall(fn("pb_attempt"), 1, t.attempts(b.p), eid)
                who = mask(getattr(ev, "person_id", None) or None)
                if attempts < self.settings.max_attempts:
                    log.error("partition %d event %s (%s) failed, attempt %d: %r",
                              b.p, eid.decode(), who, attempts, exc)
                    return False
                log.error("partition %d event %s (%s) failed %d times, dead-lettered: %r",
                          b.p, eid.decode(), who, attempts, exc)
                return eid, [OUTBOX_INDEX[t.DECIDER_DLQ], 5, b"event", raw, b"source_id", eid,
                             b"stream", t.evt(b.p), b"error", repr(exc)[:500], b"deliveries", attempts]
        b.new_pos = b.entries[-1][0]
        # what Redis holds once this commits: the pictures that were stored, and the new ones written
        b.keep = {k: pic.person for k, pic in pics.items() if k not in created or k in dirty}
        self._fill_args(b, day, dirty, recheck, outbox, list(dead))
        return None

    def _fill_args(self, b: PartitionBatch, day, dirty: dict[bytes, Picture], recheck: dict[bytes, int],
                   outbox: list, dead: list) -> None:
        states: list = []
        archives: list = []
        dues: list = []
        figs: dict[str, int] = {}
        for key, pic in dirty.items():
            person = pic.person
            flags = recheck.get(key, 0)
            new_figs = figure_keys(pic, day) if flags & RECHECK_FIGURES else person.figs
            if new_figs != person.figs:
                for k in person.figs:
                    figs[k] = figs.get(k, 0) - 1
                for k in new_figs:
                    figs[k] = figs.get(k, 0) + 1
                person.figs = new_figs
            if flags & RECHECK_DUE:
                nxt = pic.next_change(day)
                due = nxt.toordinal() if nxt else 0
            else:
                due = person.due
            if due != person.due:  # due:{pN} is written only when the date moves
                dues += [key, due or "-"]
                person.due = due
            pic.freeze()
            seal_at_rest(person, self.keys)  # a picture of an earlier schema, or sealed under an older key
            split, archive = pic.storage_split()
            full = person.contrib
            person.v = PICTURE_SCHEMA_VERSION
            person.contrib = full[split:]  # the recent months are stored with the picture
            states += [key, _person_encoder.encode(person)]
            person.contrib = full
            if archive is not None:
                archives += [key, archive]
        figs = {k: v for k, v in figs.items() if v}
        n_out = 0
        i = 0
        while i < len(outbox):
            n_out += 1
            i += 2 + outbox[i + 1] * 2
        b.n_out = n_out
        b.args = [
            b.pos, b.new_pos,
            msgpack_strings(states),
            msgpack_strings(archives) if archives else b"",
            len(dues) // 2, *dues,
            len(figs), *[x for kv in figs.items() for x in kv],
            n_out, *outbox,
            len(dead), *dead,
        ]


def _recheck(pic: Picture, touched: str, decisions: list) -> int:
    """Which derived values an event can have changed. The city figures read the permit, the
    settlement, applications and published outcomes; the next-change date reads the permit and,
    for a settled person, the months of paid medical insurance. A contribution that changed
    neither an outcome nor those facts leaves both as they were (the date moving on is the
    scheduler's ``DateTick``, which rechecks everything)."""
    if touched not in (CONTRIBUTIONS, STORED):
        return RECHECK_FIGURES | RECHECK_DUE
    flags = RECHECK_FIGURES if decisions else 0
    if touched == CONTRIBUTIONS and pic.settled:
        flags |= RECHECK_DUE
    return flags


def _read_pictures(pipe, p: int, keys: list[bytes]) -> None:
    """Queue the reads of ``keys``' pictures and of their months stored apart (for ``_stored``)."""
    pipe.hmget(t.people(p), keys)
    pipe.hmget(t.archive(p), keys)


def _stored(keys: list[bytes], blobs: list[bytes | None], archives: list[bytes | None]) -> dict[bytes, Person]:
    """The stored pictures among HMGET's replies from ``ppl`` and ``arc`` (people not stored yet
    have none), each with all its contribution slots: those stored apart, then its own."""
    out = {}
    for k, blob, archive in zip(keys, blobs, archives):
        if blob:
            person = out[k] = _person_decoder.decode(blob)
            if person.v > PICTURE_SCHEMA_VERSION:
                raise NewerPicture(
                    f"the picture {k.hex()} was written by a newer release (picture schema "
                    f"v{person.v}; this one knows v{PICTURE_SCHEMA_VERSION}): stop this decider, run the newer one")
            if person.archived and archive:
                person.contrib = archive + person.contrib
    return out


def _events_of(eid: bytes, fields: dict[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    """A partition-stream entry -> its events with their ids: the entry id for a single event
    (field ``e``), ``<entry id>/<index>`` for the events of an envelope (field ``b``). An entry
    that cannot be opened counts as one undecodable event, to be dead-lettered as such."""
    if b"b" in fields:
        try:
            items = open_envelope(fields[b"b"])
        except (msgspec.DecodeError, msgspec.ValidationError):
            return [(eid, fields[b"b"])]
        return [(b"%b/%d" % (eid, i), item) for i, item in enumerate(items)]
    return [(eid, fields.get(b"e", b""))]


def _decode(data: bytes, protector: Protector) -> Event | None:
    """An encoded event, its IDs protected (an event of an earlier release carries them in clear)."""
    try:
        ev = decode_event(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if ev.person_id:  # (an earlier release wrote a child's ID in clear only next to the guardian's)
        protector.protect(ev)
    return ev


def _quarantine_entry(ev: Event, q: Quarantine) -> list:
    return [OUTBOX_INDEX[QUARANTINE], 4, b"payload", getattr(ev, "raw", b""), b"source_id", ev.source_id,
            b"reason", q.reason, b"detail", q.detail]


def _ranges(ps: list[int]) -> str:
    return f"{ps[0]}..{ps[-1]}" if ps and ps == list(range(ps[0], ps[-1] + 1)) else str(ps)
