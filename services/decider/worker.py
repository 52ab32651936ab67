"""The decider: reads the partition streams ``evt:{pN}`` from each partition's applied position,
folds the events into pictures, runs the rules, and commits the whole batch in one atomic step.

Exactly-once effect without consumer groups: the position a partition has applied up to is
stored with its state and moved by the same ``pb_commit`` call that writes pictures, outbox
entries, figures and due dates, and only if it still is where this worker read it. A crash
anywhere leads to the same batch being read and decided again from the same state; a second
worker on the same partition loses the compare-and-set and re-reads.

Fault isolation (``services.runtime.faults``): whatever raises while one record is decided or
its person's picture is packed is attributed to that record, retried with the batch, and
dead-lettered after ``max_attempts`` while the rest of the batch is decided again without it.
A commit Redis refuses for its arguments has written nothing (``pb_commit`` checks them first);
the batch is then (and when packing a person changed by several of its events fails) decided and
committed one event at a time, without moving the position until all are in, to find the event
whose packing or commit fails. A commit is split into calls of at most ``lua_call_bytes`` of arguments,
each person's picture with the decisions it led to, the position moved by the last one only.

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
from schemas.events import (DateTick, Event, PermitCancelled, PermitMoved, PermitRenewed, decode_envelope, decode_event,
                            open_envelope)
from schemas.picture import PICTURE_SCHEMA_VERSION, Person
from services.decider.cache import PictureCache
from services.decider import commit
from services.decider.commit import RECHECK_DUE, RECHECK_FIGURES
from services.decider.emit import DEL, RosterDrop, evaluate, roster_action
from services.picture.fold import CONTRIBUTIONS, MEDICAL, STORED, Quarantine, fold
from services.ingress.atrest import Protector
from services.outlets.relay import roster_field
from services.picture import stored
from services.picture.picture import Picture
from services.picture.stored import NewerPicture  # noqa: F401 - raised by _stored; stops the decider
from services.runtime import topology as t
from services.runtime.clock import Clock
from services.runtime.faults import brief, is_data_fault, refused_for_data
from services.runtime.identity import Pseudonymizer
from services.runtime.lease import PartitionShare, run_partitioned
from services.runtime.outage import Outage
from services.runtime.redis import fn, xread
from services.runtime.sealing import SealError
from services.runtime.settings import Settings

log = logging.getLogger("permitbus.decider")

_person_decoder = stored.decoder
OUTBOX_INDEX = {target: i + 1 for i, target in enumerate(t.RELAY_TARGETS)}
OUTLET_OF = {ent: o.stream for ent, o in t.OUTLETS.items()}
QUARANTINE = t.FEEDS["psb:permit"].quarantine
HELD = frozenset((PermitRenewed, PermitMoved, PermitCancelled))  # their payloads wait in t.held(QUARANTINE)
SHARE_REFRESH_S = 0.5


@dataclass
class PartitionBatch:
    p: int
    pos: bytes
    entries: list[tuple[bytes, dict[bytes, bytes]]]
    new_pos: bytes = b""
    # (event id, event | _Broken, encoded event | (envelope, index), picture key), in order
    items: list[tuple] = field(default_factory=list)
    keys: list[bytes] = field(default_factory=list)  # the pictures the batch reads, once each
    calls: list[list] = field(default_factory=list)  # pb_commit arguments, one list per call
    shares: dict[bytes, commit.Share] = field(default_factory=dict)
    outbox: list[tuple[bytes, list]] = field(default_factory=list)  # (picture key or b"", entry), in order
    n_out: int = 0
    keep: dict[bytes, Picture] = field(default_factory=dict)  # the pictures as committed, for the cache


class _Isolate:
    """Packing a person changed by several events of the batch failed: which event is at fault
    is found by deciding and committing the batch one event at a time."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc


class _Broken:
    """An event that cannot be decided at all (undecodable, or no person to file it under)."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc


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
        # per partition: events of the batch not yet committed whose attempts were counted, to be
        # cleared by the commit when they go through after all (a fault that went away)
        self.retried: dict[int, set[bytes]] = {}
        self.stopping = asyncio.Event()
        self.outage = Outage(log, "decider")
        self.applied = 0  # events applied by this worker (progress, benchmarks)
        self.decisions = 0
        self.isolated = 0  # batches committed one event at a time after a refused commit

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
        resp = await xread(self.r, streams, count=self.settings.decider_entries, block=block_ms)
        if not resp:
            return 0
        index = {t.evt(p).encode(): p for p in self.active}
        batches = []
        for name, entries in resp:
            b = PartitionBatch(index[name], self.pos[index[name]], entries)
            b.new_pos = entries[-1][0]
            b.items = [item for eid, fields in entries for item in _items_of(self.protector, eid, fields)]
            b.keys = [k for k in dict.fromkeys(item[3] for item in b.items) if k]
            batches.append(b)
        n = sum(len(b.items) for b in batches)
        await self._decide_and_commit(batches)
        return n

    async def _decide_and_commit(self, batches: list[PartitionBatch]) -> None:
        held = {b.p: self.cache.lookup(b.p, b.keys) for b in batches}  # (kept pictures, keys to read)
        if any(read for _, read in held.values()):
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
        else:
            # Every picture is kept from this worker's own last commits: nothing to read. Whether
            # another worker moved a partition on meanwhile, pb_commit's compare-and-set says (the
            # batch is then dropped with the kept pictures, as when the read below finds it moved).
            snapshots = [(b.pos, ([], [])) for b in batches]
        day, now = self.clock.today(), self.clock.now()
        ready = []
        isolate = []
        try:
            for b, (pos, blobs) in zip(batches, snapshots):
                if pos != b.pos:  # another worker moved this partition on: read again from there
                    log.info("partition %d moved on to %s by another worker", b.p, pos.decode())
                    self.pos[b.p] = pos
                    self._forget(b.p)
                    self.cache.drop(b.p)
                    continue
                kept, read = held[b.p]
                persons = kept | _stored(read, *blobs)
                decided = await self._decide(b, persons, day, now)
                if isinstance(decided, _Isolate):
                    isolate.append((b, decided.exc))
                elif decided:
                    ready.append(b)
            results = await self._send(ready) if ready else []
        except BaseException:
            self.cache.clear()  # kept pictures may have been changed for a batch not committed
            raise
        for b, res in zip(ready, results):
            if isinstance(res, BaseException):
                self.cache.drop(b.p)
                if not refused_for_data(res):
                    self.cache.clear()
                    raise res
                await self._isolate(b, res, day, now)
                continue
            ok, pos = res
            self.pos[b.p] = pos
            self._forget(b.p)
            if ok:
                self.applied += len(b.items)
                self.decisions += b.n_out
                self.cache.put(b.p, b.keep)
            else:
                log.info("partition %d: commit lost to another worker at %s", b.p, pos.decode())
                self.cache.drop(b.p)
        for b, exc in isolate:
            await self._isolate(b, exc, day, now)

    async def _send(self, ready: list[PartitionBatch]) -> list:
        """Send the batches' pb_commit calls in one pipeline. Per batch: the reply of its last call
        (it moves the position), or the first refusal among its calls."""
        pipe = self.r.pipeline(transaction=False)
        for b in ready:
            keys = commit.keys(b.p)
            for args in b.calls:
                pipe.fcall(fn("pb_commit"), len(keys), *keys, *args)
        try:
            replies = iter(await pipe.execute(raise_on_error=False))
        except Exception as exc:  # noqa: BLE001 - sorted just below
            if not refused_for_data(exc):
                raise
            # nothing was sent (redis-py could not encode an argument): find the batch it is in
            if len(ready) == 1:
                return [exc]
            return [(await self._send([b]))[0] for b in ready]
        out = []
        for b in ready:
            rs = [next(replies) for _ in b.calls]
            out.append(next((x for x in rs if isinstance(x, BaseException)), rs[-1]))
        return out

    def _pictures(self, persons: dict[bytes, Person | Picture]) -> dict[bytes, Picture]:
        """Pictures to decide on: those kept from the last commit as they are (with their
        contribution slots already unpacked), the stored ones read from Redis wrapped."""
        keys = self.keys
        return {k: p if type(p) is Picture else Picture(p, keys) for k, p in persons.items()}

    async def _decide(self, b: PartitionBatch, persons: dict[bytes, Person | Picture], day, now) -> bool | _Isolate:
        """Decide one partition's batch in memory from the stored pictures ``persons`` (changed in
        place); fill ``b.calls`` for pb_commit. False: retry later; ``_Isolate``: decide and
        commit it one event at a time.

        An event whose processing raises (a bug, not bad input: that was quarantined upstream) is
        retried with the batch; after ``max_attempts`` it goes to ``dlq:decider`` and the batch is
        decided again, from the pictures read again from Redis, without it.
        """
        dead = self.dead.setdefault(b.p, {})
        while True:
            pics = self._pictures(persons)
            failed = await self._decide_once(b, b.items, pics, day, now, dead)
            if failed is None:
                try:
                    b.calls = commit.calls(b.pos, b.new_pos, b.shares, b.outbox, self._cleared(b.p),
                                           self.settings.lua_call_bytes)
                except Exception as exc:  # noqa: BLE001 - some record's arguments: one at a time will tell
                    self.cache.drop(b.p)
                    return _Isolate(exc)
                b.n_out = len(b.outbox)
                return True
            self.cache.drop(b.p)  # the attempt changed pictures in place
            if failed is False or isinstance(failed, _Isolate):
                return failed
            eid, entry = failed
            dead[eid] = entry
            persons = await self._read_stored(b.p, b.keys)

    async def _isolate(self, b: PartitionBatch, exc: BaseException, day, now) -> None:
        """Redis refused the batch's commit for its arguments (and wrote nothing), or packing a
        person changed by several of its events failed. Decide and commit the events one at a
        time, each with the position where it is (a commit then applies again an event already
        applied: ignored, by the record ids kept in the pictures; a DateTick that changes nothing
        emits nothing), to find the event whose packing or commit fails: it is retried, and
        dead-lettered after ``max_attempts``. All in: move the position, with the dead letters,
        in one last call."""
        self.isolated += 1
        log.error("partition %d: the commit of %d events failed (%s); committing them one at a time",
                  b.p, len(b.items), brief(exc))
        self.cache.drop(b.p)
        dead = self.dead.setdefault(b.p, {})
        persons = await self._read_stored(b.p, b.keys)
        limit = self.settings.lua_call_bytes
        for item in b.items:
            if item[0] in dead:
                continue
            pics = self._pictures(persons)
            failed = await self._decide_once(b, [item], pics, day, now, {})
            if failed is not None:
                if failed is not False:
                    dead[failed[0]] = failed[1]
                return  # the batch is read again, from the same position
            if b.shares or b.outbox:
                try:
                    reply = await self._call_all(b.p, commit.calls(b.pos, b.pos, b.shares, b.outbox, [], limit))
                except Exception as exc:  # noqa: BLE001 - sorted just below
                    reply = exc
                if isinstance(reply, BaseException):
                    if not is_data_fault(reply):
                        raise reply
                    failed = await self._fault(b.p, item[0], item[1], item[2], reply)
                    if failed:
                        dead[failed[0]] = failed[1]
                    return
                if not reply[0]:
                    log.info("partition %d moved on to %s by another worker", b.p, reply[1].decode())
                    self.pos[b.p] = reply[1]
                    self._forget(b.p)
                    return
                self.decisions += len(b.outbox)
            persons = b.keep
        reply = await self._call_all(b.p, commit.calls(b.pos, b.new_pos, {}, [(b"", e) for e in dead.values()],
                                                        self._cleared(b.p), limit))
        if isinstance(reply, BaseException):
            raise reply  # our own dead letters refused: not the data's fault
        self.pos[b.p] = reply[1]
        self._forget(b.p)
        if reply[0]:
            self.applied += len(b.items)

    async def _call_all(self, p: int, calls: list[list]):
        """Send one commit's calls; the last reply, or the first refusal (as a value)."""
        keys = commit.keys(p)
        pipe = self.r.pipeline(transaction=False)
        for args in calls:
            pipe.fcall(fn("pb_commit"), len(keys), *keys, *args)
        try:
            rs = await pipe.execute(raise_on_error=False)
        except Exception as exc:  # noqa: BLE001
            if refused_for_data(exc):
                return exc
            raise
        return next((x for x in rs if isinstance(x, BaseException)), rs[-1])

    def _forget(self, p: int) -> None:
        """Partition ``p``'s batch was committed (or moved on by another worker)."""
        self.dead.pop(p, None)
        self.retried.pop(p, None)

    def _cleared(self, p: int) -> list[bytes]:
        """The events whose attempts the commit clears: the dead-lettered, and the retried."""
        dead = self.dead.get(p, {})
        return list(dead) + [eid for eid in self.retried.get(p, ()) if eid not in dead]

    async def _fault(self, p: int, eid: bytes, ev, raw: bytes | tuple[bytes, int], exc: BaseException):
        """Count a failed attempt at event ``eid``. False: retry the batch later; or the event's
        dead letter (event id, outbox entry) once it has failed ``max_attempts`` times."""
        attempts = await self.r.fcall(fn("pb_attempt"), 1, t.attempts(p), eid)
        who = _who(ev)
        if attempts < self.settings.max_attempts:
            self.retried.setdefault(p, set()).add(eid)
            log.error("partition %d event %s (%s) failed, attempt %d: %s", p, eid.decode(), who, attempts, brief(exc))
            return False
        log.error("partition %d event %s (%s) failed %d times, dead-lettered: %s",
                  p, eid.decode(), who, attempts, brief(exc))
        return eid, [OUTBOX_INDEX[t.DECIDER_DLQ], 5, b"event", _encoded(raw), b"source_id", eid,
                     b"stream", t.evt(p), b"error", brief(exc), b"deliveries", attempts]

    async def _read_stored(self, p: int, keys: list[bytes]) -> dict[bytes, Person]:
        if not keys:
            return {}
        pipe = self.r.pipeline(transaction=False)
        _read_pictures(pipe, p, keys)
        return _stored(keys, *await pipe.execute())

    async def _decide_once(self, b: PartitionBatch, items, pics: dict[bytes, Picture], day, now, dead):
        """Decide ``items`` on ``pics`` and pack each changed person's share (``b.shares``,
        ``b.outbox``, ``b.keep``). None when done; else what ``_fault`` says of the event at fault."""
        outbox: list[tuple[bytes, list]] = []
        dirty: dict[bytes, Picture] = {}
        recheck: dict[bytes, int] = {}  # per dirty picture: which derived values may have changed
        created: set[bytes] = set()  # pictures of people not stored (yet)
        last: dict[bytes, tuple] = {}  # per dirty picture: the last event that changed it
        changes: dict[bytes, int] = {}  # per dirty picture: how many events changed it
        for item in items:
            eid, ev, raw, key = item
            if dead and eid in dead:
                outbox.append((b"", dead[eid]))
                continue
            try:
                if isinstance(ev, _Broken):
                    raise ev.exc
                pic = pics.get(key)
                if pic is None:
                    if isinstance(ev, DateTick):
                        continue  # nobody to re-decide
                    pic = pics[key] = Picture(Person(v=PICTURE_SCHEMA_VERSION, sid=ev.sealed_id), self.keys)
                    created.add(key)
                touched = fold(pic, ev)
                if touched is None:
                    if type(ev) in HELD:
                        outbox.append((key, _release_entry(ev)))
                    continue  # a duplicate: no effect
                if isinstance(touched, Quarantine):
                    outbox.append((key, _quarantine_entry(ev, touched)))
                    continue
                if type(ev) in HELD:
                    outbox.append((key, _release_entry(ev)))
                dirty[key] = pic
                last[key] = item
                changes[key] = changes.get(key, 0) + 1
                if touched == STORED:
                    continue  # a contribution kept that changes no fact a rule reads: nothing to decide
                caused_by = [] if isinstance(ev, DateTick) else [ev.record_id]
                decisions = evaluate(pic, touched, day, now, caused_by)
                if decisions:  # (most events change no outcome: no latency to note)
                    born = _born(ev.source_id)
                    for d in decisions:
                        outbox.append((key, _outbox_entry(pic, d, born)))
                recheck[key] = recheck.get(key, 0) | _recheck(pic, touched, decisions)
            except SealError:
                raise  # a wrong or missing data key: stop, loudly, rather than dead-letter every event
            except Exception as exc:  # noqa: BLE001 - any bug in a rule must not stop the partition
                return await self._fault(b.p, eid, ev, raw, exc)
        shares = {}
        for key, pic in dirty.items():
            try:
                shares[key] = commit.pack(key, pic, recheck.get(key, 0), day)
            except SealError:
                raise  # a wrong or missing data key: stop, as above
            except Exception as exc:  # noqa: BLE001 - e.g. a date out of range: the record's fault
                if changes[key] > 1:  # which of its events? one at a time will tell
                    log.error("partition %d: packing person %s, changed by %d events, failed: %s", b.p,
                              key.hex()[:12], changes[key], brief(exc))
                    return _Isolate(exc)
                eid, ev, raw, _ = last[key]
                return await self._fault(b.p, eid, ev, raw, exc)
        # what Redis holds once this commits: the pictures that were stored, and the new ones written
        b.keep = {k: pic for k, pic in pics.items() if k not in created or k in dirty}
        b.shares, b.outbox = shares, outbox
        return None


def _item(protector: Protector, eid: bytes, data: bytes | tuple[bytes, int], decoded: Event | None = None) -> tuple:
    """(event id, event, encoded event, picture key: the person's pseudonym, which the event
    carries); an event that cannot be decoded, or filed under a person, is kept as ``_Broken``, to
    fail (and be dead-lettered) in its turn. ``decoded``: the event already decoded (with its
    envelope), ``data`` then where its bytes are (``_encoded``)."""
    try:
        ev = _decode(data, protector) if decoded is None else _protect(decoded, protector)
        if ev is None:
            return eid, _Broken(ValueError("undecodable event")), data, b""
        return eid, ev, data, ev.pseudonym
    except SealError:
        raise  # a wrong or missing data key is no record's fault
    except Exception as exc:  # noqa: BLE001 - e.g. an ID no pseudonym can be made of
        return eid, _Broken(exc), data, b""


def _who(ev) -> str:
    """Who an event is about, for a log line: a prefix of the pseudonym (never the ID)."""
    pseudonym = getattr(ev, "pseudonym", b"")
    return f"person {pseudonym.hex()[:12]}" if pseudonym else "-"


def _born(source_id: str) -> bytes | None:
    """The ms of the ingress entry an event comes from (its id's time), for the decision latency;
    None for the scheduler's ticks (no ingress entry)."""
    ms = source_id.partition("-")[0]
    return ms.encode() if ms.isdigit() else None


def _outbox_entry(pic: Picture, d, born: bytes | None = None) -> list:
    """A decision for its outlet with the roster action the relay applies (field ``roster``, not
    appended to the outlet) and, in ``_t``, the ms of the ingress entry it comes from (the relay
    counts the latency and appends neither); a roster drop has only the action and the roster
    field (``field``)."""
    if isinstance(d, RosterDrop):
        return [OUTBOX_INDEX[OUTLET_OF[d.entitlement]], 2, b"roster", DEL,
                b"field", roster_field(d.subject_id, d.application_id)]
    if born is None:
        return [OUTBOX_INDEX[OUTLET_OF[d.entitlement]], 2, b"payload", decision_encoder.encode(d),
                b"roster", roster_action(pic, d)]
    return [OUTBOX_INDEX[OUTLET_OF[d.entitlement]], 3, b"payload", decision_encoder.encode(d),
            b"roster", roster_action(pic, d), b"_t", born]


def _recheck(pic: Picture, touched: str, decisions: list) -> int:
    """Which derived values an event can have changed. The city figures read the permit, the
    settlement, applications and published outcomes; the next-change date reads the permit and,
    for a settled person or a permit holder, the months of paid medical insurance and the months
    worked (services/rules/employment.py, ``changes_by_itself``). A contribution that changed
    neither an outcome nor those facts leaves both as they were (the date moving on is the
    scheduler's ``DateTick``, which rechecks everything)."""
    if touched not in (CONTRIBUTIONS, MEDICAL, STORED):
        return RECHECK_FIGURES | RECHECK_DUE
    flags = RECHECK_FIGURES if decisions else 0
    if touched == CONTRIBUTIONS and (pic.settled or pic.person.permit is not None) \
            or touched == MEDICAL and pic.settled:
        flags |= RECHECK_DUE
    return flags


def _read_pictures(pipe, p: int, keys: list[bytes]) -> None:
    """Queue the reads of ``keys``' pictures and of their months stored apart (for ``_stored``)."""
    pipe.hmget(t.people(p), keys)
    pipe.hmget(t.archive(p), keys)


def _stored(keys: list[bytes], blobs: list[bytes | None], archives: list[bytes | None]) -> dict[bytes, Person]:
    """The stored pictures among HMGET's replies from ``ppl`` and ``arc`` (people not stored yet
    have none), each with all its contribution slots: those stored apart, then its own."""
    return {k: stored.person_of(k, blob, archive) for k, blob, archive in zip(keys, blobs, archives) if blob}


def _items_of(protector: Protector, eid: bytes, fields: dict[bytes, bytes]) -> list[tuple]:
    """A partition-stream entry -> the ``_item`` of each of its events: one event (field ``e``,
    its id the entry's), or an envelope of events (field ``b``, ids ``<entry id>/<index>``),
    decoded in one call when it can be; else each event alone, so that a bad one fails alone. An
    entry that cannot be opened counts as one undecodable event, to be dead-lettered as such."""
    if b"b" not in fields:
        return [_item(protector, eid, fields.get(b"e", b""))]
    envelope = fields[b"b"]
    try:
        events = decode_envelope(envelope)
    except (msgspec.DecodeError, msgspec.ValidationError):
        try:
            raws = open_envelope(envelope)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return [_item(protector, eid, envelope)]
        return [_item(protector, b"%b/%d" % (eid, i), raw) for i, raw in enumerate(raws)]
    return [_item(protector, b"%b/%d" % (eid, i), (envelope, i), ev) for i, ev in enumerate(events)]


def _encoded(raw: bytes | tuple[bytes, int]) -> bytes:
    """An item's encoded event: its bytes, or (envelope, index), taken out only when needed (a
    dead letter)."""
    return raw if isinstance(raw, bytes) else open_envelope(raw[0])[raw[1]]


def _decode(data: bytes, protector: Protector) -> Event | None:
    """An encoded event, its IDs protected (``_protect``); None if it cannot be decoded."""
    try:
        ev = decode_event(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return _protect(ev, protector)


def _protect(ev: Event, protector: Protector) -> Event:
    """An event of an earlier release carries IDs in clear: protect them as the normalizer now does."""
    if ev.person_id:  # (an earlier release wrote a child's ID in clear only next to the guardian's)
        protector.protect(ev)
    return ev


def _quarantine_entry(ev: Event, q: Quarantine) -> list:
    """The relay copies the record's held payload (``t.held``; events carry none) to the quarantine;
    an event of an older release still carries it in ``raw``."""
    raw = getattr(ev, "raw", b"")
    return [OUTBOX_INDEX[QUARANTINE], 5 + bool(raw), b"action", b"quarantine", b"source_id", ev.source_id,
            b"reason", q.reason, b"detail", q.detail, b"_r", ev.record_id,  # '_r': for permitbus trace only
            *((b"payload", raw) if raw else ())]


def _release_entry(ev: Event) -> list:
    """A QZ/BG/ZX record (``HELD``) that took effect or was a duplicate: the relay drops its held payload."""
    return [OUTBOX_INDEX[QUARANTINE], 2, b"action", b"release", b"source_id", ev.source_id]


def _ranges(ps: list[int]) -> str:
    return f"{ps[0]}..{ps[-1]}" if ps and ps == list(range(ps[0], ps[-1] + 1)) else str(ps)
