"""The relay: ``out:{pN}:<target>`` -> ``<target>`` (outlets, the permit quarantine, dlq:decider).

Exactly once: the position relayed up to, per target and partition, lives in ``relaypos{<target>}``
(same slot as the target) and moves in the same ``pb_relay`` call that appends to the target and
updates the roster, and only if it is still where this worker read it. The outbox is trimmed
afterwards (idempotent). Outlets keep ``PERMITBUS_OUTLET_RETENTION_DAYS`` days of decisions.

Bounded: a partition's entries for a target go in calls of at most ``batch_size`` entries and
about ``lua_call_bytes`` of arguments, each moving the position past its own entries.

Fault isolation: an entry that cannot be prepared (its decision does not decode) or whose call
Redis refuses for its arguments (``pb_relay`` checks them before its first write: nothing was
written) is retried, counted in ``relayatt{<target>}``, and after ``max_attempts`` parked in
``dlq:relay{<target>}`` by the same ``pb_relay`` call that moves the position past it; the entries
after it flow. A refused call is retried entry by entry to find the one at fault.

Audit (services/audit/chain.py): every entry appended to an outlet is appended to the audit
stream of (outlet, partition) by the same ``pb_relay`` call, with its pseudonym, its decision
sealed, and the hash of the audit entry before it; the relay computes the hashes, chaining from
the head it holds for (outlet, partition) (read with the positions), and ``pb_relay`` checks that
head against the stored one. A parked entry or a closure delivers nothing and is not audited.
The audit streams are trimmed to ``PERMITBUS_AUDIT_RETENTION_DAYS`` (``pb_audit_trim``) and the
audit index pruned of what was trimmed (``pb_audit_prune``), in the relay's periodic step.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

import msgspec
import redis.asyncio as aioredis

from schemas.decision import decision_decoder
from schemas.districts import DISTRICTS, INDEX
from services.runtime import topology as t
from services.runtime.identity import Pseudonymizer
from services.runtime.lease import PartitionShare, run_partitioned
from services.runtime.faults import brief, refused_for_data
from services.runtime.outage import Outage
from services.runtime.redis import fn, stream_id, xread
from services.audit import chain
from services.runtime.retention import EVERY_S, expire, minid as retention_minid
from services.runtime.settings import Settings
from services.ops.trace import day_of, record_ids_of_entry

log = logging.getLogger("permitbus.relay")
DISTRICT_INDEX = {code: str(i) for code, i in INDEX.items()}  # stored in roster indexes (schemas/districts.py)
ENTITLEMENT_OF = {o.stream: o.entitlement for o in t.OUTLETS.values()}
SHARE_REFRESH_S = 2.0
PRUNE_SCAN = 1000  # audit index fields looked at per outlet and periodic step


class _Subject(msgspec.Struct):
    subject_id: str


_subject_decoder = msgspec.json.Decoder(_Subject)


def roster_keys(target: str) -> list[str]:
    ent = ENTITLEMENT_OF.get(target)
    if ent is None:
        return []
    return ([t.roster_index(target, ent)] + [t.roster(target, ent, d) for d in DISTRICTS]
            + [t.roster_subjects(target, ent)])


def roster_field(subject_id: str, application_id: str | None) -> str:
    return subject_id if application_id is None else f"{subject_id}|{application_id}"


def roster_change(fields: dict[bytes, bytes], pseudonym: Pseudonymizer) -> tuple[dict[bytes, bytes], list]:
    return _roster_change(fields, pseudonym)[:2]


def _roster_change(fields: dict[bytes, bytes], pseudonym: Pseudonymizer) -> tuple[dict[bytes, bytes], list, list]:
    """An outbox entry of an outlet -> (the fields to append, pb_relay's roster arguments: action,
    roster field, district index, subject pseudonym, application id). The decider states the action
    (field ``roster``: an application decided after its closing day is not listed although
    eligible); an entry with no ``payload`` is a closed application leaving its roster (field
    ``field``) and appends nothing. Entries of a decider of an earlier release state no action:
    listed while eligible, as that release did. The subject index is keyed by pseudonym (an index
    holds no ID in clear, docs/contract.md, "Personal data at rest")."""
    stated = fields.get(b"roster")
    payload = fields.get(b"payload")
    if payload is None:
        key = fields.get(b"field", b"")
        subject, _, app = key.partition(b"|")
        return {}, [stated or b"-", key, "0", pseudonym(subject.decode()) if app else b"", app], []
    d = decision_decoder.decode(payload)
    action = stated or (b"set" if d.status == "eligible" else b"del")
    out = {k: v for k, v in fields.items() if k != b"roster"}
    out[b"_s"] = d.status.encode()  # counted by pb_relay (decisions per status), not appended
    who = pseudonym(d.subject_id) if d.application_id is not None else b""
    return out, [action, roster_field(d.subject_id, d.application_id), DISTRICT_INDEX.get(d.district or "", "0"),
                 who, d.application_id or ""], d.caused_by


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
        # per (outlet, partition): the head of its audit chain, read with the positions
        self.chains: dict[tuple[str, int], bytes] = {}
        self.prune_cursor: dict[str, int] = {}
        self.ahead_said: set[tuple[str, int]] = set()
        self.stopping = asyncio.Event()
        self.outage = Outage(log, "relay")
        self.moved = 0
        self.pseudonym = Pseudonymizer(settings.pseudonym_secret())
        self.indexed = False  # rosters listed before the subject index: indexed at start
        self.keys = settings.data_keyring()  # opens the held payloads of records it quarantines
        # per (target, partition): outbox entries whose attempts were counted and not yet cleared
        self.retried: dict[tuple[str, int], set[bytes]] = {}
        # what keeps original records (the quarantine and dead letters it writes, and its own dead
        # letters): trimmed to the retention
        self.retained = [x for x in self.targets if x.startswith(("quarantine:", "dlq:"))]
        self.retained += [t.relay_dlq(x) for x in self.targets]
        self.expired_at = 0.0

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
        audited = [x for x in self.targets if x in t.AUDITED]
        for target in audited:
            pipe.hgetall(t.audit_head(target))
        replies = await pipe.execute()
        for target, stored in zip(self.targets, replies):
            for p in self.active:
                self.pos[(target, p)] = stored.get(str(p).encode(), b"0-0")
        for target, heads in zip(audited, replies[len(self.targets):]):
            for p in self.active:
                self.chains[(target, p)] = heads.get(str(p).encode()) or chain.genesis(t.audit(target, p))

    async def step(self, block_ms: int | None = None) -> int:
        if not self.pos:
            await self._load_positions()
        if time.monotonic() - self.expired_at >= EVERY_S:
            await self._expire()
            self.expired_at = time.monotonic()
        streams = {t.outbox(p, target): self.pos[(target, p)] for target in self.targets for p in self.active}
        resp = await xread(self.r, streams, count=self.settings.batch_size, block=block_ms)
        if not resp:
            return 0
        index = {t.outbox(p, target).encode(): (target, p) for target in self.targets for p in self.active}
        now_ms = int(time.time() * 1000)
        minid = f"{now_ms - self.settings.outlet_retention_days * 86_400_000}-0"
        runs = []
        for name, entries in resp:
            target, p = index[name]
            if target.startswith("quarantine:"):
                entries = await self._with_held_payloads(target, entries)
            prepared = []
            for eid, fields in entries:
                try:
                    prepared.append((eid, _entry_args(target, fields, self.pseudonym), self._audit(target, fields)))
                except Exception as exc:  # noqa: BLE001 - the entry's fault: isolate it
                    parked = await self._fault(target, p, name, eid, fields, exc)
                    if parked is None:
                        break  # retried with the next read; the entries before it go now
                    prepared.append((eid, parked, None))
            if prepared:
                runs.append(_Run(target, p, name, prepared, self._head(target, p, now_ms, minid)))
        pipe = self.r.pipeline(transaction=False)
        for run in runs:
            pos, head = self.pos[(run.target, run.p)], self.chains.get((run.target, run.p))
            for chunk in _chunks(run.prepared, self.settings.lua_call_bytes):
                head = self._queue(pipe, run, pos, chunk, head)
                run.calls.append((chunk, head))
                pos = chunk[-1][0]
        replies = iter(await _execute(pipe, sum(len(run.calls) for run in runs)))
        trim = self.r.pipeline(transaction=False)
        moved = 0
        for run in runs:
            # each call expects the position the one before it leaves: after one not applied, the
            # rest were not either (they are read again)
            for (chunk, head), reply in [(call, next(replies)) for call in run.calls]:
                if isinstance(reply, BaseException):
                    if not refused_for_data(reply):
                        raise reply
                    moved += await self._one_by_one(run, chunk, reply)
                    break
                if not self._applied(run, reply, head):
                    break
                moved += len(chunk)
            # exact, and past the position itself: the outbox holds exactly what waits (its length
            # is the stage's backlog, services/ops/status.py)
            trim.xtrim(run.name, minid=_after(self.pos[(run.target, run.p)]), approximate=False)
            self._clear_attempts(trim, run)
        self.moved += moved
        await trim.execute()
        return sum(len(run.prepared) for run in runs)

    async def _with_held_payloads(self, target: str, entries: list) -> list:
        """A decider's quarantine entries (``UNKNOWN_PERMIT``) name the record by its ingress id;
        its payload waits in ``held{<target>}``, sealed under the data key (docs/contract.md, "Personal data at rest": names and
        IDs rest in clear only in the quarantine itself). Read them in one HMGET and open them here;
        pb_relay copies them and drops the held ones in the step that moves the position. Rare:
        renewals, moves and cancellations of permits nobody holds."""
        wanted = [fields[b"source_id"] for _, fields in entries
                  if fields.get(b"action") == b"quarantine" and b"payload" not in fields and b"source_id" in fields]
        if not wanted:
            return entries
        blobs = dict(zip(wanted, await self.r.hmget(t.held(target), wanted)))
        out = []
        for eid, fields in entries:
            blob = blobs.get(fields.get(b"source_id")) if fields.get(b"action") == b"quarantine" else None
            out.append((eid, {**fields, b"payload": self.keys.open_record(blob)} if blob else fields))
        return out

    def _head(self, target: str, p: int, now_ms: int, minid: str) -> tuple[list, list]:
        """pb_relay's keys and leading arguments (after the positions) for ``target``."""
        keys = [target, t.relay_pos(target), t.quarantine_marks(target)] + roster_keys(target)
        if target in t.AUDITED:  # its audit stream (this partition's), head and index: pb_relay's keys 17-19
            keys += [t.audit(target, p), t.audit_head(target), t.audit_index(target)]
        if target.startswith("quarantine:"):
            keys.append(t.held(target))  # payloads of records the decider may quarantine (pb_hold)
        keys += [t.relay_dlq(target), t.relay_attempts(target), t.counters(target),
                 t.trace_target(target, day_of(now_ms))]
        return keys, [minid if target.startswith("outlet:") else "-",
                      now_ms if target.startswith("quarantine:") else "-"]

    def _audit(self, target: str, fields: dict[bytes, bytes]) -> tuple[bytes, bytes] | None:
        """What the audit log keeps of an outbox entry the outlet will receive: the subject's
        pseudonym and the decision sealed (None for another target, or a closure: no delivery)."""
        payload = fields.get(b"payload")
        if target not in t.AUDITED or payload is None:
            return None
        return self.pseudonym(_subject_decoder.decode(payload).subject_id), self.keys.seal_audit(payload)

    def _queue(self, pipe, run: "_Run", pos: bytes, chunk: list, head: bytes | None) -> bytes | None:
        """Queue one pb_relay call; returns the audit chain's head after it (``head`` chained
        through the call's audited entries)."""
        keys, (minid, now) = run.head
        if head is None and run.target in t.AUDITED:  # a bug, not the entries' fault: never park them for it
            raise RuntimeError(f"relay: no audit head loaded for {run.target} partition {run.p}")
        args = [run.p, pos, chunk[-1][0], minid, len(chunk), now, "-" if head is None else head]
        for _, entry, audit in chunk:
            args += entry[:-1]  # the last item is the entry's trace line
            if audit is None:
                args += ["", "", ""]
            else:
                head = chain.link(head, *audit)
                args += [*audit, head]
        args += [self.settings.trace_days * 86_400_000, "".join(entry[-1] + "\n" for _, entry, _ in chunk)]
        pipe.fcall(fn("pb_relay"), len(keys), *keys, *args)
        return head

    def _applied(self, run: "_Run", reply: list, head: bytes | None) -> bool:
        """A pb_relay reply: True if the call was applied (the position and the audit head move
        on), else adopt what Redis holds (read again from there)."""
        ok, pos, *stored = reply
        key = (run.target, run.p)
        if ok:
            self.pos[key] = pos
            if head is not None:
                self.chains[key] = head
            self.ahead_said.discard(key)
            return True
        if head is not None:  # the head the chain must go on from (the genesis when none is stored)
            self.chains[key] = stored[0] or chain.genesis(t.audit(run.target, run.p))
        if len(stored) > 1:
            if key not in self.ahead_said:  # said once, then retried at every step until repaired
                log.error("relay %s partition %d: %s holds entry %s, after the outlet's last id: nothing is "
                          "delivered from this partition until an operator repairs it (permitbus audit verify)",
                          run.target, run.p, t.audit(run.target, run.p), stored[1].decode())
                self.ahead_said.add(key)
        elif pos == self.pos[key]:
            log.error("relay %s partition %d: the stored audit head is not the one this relay chained from: "
                      "chaining from the stored one (permitbus audit verify)", run.target, run.p)
        else:
            log.info("relay %s partition %d: position moved on by another worker", run.target, run.p)
        self.pos[key] = pos
        return False

    async def _expire(self) -> None:
        """The periodic retention step: what keeps original records (quarantine and dead letters
        written here) after ``PERMITBUS_QUARANTINE_RETENTION_DAYS``; the audit streams of the
        partitions held after ``PERMITBUS_AUDIT_RETENTION_DAYS``, and the audit index's refs of
        what was trimmed (a slice of each index per step: the index has a field per person)."""
        if self.retained:
            await expire(self.r, self.retained, self.settings.quarantine_retention_days)
        bound = retention_minid(self.settings.audit_retention_days)
        audited = [x for x in self.targets if x in t.AUDITED]
        pipe = self.r.pipeline(transaction=False)
        for target in audited:
            for p in self.active:
                pipe.fcall(fn("pb_audit_trim"), 2, t.audit(target, p), t.audit_head(target), p, bound)
        if audited and self.active:
            await pipe.execute()
        bound_ms = int(bound.split("-")[0])
        for target in audited:
            cursor, fields = await self.r.hscan(t.audit_index(target), self.prune_cursor.get(target, 0),
                                                count=PRUNE_SCAN)
            self.prune_cursor[target] = cursor
            old = [who for who, refs in fields.items() if int(refs.split(b"-", 1)[0]) < bound_ms]
            if old:
                await self.r.fcall(fn("pb_audit_prune"), 1, t.audit_index(target), bound_ms, *old)

    async def _one_by_one(self, run: "_Run", chunk: list, exc: BaseException) -> int:
        """A call Redis refused for its arguments (it wrote nothing): relay its entries one at a
        time; the one refused is retried, and parked once it has failed ``max_attempts`` times."""
        log.error("relay %s partition %d: Redis refused %d entries (%s); relaying them one at a time",
                  run.target, run.p, len(chunk), brief(exc))
        moved = 0
        for eid, entry, audit in chunk:
            for attempt in range(2):
                pipe = self.r.pipeline(transaction=False)
                head = self._queue(pipe, run, self.pos[(run.target, run.p)], [(eid, entry, audit)],
                                   self.chains.get((run.target, run.p)))
                (reply,) = await _execute(pipe, 1)
                if not isinstance(reply, BaseException):
                    break
                if not refused_for_data(reply) or attempt:
                    raise reply  # a parked entry refused: not the entry's fault
                fields = await self._fields(run.name, eid)
                entry, audit = await self._fault(run.target, run.p, run.name, eid, fields, reply), None
                if entry is None:
                    return moved
            if not self._applied(run, reply, head):
                return moved
            moved += 1
        return moved

    def _clear_attempts(self, pipe, run: "_Run") -> None:
        """Entries that failed before and are now relayed (a fault that went away): clear their
        attempts (after the step: a crash in between leaves a counter, nothing else)."""
        retried = self.retried.get((run.target, run.p))
        if not retried:
            return
        pos = stream_id(self.pos[(run.target, run.p)])
        done = {eid for eid in retried if stream_id(eid) <= pos}
        if done:
            pipe.hdel(t.relay_attempts(run.target), *[f"{run.p}|{eid.decode()}" for eid in done])
            retried -= done

    async def _fields(self, name: bytes, eid: bytes) -> dict[bytes, bytes]:
        rows = await self.r.xrange(name, eid, eid)
        return rows[0][1] if rows else {}

    async def _fault(self, target: str, p: int, name: bytes, eid: bytes, fields: dict, exc: BaseException):
        """Count a failed attempt at relaying outbox entry ``eid``. None: retry it later; else
        the arguments that park it (the entry as it was, the error and its deliveries)."""
        att = f"{p}|{eid.decode()}"
        attempts = await self.r.hincrby(t.relay_attempts(target), att, 1)
        if attempts < self.settings.max_attempts:
            self.retried.setdefault((target, p), set()).add(eid)
            log.error("relay %s partition %d entry %s failed, attempt %d: %s", target, p, eid.decode(), attempts,
                      brief(exc))
            return None
        log.error("relay %s partition %d entry %s failed %d times, parked in %s: %s", target, p, eid.decode(),
                  attempts, t.relay_dlq(target), brief(exc))
        dead = {b"fields": msgspec.msgpack.encode(fields)}
        if b"payload" in fields:
            dead[b"payload"] = fields[b"payload"]
        dead |= {b"source_id": eid, b"stream": name, b"target": target.encode(), b"error": brief(exc).encode(),
                 b"deliveries": str(attempts).encode()}
        args: list = [len(dead)]
        for k, v in dead.items():
            args += [k, v]
        return args + ["park", att, "0", "", "", _parked_trace(target, fields)]


async def _execute(pipe, n: int) -> list:
    """The pipeline's replies, refusals as values; when redis-py cannot encode an argument
    (nothing is sent), that refusal stands for each of the ``n`` calls."""
    try:
        return await pipe.execute(raise_on_error=False)
    except Exception as exc:  # noqa: BLE001
        if refused_for_data(exc):
            return [exc] * n
        raise


class _Run:
    """One partition's outbox entries for one target, read in this step, and the calls made."""

    def __init__(self, target: str, p: int, name: bytes, prepared: list, head: tuple) -> None:
        self.target, self.p, self.name, self.prepared, self.head = target, p, name, prepared, head
        self.calls: list[list] = []


def _entry_args(target: str, fields: dict[bytes, bytes], pseudonym: Pseudonymizer) -> list:
    """An outbox entry's part of pb_relay's arguments: its fields (without the decider's roster
    action), and its roster change (``roster_change``); then, last, its trace line (the record ids
    that caused it, for ``permitbus trace``), which ``_queue`` sends after all entries."""
    roster, caused_by = ["-", "", "0", "", ""], None
    if target in ENTITLEMENT_OF:
        fields, roster, caused_by = _roster_change(fields, pseudonym)
    line = record_ids_of_entry(target, fields, caused_by)
    args: list = [len(fields)]
    for k, v in fields.items():
        args += [k, v]
    return args + roster + [line]


def _parked_trace(target: str, fields: dict[bytes, bytes]) -> str:
    """The record ids of an entry being parked, when it still yields them (it may not decode)."""
    try:
        caused = decision_decoder.decode(fields[b"payload"]).caused_by if target in ENTITLEMENT_OF else None
        return record_ids_of_entry(target, fields, caused)
    except Exception:  # noqa: BLE001 - what could not be read is not traced; it is parked all the same
        return ""


def _after(entry_id: bytes | str) -> str:
    """The smallest stream id after ``entry_id``: trimming MINID there removes the entry too."""
    ms, seq = stream_id(entry_id)
    return f"{ms}-{seq + 1}"


def _chunks(prepared: list, limit: int) -> list[list]:
    """Consecutive entries (with their audit) in calls of about ``limit`` bytes of arguments (an
    entry larger than that goes alone)."""
    chunks: list[list] = []
    size = limit + 1
    for eid, args, audit in prepared:
        n = sum(len(x) + 16 if isinstance(x, (bytes, str)) else 16 for x in args)
        n += 3 * 16 + (len(audit[0]) + len(audit[1]) + 32 if audit else 0)
        if size + n > limit:
            chunks.append([])
            size = 0
        chunks[-1].append((eid, args, audit))
        size += n
    return chunks

