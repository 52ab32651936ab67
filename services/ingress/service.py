"""The normalizer service: one FastStream batch subscriber per ingress feed.

A batch of ingress entries becomes, in one pipeline, canonical events on the partition streams
``evt:{pN}`` (partition = the person's ID hashed) and quarantine copies; only then are the
entries acknowledged. A crash in between leads to redelivery: the events are appended again
and ignored by the decider as duplicates (same record id); quarantine copies are made once
(``pb_quarantine`` remembers the ingress ids it has copied).

Entries left pending by a consumer that died are claimed after ``claim_idle_ms`` (XAUTOCLAIM)
and retried one by one; one that still fails after ``max_attempts`` deliveries (a bug, not bad
input) goes to ``dlq:ingress:<feed>`` with the error and its delivery count.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import msgspec
import redis.asyncio as aioredis
from faststream import AckPolicy, Context
from faststream.redis import RedisBroker, StreamSub
from redis.exceptions import ConnectionError as RConnectionError
from redis.exceptions import TimeoutError as RTimeoutError

from schemas.events import Event, encode_event
from services.ingress import contribution, housing, permit, school
from services.ingress.fields import Reject
from services.runtime import topology as t
from services.runtime.identity import partition_of
from services.runtime.outage import Outage
from services.runtime.settings import Settings

log = logging.getLogger("permitbus.ingress")

NORMALIZERS: dict[str, Callable[[dict[str, Any], str, bytes], Event]] = {
    permit.FEED: permit.normalize,
    contribution.FEED: contribution.normalize,
    school.FEED: school.normalize,
    housing.FEED: housing.normalize,
}
QUARANTINE_MARKS_MS = 7 * 86_400_000
_json = msgspec.json.Decoder()


def understand(feed: str, entry_id: str, fields: dict[bytes, bytes]) -> Event | Reject:
    """One ingress entry -> a canonical event, or the reason it cannot be understood."""
    raw = fields.get(b"payload")
    if raw is None:
        return Reject("NO_PAYLOAD", "the stream entry has no 'payload' field")
    try:
        rec = _json.decode(raw)
    except msgspec.DecodeError as exc:
        return Reject("INVALID_JSON", f"payload is not UTF-8 JSON ({str(exc)[:80]})")
    if not isinstance(rec, dict):
        return Reject("NOT_AN_OBJECT", f"payload is a JSON {type(rec).__name__}, not an object")
    try:
        return NORMALIZERS[feed](rec, entry_id, raw)
    except Reject as rej:
        return rej


class Normalizer:
    def __init__(self, r: aioredis.Redis, settings: Settings, feed: str, consumer: str) -> None:
        self.r = r
        self.settings = settings
        self.feed = t.FEEDS[feed]
        self.consumer = consumer
        self.stopping = asyncio.Event()
        self.outage = Outage(log, f"normalize {feed}")
        self.events = 0
        self.quarantined = 0

    def stop(self) -> None:
        self.stopping.set()

    async def apply(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        """Write the effect of a batch: events and quarantine copies, in one round trip."""
        pipe = self.r.pipeline(transaction=False)
        now_ms = int(time.time() * 1000)
        parts = self.settings.partitions
        n_events = 0
        for eid, fields in entries:
            sid = eid.decode()
            out = understand(self.feed.name, sid, fields)
            if isinstance(out, Reject):
                pipe.fcall("pb_quarantine", 2, self.feed.quarantine, t.quarantine_marks(self.feed.quarantine),
                           sid, fields.get(b"payload", b""), out.reason, out.detail, now_ms, QUARANTINE_MARKS_MS)
            else:
                pipe.xadd(t.evt(partition_of(out.person_id, parts)), {"e": encode_event(out)})
                n_events += 1
        await pipe.execute()
        self.events += n_events
        self.quarantined += len(entries) - n_events

    async def ack(self, ids: list[bytes]) -> None:
        await self.r.xack(self.feed.ingress, t.NORMALIZER_GROUP, *ids)

    # -- taking over what dead consumers left pending ---------------------------------------
    async def recover_loop(self, interval_s: float = 2.0) -> None:
        while not self.stopping.is_set():
            try:
                while await self.recover_once() and not self.stopping.is_set():
                    pass
                self.outage.ok()
                wait = interval_s
            except (RConnectionError, RTimeoutError, OSError) as exc:
                self.outage.failed(exc)
                wait = self.outage.backoff()
            try:
                await asyncio.wait_for(self.stopping.wait(), timeout=wait)
            except asyncio.TimeoutError:
                pass

    async def recover_once(self) -> int:
        """Claim entries idle past ``claim_idle_ms`` and retry them one by one. Returns claimed."""
        _, claimed, _deleted = await self.r.xautoclaim(
            self.feed.ingress, t.NORMALIZER_GROUP, self.consumer, self.settings.claim_idle_ms,
            start_id="0-0", count=min(self.settings.batch_size, 500),
        )
        if not claimed:
            return 0
        counts = {}
        pending = await self.r.xpending_range(
            self.feed.ingress, t.NORMALIZER_GROUP, min=claimed[0][0], max=claimed[-1][0],
            count=len(claimed) * 2, consumername=self.consumer,
        )
        for row in pending:
            counts[row["message_id"]] = row["times_delivered"]
        for eid, fields in claimed:
            deliveries = counts.get(eid, 1)
            try:
                await self.apply([(eid, fields)])
            except (RConnectionError, RTimeoutError, OSError):
                raise
            except Exception as exc:  # noqa: BLE001 - a bug: retry until max_attempts, then dead-letter
                if deliveries < self.settings.max_attempts:
                    log.error("%s entry %s failed (delivery %d): %r", self.feed.ingress, eid.decode(), deliveries, exc)
                    continue
                log.error("%s entry %s failed %d times, dead-lettered: %r", self.feed.ingress, eid.decode(),
                          deliveries, exc)
                await self.r.xadd(t.dlq(self.feed.ingress), {
                    "payload": fields.get(b"payload", b""), "source_id": eid, "stream": self.feed.ingress,
                    "error": repr(exc)[:500], "deliveries": deliveries,
                })
            await self.ack([eid])
        return len(claimed)


def subscribe(broker: RedisBroker, normalizer: Normalizer) -> None:
    """The fast path: FastStream batch subscriber reading new entries (``>``) of the group."""
    feed = normalizer.feed

    async def keep_raw(msg: Any) -> None:  # skip FastStream's body decoding; we use the raw map
        return None

    @broker.subscriber(
        stream=StreamSub(
            feed.ingress,
            group=t.NORMALIZER_GROUP,
            consumer=normalizer.consumer,
            batch=True,
            max_records=normalizer.settings.batch_size,
            polling_interval=100,
        ),
        ack_policy=AckPolicy.MANUAL,
        decoder=keep_raw,
        title=f"normalize {feed.name}",
        description=f"{feed.department}: {feed.ingress} -> evt:{{pN}} | {feed.quarantine}",
    )
    async def on_batch(body: Any, message: Any = Context("message")) -> None:
        raw = message.raw_message
        ids: list[bytes] = raw["message_ids"]
        await normalizer.apply(list(zip(ids, raw["data"])))
        await message.ack()
