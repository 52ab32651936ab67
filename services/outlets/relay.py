"""The relay: ``out:{pN}:<target>`` -> ``<target>`` (outlets, the permit quarantine, dlq:decider).

Exactly once: the position relayed up to, per target and partition, lives in ``relaypos{<target>}``
(same slot as the target) and moves in the same ``pb_relay`` call that appends to the target and
updates the roster, and only if it is still where this worker read it. The outbox is trimmed
afterwards (idempotent). Outlets keep ``PERMITBUS_OUTLET_RETENTION_DAYS`` days of decisions.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

import redis.asyncio as aioredis

from schemas.decision import decision_decoder
from services.ingress.fields import DISTRICTS
from services.runtime import topology as t
from services.runtime.lease import PartitionShare, run_partitioned
from services.runtime.outage import Outage
from services.runtime.redis import fn
from services.runtime.retention import EVERY_S, expire
from services.runtime.settings import Settings

log = logging.getLogger("permitbus.relay")
DISTRICT_INDEX = {code: str(i + 1) for i, code in enumerate(DISTRICTS)}
ENTITLEMENT_OF = {o.stream: o.entitlement for o in t.OUTLETS.values()}
SHARE_REFRESH_S = 2.0


def roster_keys(target: str) -> list[str]:
    ent = ENTITLEMENT_OF.get(target)
    if ent is None:
        return []
    return [t.roster_index(target, ent)] + [t.roster(target, ent, d) for d in DISTRICTS]


def roster_field(subject_id: str, application_id: str | None) -> str:
    return subject_id if application_id is None else f"{subject_id}|{application_id}"


class Relay:
    def __init__(self, r: aioredis.Redis, settings: Settings, partitions: Iterable[int] | None = None,
                 targets: Iterable[str] | None = None, owner: str = "relay") -> None:
        self.r = r
        self.settings = settings
        self.partitions = list(partitions) if partitions is not None else list(range(settings.partitions))
        self.share = None if partitions is not None else PartitionShare(r, "relay", owner, self.partitions)
        self.active: list[int] = [] if self.share else list(self.partitions)
        self.targets = list(targets) if targets is not None else list(t.RELAY_TARGETS)
        self.pos: dict[tuple[str, int], bytes] = {}
        self.stopping = asyncio.Event()
        self.outage = Outage(log, "relay")
        self.moved = 0
        # the targets that keep original records (quarantine, dead letters): trimmed to the retention
        self.retained = [x for x in self.targets if x.startswith(("quarantine:", "dlq:"))]
        self.expired_at = 0.0

    def stop(self) -> None:
        self.stopping.set()

    async def run(self) -> None:
        log.info("relay up for %d targets x %d partitions", len(self.targets), len(self.partitions))
        await run_partitioned(self, SHARE_REFRESH_S)

    async def _load_positions(self) -> None:
        pipe = self.r.pipeline(transaction=False)
        for target in self.targets:
            pipe.hgetall(t.relay_pos(target))
        for target, stored in zip(self.targets, await pipe.execute()):
            for p in self.active:
                self.pos[(target, p)] = stored.get(str(p).encode(), b"0-0")

    async def step(self, block_ms: int | None = None) -> int:
        if not self.pos:
            await self._load_positions()
        if self.retained and time.monotonic() - self.expired_at >= EVERY_S:
            await expire(self.r, self.retained, self.settings.quarantine_retention_days)
            self.expired_at = time.monotonic()
        streams = {t.outbox(p, target): self.pos[(target, p)] for target in self.targets for p in self.active}
        resp = await self.r.xread(streams, count=self.settings.batch_size, block=block_ms)
        if not resp:
            return 0
        index = {t.outbox(p, target).encode(): (target, p) for target in self.targets for p in self.active}
        now_ms = int(time.time() * 1000)
        minid = f"{now_ms - self.settings.outlet_retention_days * 86_400_000}-0"
        pipe = self.r.pipeline(transaction=False)
        work = []
        for name, entries in resp:
            target, p = index[name]
            args: list = [p, self.pos[(target, p)], entries[-1][0], minid if target.startswith("outlet:") else "-",
                          len(entries), now_ms if target.startswith("quarantine:") else "-"]
            has_roster = target in ENTITLEMENT_OF
            for _, fields in entries:
                args.append(len(fields))
                for k, v in fields.items():
                    args += [k, v]
                if has_roster:
                    d = decision_decoder.decode(fields[b"payload"])
                    action = "set" if d.status == "eligible" else "del"
                    args += [action, roster_field(d.subject_id, d.application_id),
                             DISTRICT_INDEX.get(d.district or "", "0")]
                else:
                    args += ["-", "", "0"]
            keys = [target, t.relay_pos(target), t.quarantine_marks(target)] + roster_keys(target)
            pipe.fcall(fn("pb_relay"), len(keys), *keys, *args)
            work.append((target, p, name, len(entries)))
        results = await pipe.execute()
        trim = self.r.pipeline(transaction=False)
        for (target, p, name, n), (ok, pos) in zip(work, results):
            self.pos[(target, p)] = pos
            if ok:
                self.moved += n
                trim.xtrim(name, minid=pos, approximate=False)
            else:
                log.info("relay %s partition %d: position moved on by another worker", target, p)
        await trim.execute()
        return sum(n for *_, n in work)
