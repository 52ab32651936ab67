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
from services.runtime.identity import Pseudonymizer
from services.runtime.lease import PartitionShare, run_partitioned
from services.runtime.outage import Outage
from services.runtime.redis import fn
from services.runtime.settings import Settings

log = logging.getLogger("permitbus.relay")
DISTRICT_INDEX = {code: str(i + 1) for i, code in enumerate(DISTRICTS)}
ENTITLEMENT_OF = {o.stream: o.entitlement for o in t.OUTLETS.values()}
SHARE_REFRESH_S = 2.0


def roster_keys(target: str) -> list[str]:
    ent = ENTITLEMENT_OF.get(target)
    if ent is None:
        return []
    return ([t.roster_index(target, ent)] + [t.roster(target, ent, d) for d in DISTRICTS]
            + [t.roster_subjects(target, ent)])


def roster_field(subject_id: str, application_id: str | None) -> str:
    return subject_id if application_id is None else f"{subject_id}|{application_id}"


def roster_change(fields: dict[bytes, bytes], pseudonym: Pseudonymizer) -> tuple[dict[bytes, bytes], list]:
    """An outbox entry of an outlet -> (the fields to append, pb_relay's roster arguments: action,
    roster field, district index, subject pseudonym, application id). The decider states the action
    (field ``roster``: an application decided after its closing day is not listed although
    eligible); an entry with no ``payload`` is a closed application leaving its roster (field
    ``field``) and appends nothing. Entries of a decider of an earlier release state no action:
    listed while eligible, as that release did. The subject index is keyed by pseudonym (an index
    holds no ID in clear, CONTRACT.md)."""
    stated = fields.get(b"roster")
    payload = fields.get(b"payload")
    if payload is None:
        key = fields.get(b"field", b"")
        subject, _, app = key.partition(b"|")
        return {}, [stated or b"-", key, "0", pseudonym(subject.decode()) if app else b"", app]
    d = decision_decoder.decode(payload)
    action = stated or (b"set" if d.status == "eligible" else b"del")
    out = {k: v for k, v in fields.items() if k != b"roster"}
    who = pseudonym(d.subject_id) if d.application_id is not None else b""
    return out, [action, roster_field(d.subject_id, d.application_id), DISTRICT_INDEX.get(d.district or "", "0"),
                 who, d.application_id or ""]


async def index_subjects(r: aioredis.Redis, pseudonym: Pseudonymizer) -> int:
    """Rosters of applications listed before their subject index existed (an upgrade): build the
    index from the roster index, once (the index's field ``built`` says it is complete). Idempotent,
    and safe beside a running relay: ``pb_index_subjects`` adds only fields still listed."""
    n = 0
    for o in t.OUTLETS.values():
        idx, subjects = t.roster_index(o.stream, o.entitlement), t.roster_subjects(o.stream, o.entitlement)
        if not o.application_based or await r.hexists(subjects, "built"):
            continue
        args: list = []
        async for f, _ in r.hscan_iter(idx, count=1000):
            subject, _, app = f.partition(b"|")
            args += [pseudonym(subject.decode()), app, f]
            if len(args) >= 3000:
                n += await r.fcall(fn("pb_index_subjects"), 2, idx, subjects, *args)
                args = []
        n += await r.fcall(fn("pb_index_subjects"), 2, idx, subjects, *args, "built")
        if n:
            log.info("%s: subject index built for %d roster entries listed before it", o.entitlement, n)
    return n


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
        self.pseudonym = Pseudonymizer(settings.pseudonym_key)
        self.indexed = False  # rosters listed before the subject index: indexed at start

    def stop(self) -> None:
        self.stopping.set()

    async def run(self) -> None:
        log.info("relay up for %d targets x %d partitions", len(self.targets), len(self.partitions))
        await run_partitioned(self, SHARE_REFRESH_S)

    async def _load_positions(self) -> None:
        if not self.indexed:
            await index_subjects(self.r, self.pseudonym)
            self.indexed = True
        pipe = self.r.pipeline(transaction=False)
        for target in self.targets:
            pipe.hgetall(t.relay_pos(target))
        for target, stored in zip(self.targets, await pipe.execute()):
            for p in self.active:
                self.pos[(target, p)] = stored.get(str(p).encode(), b"0-0")

    async def step(self, block_ms: int | None = None) -> int:
        if not self.pos:
            await self._load_positions()
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
                roster = ["-", "", "0", "", ""]
                if has_roster:
                    fields, roster = roster_change(fields, self.pseudonym)
                args.append(len(fields))
                for k, v in fields.items():
                    args += [k, v]
                args += roster
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
