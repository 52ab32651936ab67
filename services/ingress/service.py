"""The normalizer service: one FastStream batch subscriber per ingress feed.

A batch of ingress entries becomes, in one pipeline (or several of bounded size, in order),
canonical events on the partition streams ``evt:{pN}`` (partition = the person's ID hashed; one
entry per partition holding the batch's events for it in order, ``schemas.events.envelopes``),
quarantine copies, and the payloads of ``QZ``/``BG``/``ZX`` records held for the decider's verdict
(``pb_hold``; events carry no payloads), and for a school application where it is filed under the
child (``filed:{pN}``: the application is kept in the guardian's picture; explaining it starts from
the child); only then are the entries acknowledged. A crash in
between leads to redelivery: the events are appended again and ignored by the decider as
duplicates (same record id); quarantine copies are made once (``pb_quarantine`` remembers the
ingress ids it has copied). What is read at a time is bounded by bytes as well as by count
(``services/ingress/budget.py``), so the service's memory stays flat through large records.

One worker at a time reads a feed (a lease, so that a person's records keep their order). It
reads with ``XREADGROUP ... NOACK``: no pending list (one would cost Redis a propagated XCLAIM,
~230 AOF bytes, for every entry read: more than the normalizer's own writes). What is finished
is the feed's ``committed`` position, moved by ``pb_ack`` after a batch's effect is written; a
worker that takes the feed over, or whose read failed, moves the group back to it
(``pb_rewind``) and reads again what was read and not finished (an entry handled twice changes
nothing). Entries left pending by a release that read without NOACK are claimed (XAUTOCLAIM) and
handled first. A record whose processing keeps failing (a bug, not bad input) goes to
``dlq:ingress:<feed>`` after ``max_attempts`` attempts, with the error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from operator import itemgetter
from typing import Any

import msgspec
import redis.asyncio as aioredis
from faststream import AckPolicy
from faststream.message import StreamMessage
from faststream.redis import RedisBroker, StreamSub
from redis.exceptions import ResponseError

from schemas.events import (ContributionRecorded, Event, PermitCancelled, PermitMoved, PermitRenewed, SchoolApplied,
                            encode_event, envelopes)
from services.ingress import contribution, housing, limits, permit, school
from services.ingress.budget import ReadBudget, batch_bytes
from services.ingress.atrest import Protector
from services.ingress.fields import Reject
from services.runtime import topology as t
from services.runtime.identity import Pseudonymizer, partition_of
from services.runtime.lease import Lease
from services.runtime.outage import REDIS_OUTAGE, Outage
from services.runtime.redis import fn, msgpack_strings, parse_streams_quickly, recover, stream_id
from services.runtime.retention import expire
from services.runtime.settings import Settings
from services.ops.trace import day_of, record_id_of, traceable

log = logging.getLogger("permitbus.ingress")

NORMALIZERS: dict[str, Callable[[dict[str, Any], str, bytes], Event]] = {
    permit.FEED: permit.normalize,
    contribution.FEED: contribution.normalize,
    school.FEED: school.normalize,
    housing.FEED: housing.normalize,
}
# Feeds with a fast path (a msgspec-typed decode for well-formed records; the others take the
# field-by-field checks that name the exact problem).
FAST: dict[str, Callable[[bytes, str], Event | None]] = {contribution.FEED: contribution.fast}
QUARANTINE_MARKS_MS = 7 * 86_400_000
# Events the decider may quarantine (UNKNOWN_PERMIT): their payloads wait in t.held(quarantine)
# (pb_hold), not in the events; the relay copies or drops them (pb_relay_quarantine).
HELD = (PermitRenewed, PermitMoved, PermitCancelled)
ACK_IDS = 5000  # the largest batch_size: one call a batch, an argument of at most ~100 KB


def understand(feed: str, entry_id: str, fields: dict[bytes, bytes],
               max_bytes: int = limits.MAX_PAYLOAD_BYTES) -> Event | Reject:
    """One ingress entry -> a canonical event, or the reason it cannot be understood.

    The payload's size and shape (``limits``) are checked before any field is read."""
    raw = fields.get(b"payload")
    if raw is not None and len(raw) > max_bytes:
        return limits.too_large(raw, max_bytes)
    quick = FAST.get(feed)
    if quick is not None and raw is not None:
        event = quick(raw, entry_id)
        if event is not None:
            return event
    if raw is None:
        names = ", ".join(sorted(k.decode("utf-8", "replace")[:40] for k in fields)[:10])
        return Reject("NO_PAYLOAD", f"the stream entry has no 'payload' field (fields: {names or 'none'})")
    rec = limits.parse(raw)
    if isinstance(rec, Reject):
        return rec
    try:
        return NORMALIZERS[feed](rec, entry_id, raw)
    except Reject as rej:
        return rej


def _child_of(ev: Event, protector: Protector, parts: int) -> tuple[int, bytes] | None:
    """A school application's child: (partition, pseudonym), to file the application under the
    child (``t.filed``); read before ``protect`` takes the child's ID out of the event."""
    if not isinstance(ev, SchoolApplied) or not ev.child_id:
        return None
    return partition_of(ev.child_id, parts), protector.pseudonym(ev.child_id)


class Normalizer:
    """One feed's normalizer. One active consumer per feed (a lease): records of one person
    arrive in order on one stream, and one reader appends them in that order; standby workers
    take over when the holder dies, first finishing what it left pending."""

    def __init__(self, r: aioredis.Redis, settings: Settings, feed: str, consumer: str) -> None:
        self.r = r
        self.settings = settings
        self.feed = t.FEEDS[feed]
        self.consumer = consumer
        self.lease = Lease(r, t.lease("normalize", feed), consumer, settings.lease_ttl_ms)
        self.protector = Protector(Pseudonymizer(settings.pseudonym_secret()), settings.data_keyring())
        self.stopping = asyncio.Event()
        self.outage = Outage(log, f"normalize {feed}")
        self.events = 0
        self.quarantined = 0
        self.dead_lettered = 0
        self.rejected: list[bytes] = []  # ids of the batch in hand quarantined or dead-lettered (pb_ack counts the rest)
        # The subscriber hands each batch over (``submit``) and reads the next one while this one
        # is applied: the read of batch k+1 overlaps the work on batch k, in read order.
        self.inbox: asyncio.Queue[list[tuple[bytes, dict[bytes, bytes]]]] = asyncio.Queue(maxsize=1)
        self.budget = ReadBudget(settings.batch_size, settings.normalizer_read_bytes)
        # Set when the group may have delivered entries this worker never finished: a read whose
        # reply was lost to an outage (Redis moved the group on, the reply never came) or a batch
        # given up on. The subscriber then finishes the batches in hand and moves the group back
        # to the committed position before reading on (``subscribe``, ``rewind``).
        self.rewind_first = False

    def stop(self) -> None:
        self.stopping.set()

    async def submit(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        """The subscriber's handler: queue the batch for ``apply_inbox`` and return."""
        self.budget.saw(len(entries), batch_bytes(entries))
        await self.inbox.put(entries)

    async def apply_inbox(self) -> None:
        """Handle the submitted batches in the order they were read. A batch is prepared
        (understood and encoded) while the previous one's writes and acknowledgement are in
        flight; its own writes go out only once the previous batch is acknowledged, so that a
        batch applied again after Redis lost data still comes before the next one."""
        handling: asyncio.Task | None = None
        while True:
            entries = await self.inbox.get()
            try:
                prepared = self.prepare(entries)
            except Exception as exc:  # noqa: BLE001 - a bug: handle() retries the batch entry by entry
                prepared = exc
            if handling is not None:
                await handling
            handling = asyncio.create_task(self._handle_submitted(entries, prepared))

    async def _handle_submitted(self, entries: list[tuple[bytes, dict[bytes, bytes]]], prepared) -> None:
        try:
            if self.rewind_first:
                return  # a batch read before this one is unfinished: committing this would pass it;
                # both are read again once the group is moved back (``subscribe``)
            await self.handle(entries, prepared=prepared)
        except Exception as exc:  # noqa: BLE001 - not committed: read again after a rewind
            log.error("%s: batch of %d left unfinished: %r", self.feed.ingress, len(entries), exc)
            self.rewind_first = True
        finally:
            self.inbox.task_done()

    async def apply(self, entries: list[tuple[bytes, dict[bytes, bytes]]], prepared=None) -> None:
        """Write the effect of a batch: events and quarantine copies, in one round trip (one per
        ``PIPELINE_BYTES`` of arguments, in order)."""
        pipes, n_events, rejected = prepared or self.prepare(entries)
        for pipe in pipes.done():
            await pipe.execute()
        self.events += n_events
        self.quarantined += len(entries) - n_events
        self.rejected += rejected

    def prepare(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> tuple[Pipelines, int, list[bytes]]:
        """The pipelines that write a batch's effect (no I/O), the number of its events and the ids
        it quarantines."""
        pipes = Pipelines(self.r, PIPELINE_BYTES)
        now_ms = int(time.time() * 1000)
        parts = self.settings.partitions
        n_events = 0
        rejected: list[bytes] = []
        counters = t.counters(self.feed.quarantine)
        by_partition: dict[int, list[bytes]] = {}
        index: dict[str, str] = {}  # permitbus trace: record id -> where this batch put it
        trace_accepted = self.feed.name in self.settings.trace_accepted
        feed, max_bytes = self.feed.name, self.settings.max_payload_bytes
        protect, batch_of = self.protector.protect, by_partition.setdefault
        protect_contribution = self.protector.protect_contribution
        filed: dict[int, dict[bytes, int]] | None = {} if self.feed.name == school.FEED else None
        for eid, fields in entries:
            sid = eid.decode()
            out = understand(feed, sid, fields, max_bytes)
            if type(out) is ContributionRecorded:  # the monthly burst's lane: nothing held, seldom traced
                try:
                    p = partition_of(out.person_id, parts)
                    batch_of(p, []).append(encode_event(protect_contribution(out)))
                    n_events += 1
                    if trace_accepted and (rid := traceable(out.record_id)):
                        index[rid] = f"{sid} p{p}"
                    continue
                except (OverflowError, msgspec.EncodeError) as exc:
                    out = Reject("BAD_NUMBER", f"a number is out of range ({str(exc)[:60]})")
            elif not isinstance(out, Reject):
                try:
                    p = partition_of(out.person_id, parts)
                    child = _child_of(out, self.protector, parts) if filed is not None else None
                    data = encode_event(protect(out))
                except (OverflowError, msgspec.EncodeError) as exc:
                    out = Reject("BAD_NUMBER", f"a number is out of range ({str(exc)[:60]})")
                else:
                    if child is not None:  # the child's application is filed in the guardian's picture
                        filed.setdefault(child[0], {})[
                            child[1] + p.to_bytes(2, "big") + out.pseudonym + out.application_id.encode()] = 0
            if isinstance(out, Reject):
                payload = fields.get(b"payload", b"")
                pipes.take(len(payload)).fcall(
                    fn("pb_quarantine"), 3, self.feed.quarantine, t.quarantine_marks(self.feed.quarantine),
                    counters, sid, payload, out.reason, out.detail, now_ms, QUARANTINE_MARKS_MS)
                rejected.append(eid)
                if rid := record_id_of(self.feed.name, payload):
                    index[rid] = f"{sid} q {out.reason}"
            else:
                if isinstance(out, HELD):  # before its event: the decider may quarantine it
                    sealed = self.protector.keys.seal_record(fields[b"payload"])  # names and IDs: sealed at rest
                    pipes.take(len(sealed)).fcall(fn("pb_hold"), 2, t.held(self.feed.quarantine),
                                                  t.quarantine_marks(self.feed.quarantine), sid, sealed)
                by_partition.setdefault(p, []).append(data)
                n_events += 1
                if trace_accepted and (rid := traceable(out.record_id)):
                    index[rid] = f"{sid} p{p}"
        for p, members in (filed or {}).items():  # t.filed: before the events that file them
            pipes.take(sum(map(len, members))).zadd(t.filed(p), members)
        for p, events in by_partition.items():  # one entry per partition, not one per record
            for envelope in envelopes(events):
                pipes.take(len(envelope)).xadd(t.evt(p), {"b": envelope})
        if index:  # one call and one argument per batch (pb_trace), not one per record
            packed = msgpack_strings([x.encode() for kv in index.items() for x in kv])
            pipes.take(len(packed)).fcall(fn("pb_trace"), 1, t.trace_ingress(self.feed.name, day_of(now_ms)),
                                          self.settings.trace_days * 86_400_000, packed)
        return pipes, n_events, rejected

    async def handle(self, entries: list[tuple[bytes, dict[bytes, bytes]]], deliveries: dict[bytes, int] | None = None,
                     prepared=None) -> None:
        """Apply a batch and acknowledge it; never leaves it half done while the service runs.

        Redis unreachable: retry with backoff (the effect is idempotent). A failure of our own code
        (a bug): retry entry by entry; an entry still failing after ``max_attempts`` deliveries goes
        to ``dlq:ingress:<feed>`` with the error, so the feed keeps moving.
        """
        while True:
            self.rejected = []
            try:
                try:
                    first, prepared = prepared, None  # a pipeline runs once: another attempt prepares again
                    if isinstance(first, Exception):
                        raise first  # preparing it failed already
                    await self.apply(entries, first)
                except REDIS_OUTAGE:
                    raise
                except ResponseError as exc:
                    if not await recover(self.r, exc):
                        raise
                    continue  # functions or groups restored: apply again
                except Exception as exc:  # noqa: BLE001
                    log.error("%s: batch of %d failed (%r); retrying entry by entry",
                              self.feed.ingress, len(entries), exc)
                    for entry in entries:
                        await self._one_by_one(entry, (deliveries or {}).get(entry[0], 1))
                try:
                    await self.ack(entries)
                except ResponseError as exc:
                    if not await recover(self.r, exc):
                        raise
                    continue  # functions or groups restored: apply and acknowledge again
                self.outage.ok()
                return
            except REDIS_OUTAGE as exc:
                self.outage.failed(exc)
                if self.stopping.is_set():
                    raise  # not committed: the next holder of the lease reads it again
                await asyncio.sleep(self.outage.backoff())

    async def ack(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        """Commit (``pb_ack``: the feed's ``committed`` position moves past the batch), at most
        ``ACK_IDS`` entry ids an FCALL (a bounded argument); it counts the records first finished,
        those quarantined or dead-lettered apart."""
        rejected = set(self.rejected)
        for i in range(0, len(entries), ACK_IDS):
            ids = list(map(itemgetter(0), entries[i:i + ACK_IDS]))
            parked = [eid for eid in ids if eid in rejected] if rejected else []
            await self.r.fcall(fn("pb_ack"), 2, self.feed.ingress, t.counters(self.feed.ingress), t.NORMALIZER_GROUP,
                               msgpack_strings(ids), msgpack_strings(parked) if parked else "")

    async def _one_by_one(self, entry: tuple[bytes, dict[bytes, bytes]], delivered: int) -> None:
        eid, fields = entry
        error: Exception | None = None
        for attempt in range(delivered, self.settings.max_attempts + 1):
            try:
                await self.apply([entry])
                return
            except REDIS_OUTAGE:
                raise
            except Exception as exc:  # noqa: BLE001
                error = exc
                log.error("%s entry %s failed (delivery %d of %d): %r", self.feed.ingress, eid.decode(), attempt,
                          self.settings.max_attempts, exc)
        parked = t.dlq(self.feed.ingress)
        pipe = self.r.pipeline(transaction=True)  # the dead letter and its count together
        pipe.xadd(parked, {
            "payload": fields.get(b"payload", b""), "source_id": eid, "stream": self.feed.ingress,
            "error": repr(error)[:500], "deliveries": max(delivered, self.settings.max_attempts),
        })
        pipe.hincrby(t.counters(parked), "dead_lettered", 1)
        dead, _ = await pipe.execute()
        self.dead_lettered += 1
        self.rejected.append(eid)
        if rid := record_id_of(self.feed.name, fields.get(b"payload", b"")):
            now_ms = int(time.time() * 1000)
            key = t.trace_ingress(self.feed.name, day_of(now_ms))
            await self.r.hset(key, rid, f"{eid.decode()} d {dead.decode()}")
            await self.r.pexpire(key, self.settings.trace_days * 86_400_000)

    # -- one active consumer per feed --------------------------------------------------------
    async def supervise(self, subscriber) -> None:
        """Wait for the feed's lease, finish what earlier holders left pending, then read new
        entries with the FastStream subscriber; keep the lease; if it is ever lost, stop."""
        standby_logged = False
        while not self.stopping.is_set():
            try:
                if await self.lease.take():
                    break
                if not standby_logged:
                    log.info("%s: another worker holds the feed; standing by", self.feed.ingress)
                    standby_logged = True
                self.outage.ok()
            except REDIS_OUTAGE as exc:
                self.outage.failed(exc)
            except ResponseError as exc:  # functions missing, or a right missing (NOPERM): said, retried
                if not await recover(self.r, exc):
                    raise
            await self._sleep(self.settings.lease_ttl_ms / 3000)
        if self.stopping.is_set():
            return
        log.info("%s: this worker (%s) is the active normalizer", self.feed.ingress, self.consumer)
        await self.take_over()
        applier = asyncio.create_task(self.apply_inbox(), name=f"apply {self.feed.ingress}")
        try:
            await subscriber.start()
            while not self.stopping.is_set():
                await self._sleep(self.settings.lease_ttl_ms / 3000)
                try:
                    if not await self.lease.take():
                        raise LeaseLost(f"{self.feed.ingress}: lease taken over by another worker")
                    await self.trim()
                    await expire(self.r, [self.feed.quarantine, t.dlq(self.feed.ingress)],
                                 self.settings.quarantine_retention_days)
                    self.outage.ok()
                except REDIS_OUTAGE as exc:
                    self.outage.failed(exc)
                except ResponseError as exc:
                    if not await recover(self.r, exc):
                        raise
        finally:
            if self.stopping.is_set():
                await subscriber.stop()  # hands over the batch it has read ...
                await self.inbox.join()  # ... and every batch read is applied and acknowledged
                try:
                    await self.lease.release()
                except REDIS_OUTAGE:
                    pass
            applier.cancel()  # lease lost: what is queued is not committed; the new holder reads it again

    async def trim(self) -> int:
        """Trim the ingress stream below what every consumer group has read and acknowledged, and
        below what this feed's normalizer has committed (it may read again from there).

        Redis 7.0 trims pending entries too (``ACKED`` arrives in 8.2), so the bound is computed:
        the smallest of each group's last-delivered id and oldest pending id."""
        groups = await self.r.xinfo_groups(self.feed.ingress)
        if not groups:
            return 0
        committed = await self.r.hget(t.counters(self.feed.ingress), "committed")
        bound: tuple[int, int] | None = None
        for g in groups:
            candidates = [stream_id(g["last-delivered-id"])]
            if g["name"] in (t.NORMALIZER_GROUP, t.NORMALIZER_GROUP.encode()):
                candidates.append(stream_id(committed) if committed else (0, 0))
            if g["pending"]:
                summary = await self.r.xpending(self.feed.ingress, g["name"])
                if summary["min"] is not None:  # may have been acknowledged meanwhile
                    candidates.append(stream_id(summary["min"]))
            low = min(candidates)
            bound = low if bound is None else min(bound, low)
        if bound is None or bound == (0, 0):
            return 0
        return await self.r.xtrim(self.feed.ingress, minid=f"{bound[0]}-{bound[1]}", approximate=True)

    async def take_over(self) -> int:
        """Claim every entry pending in the group (left by a release that read without NOACK) and
        handle it, in order; then move the group back to the committed position (``rewind``), so
        that what the earlier holder read and did not finish is read again."""
        n = 0
        while not self.stopping.is_set():
            try:
                _, claimed, _deleted = await self.r.xautoclaim(
                    self.feed.ingress, t.NORMALIZER_GROUP, self.consumer, 0, start_id="0-0",
                    count=min(self.budget.count(), 1000))
                if not claimed:
                    await self.rewind()
                    return n
                rows = await self.r.xpending_range(
                    self.feed.ingress, t.NORMALIZER_GROUP, min=claimed[0][0], max=claimed[-1][0],
                    count=len(claimed) * 2, consumername=self.consumer)
                deliveries = {row["message_id"]: row["times_delivered"] for row in rows}
                log.info("%s: taking over %d pending entries", self.feed.ingress, len(claimed))
                self.budget.saw(len(claimed), batch_bytes(claimed))
                await self.handle(claimed, deliveries)
                n += len(claimed)
                self.outage.ok()
            except REDIS_OUTAGE as exc:
                self.outage.failed(exc)
                await self._sleep(self.outage.backoff())
            except ResponseError as exc:
                if not await recover(self.r, exc):
                    raise
        return n

    async def rewind(self) -> None:
        """Move the group back to the committed position (``pb_rewind``; the first time, take what
        the group has delivered as committed)."""
        pos, moved = await self.r.fcall(fn("pb_rewind"), 2, self.feed.ingress, t.counters(self.feed.ingress),
                                        t.NORMALIZER_GROUP)
        if moved:
            log.warning("%s: reading again from %s, the last entry finished", self.feed.ingress,
                        pos.decode() if isinstance(pos, bytes) else pos)

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            pass


class LeaseLost(RuntimeError):
    pass


PIPELINE_BYTES = 4 << 20


class Pipelines:
    """A batch's writes as pipelines of at most ``limit`` bytes of arguments each (one command
    larger than that goes alone), executed in the order queued: a batch of large records is not
    one buffer of hundreds of MB in this process and in Redis's query buffer (1 GB at most)."""

    def __init__(self, r: aioredis.Redis, limit: int) -> None:
        self.r, self.limit = r, limit
        self.pipes = [r.pipeline(transaction=False)]
        self.size = 0

    def take(self, size: int):
        """The pipeline to queue a command of about ``size`` bytes on."""
        if self.size and self.size + size > self.limit:
            self.pipes.append(self.r.pipeline(transaction=False))
            self.size = 0
        self.size += size
        return self.pipes[-1]

    def done(self) -> list[Any]:
        return [p for p in self.pipes if len(p)]



def subscribe(broker: RedisBroker, normalizer: Normalizer):
    """The fast path: a FastStream batch subscriber reading new entries (``>``) of the group.
    Started by ``Normalizer.supervise`` once this worker holds the feed's lease."""
    feed = normalizer.feed

    async def keep_raw(msg: Any) -> StreamMessage:
        """Hand the raw batch over untouched. FastStream's own parser JSON-encodes every entry
        of the batch first, which costs time and fails on bytes that are not UTF-8; the
        handler reads the raw map and decides itself what is bad input."""
        return StreamMessage(raw_message=msg, body=b"", headers={}, content_type=None)

    async def raw_batch(msg: StreamMessage) -> Any:
        """The batch as read (``bounded_read``: its entries, whole, as the one item of ``data``)
        is the handler's one argument. Asking for it with ``Context("message")`` instead would
        resolve it through fast_depends, which runs a synchronous resolver in a worker thread: one
        thread hand-off a batch, and two threads taking turns at the GIL while the event loop works."""
        return msg.raw_message["data"][0]

    subscriber = broker.subscriber(  # max_records: the first read's count; then ``bounded_read``
        stream=StreamSub(
            feed.ingress,
            group=t.NORMALIZER_GROUP,
            consumer=normalizer.consumer,
            batch=True,
            max_records=normalizer.budget.count(),
            polling_interval=100,
            no_ack=True,  # no pending list: the committed position says what is finished (pb_ack)
            # `permitbus setup` makes the stream and the group (at 0). FastStream 0.7 still sends
            # XGROUP CREATE at every start (BUSYGROUP then); declare=False keeps it from making a stream.
            declare=False,
        ),
        ack_policy=AckPolicy.MANUAL,  # handle() commits once the effect is written
        parser=keep_raw,
        decoder=raw_batch,
        title=f"normalize {feed.name}",
        description=f"{feed.department}: {feed.ingress} -> evt:{{pN}} | {feed.quarantine}",
    )

    read = subscriber._xreadgroup

    async def bounded_read(*, count: int | None, block: int | None, noack: bool = False):
        """FastStream asks for ``max_records`` entries on every read (``StreamSub`` is copied
        when the subscriber starts); this asks for what the byte budget allows
        (``services/ingress/budget.py``). Wraps the one method that issues XREADGROUP.

        After a read that failed (Redis may have moved the group past a reply that never
        arrived) or a batch given up on, it first lets the batches in hand finish, then moves the
        group back to the committed position (``Normalizer.rewind``) and reads on from there, so
        nothing read is left unfinished and a person's records keep their order. Entries read
        twice are applied twice, which changes nothing."""
        # A rewind refused (say, Redis lost its functions) fails this read like an outage: FastStream
        # reads again after a pause, by when the lease loop has restored what Redis lost.
        parse_streams_quickly(subscriber._client)  # (once per client)
        if normalizer.rewind_first:
            await normalizer.inbox.join()
            await normalizer.rewind()
            normalizer.rewind_first = False
        try:
            response = await read(count=normalizer.budget.count(), block=block, noack=True)
        except REDIS_OUTAGE:
            normalizer.rewind_first = True
            raise
        if not response:
            normalizer.budget.idle()
        # FastStream's batch subscriber splits a read into lists of ids and of field maps, entry by
        # entry in Python, and the handler would zip them together again: each stream's entries
        # are handed over whole instead, as one "entry" whose id is the last one's (FastStream
        # reads on after it) and whose data is the list of (id, fields) ``Normalizer.submit`` takes.
        return [(name, [(entries[-1][0], entries)]) for name, entries in response if entries]

    subscriber._xreadgroup = bounded_read

    @subscriber
    async def on_batch(entries: Any) -> None:
        await normalizer.submit(entries)

    return subscriber
