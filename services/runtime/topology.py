"""The graph: every stream, who writes it, who reads it, in which group. One place, as data.

Keys that change together share a hash tag so that nothing rules out Redis Cluster:
a partition's state, events and outboxes live under ``{pN}``; an outlet's roster and relay
positions are tagged with the outlet's own name, so they hash to the outlet's slot.
"""

from __future__ import annotations

from dataclasses import dataclass

NORMALIZER_GROUP = "permitbus-normalize"


@dataclass(frozen=True)
class Feed:
    name: str  # e.g. "psb:permit"
    department: str

    @property
    def ingress(self) -> str:
        return f"ingress:{self.name}"

    @property
    def quarantine(self) -> str:
        return f"quarantine:{self.name}"


FEEDS: dict[str, Feed] = {
    f.name: f
    for f in (
        Feed("psb:permit", "Public Security Bureau"),
        Feed("hrss:contribution", "Human Resources and Social Security Bureau"),
        Feed("edu:application", "Education Bureau"),
        Feed("housing:application", "Housing Security and Property Bureau"),
    )
}


@dataclass(frozen=True)
class Outlet:
    stream: str
    department: str
    entitlement: str
    application_based: bool


OUTLETS: dict[str, Outlet] = {
    o.entitlement: o
    for o in (
        Outlet("outlet:psb", "Public Security Bureau", "settlement.four_districts", False),
        Outlet("outlet:edu", "Education Bureau", "education.compulsory_enrollment", True),
        Outlet("outlet:health", "Health Commission", "health.family_doctor", False),
        Outlet("outlet:housing", "Housing Bureau", "housing.security", True),
        Outlet("outlet:medins", "Medical Insurance Bureau", "medins.resident_enrollment", False),
        Outlet("outlet:hrss", "Human Resources and Social Security Bureau", "employment.unemployment_registration",
               False),
        Outlet("outlet:civil", "Civil Affairs Bureau", "civil.temporary_assistance", False),
    )
}

# Each department's outlet (docs/contract.md "Outlets"): every department has one.
DEPARTMENT_OUTLETS: dict[str, str] = {
    d: f"outlet:{d}" for d in ("psb", "hrss", "edu", "housing", "health", "medins", "civil")
}


def department_feeds(dept: str) -> list[Feed]:
    """The ingress feeds a department publishes (none for some)."""
    return [f for f in FEEDS.values() if f.name.split(":", 1)[0] == dept]


# Every stream the relay moves outbox entries to: the seven outlets, and the quarantine of the
# permit feed (UNKNOWN_PERMIT is found by the decider, which knows what permit a person holds).
# The decider's dead letters (events whose processing keeps failing) go through the relay too.
DECIDER_DLQ = "dlq:decider"
RELAY_TARGETS: tuple[str, ...] = tuple(o.stream for o in OUTLETS.values()) + (
    FEEDS["psb:permit"].quarantine,
    DECIDER_DLQ,
)


def evt(p: int) -> str:
    """Canonical events of partition p (written by normalizers and the scheduler)."""
    return f"evt:{{p{p}}}"


def people(p: int) -> str:
    """Hash: pseudonym -> Person blob."""
    return f"ppl:{{p{p}}}"


def archive(p: int) -> str:
    """Hash: pseudonym -> the person's archived contribution slots (the months before
    ``Person.archived``), written only when they change: the picture in ``people(p)`` keeps the
    recent months, so the monthly burst rewrites a few months of slots, not the whole history."""
    return f"arc:{{p{p}}}"


def filed(p: int) -> str:
    """Sorted set, all scores 0, read by lexicographic range: where a subject's applications are
    filed when they are kept in another person's picture (an education application is decided on
    the guardian's situation, so it lives in the guardian's picture; its subject is the child).
    Member: the subject's pseudonym (12 bytes), the guardian's partition (2 bytes, big-endian),
    the guardian's pseudonym (12 bytes), the application id. In the subject's partition ``p``;
    pseudonyms only. Written by the education feed's normalizer; read to explain a decision
    (``services/outlets/explain.py``)."""
    return f"filed:{{p{p}}}"


def decider_meta(p: int) -> str:
    """Hash: pos (last applied evt id), figures counters are in figures(p)."""
    return f"dec:{{p{p}}}"


def outbox(p: int, target: str) -> str:
    """Decisions (or quarantine copies) waiting for the relay to move them to ``target``."""
    return f"out:{{p{p}}}:{target}"


def due(p: int) -> str:
    """Sorted set: pseudonym -> ordinal of the next date its outcomes may change by themselves."""
    return f"due:{{p{p}}}"


def figures(p: int) -> str:
    """Hash: city figure counters of the people of partition p."""
    return f"fig:{{p{p}}}"


def attempts(p: int) -> str:
    """Hash: evt id -> failed attempts, for poison events."""
    return f"att:{{p{p}}}"


def relay_pos(target: str) -> str:
    """Hash: partition -> last outbox id moved to ``target``; same slot as ``target``."""
    return f"relaypos{{{target}}}"


def roster(target: str, entitlement: str, district: str) -> str:
    """Hash: roster key -> decision JSON, the current eligible entries of one district."""
    return f"roster{{{target}}}:{entitlement}:{district}"


def roster_index(target: str, entitlement: str) -> str:
    """Hash: roster key -> district it is currently listed in."""
    return f"rosteridx{{{target}}}:{entitlement}"


def roster_subjects(target: str, entitlement: str) -> str:
    """Hash: subject pseudonym -> msgpack list of its application ids listed on the roster (for
    application-based entitlements): a subject lookup reads its fields, not the whole index."""
    return f"rosteridx{{{target}}}:{entitlement}:subjects"


def roster_snapshot(target: str, entitlement: str, district: str, snap: str) -> tuple[str, str]:
    """One roster read's snapshot, with a TTL, for the pages after the first: a copy of the roster
    hash, and a list [outlet position, field, field, ...] in field order."""
    base = f"roster{{{target}}}:{entitlement}:{district}:snap:{snap}"
    return base, base + ":order"


def quarantine_marks(stream: str) -> str:
    """Sorted set: ingress entry ids already quarantined (score: time), same slot as the stream."""
    return f"qmarks{{{stream}}}"


def held(stream: str) -> str:
    """Hash: ingress entry id -> the payload of a record the decider may still quarantine to
    ``stream`` (``QZ``/``BG``/``ZX``: an ``UNKNOWN_PERMIT`` is found there), same slot as the stream.
    Written by the normalizer, emptied by the relay (into ``stream``, or dropped once the record
    took effect): the partition streams carry no payloads."""
    return f"held{{{stream}}}"


SCHEDULER_STATE = "sched:state"


def scheduler_state() -> str:
    """Hash: the date the scheduler last ticked for, and how many people it ticked."""
    return SCHEDULER_STATE


def dlq(stream: str) -> str:
    """Dead letters of a stream read by a consumer group (poison entries)."""
    return f"dlq:{stream}"


def dead_letter_streams() -> tuple[str, ...]:
    """Every dead-letter stream, for the operators' tools: a new one is added here, with where its
    entries came from in ``services/ops/redrive.py`` (a stream without such a rule is refused)."""
    return tuple(dlq(f.ingress) for f in FEEDS.values()) + (DECIDER_DLQ,) + RELAY_DLQS


def redrive_marks(target: str) -> str:
    """Hash: ``<parked stream> <parked id>`` -> id of its copy re-driven onto ``target``, so that a
    re-drive killed half-way and run again copies nothing twice. Same slot as ``target`` (a
    target with a hash tag of its own, ``evt:{pN}``, lends it)."""
    return f"redriven:{target}" if "{" in target else f"redriven{{{target}}}"


def redrive_times(target: str) -> str:
    """Sorted set: the marks of ``redrive_marks(target)`` by time (ms), to forget old ones."""
    return f"redriventime:{target}" if "{" in target else f"redriventime{{{target}}}"


DEMO_MARKER = "permitbus:demo"  # string: written first by ``permitbus demo`` in a Redis it may clear


def quarantine_streams() -> list[str]:
    """Where bad input is parked, one stream per feed."""
    return [f.quarantine for f in FEEDS.values()]


def lease(role: str, what: str) -> str:
    """String: the owner of a feed (``lease("normalize", "psb:permit")``) or of a partition
    (``lease("decider", "{p3}")``), with a time to live; see services/runtime/lease.py."""
    return f"lease:{role}:{what}"


def partition_lease(role: str, p: int | str) -> str:
    """A partition's lease, in the partition's slot."""
    return lease(role, f"{{p{p}}}")


def lease_changes(lease_key: str) -> str:
    """Hash: ``changes`` = how many times the lease was acquired (a worker started or took over),
    in the lease's slot; ``pb_lease`` counts them."""
    return f"{lease_key}:changes" if "{" in lease_key else f"count{{{lease_key}}}"


def members(role: str) -> str:
    """Sorted set: the live workers of a role (decider, relay) -> when their membership lapses."""
    return f"members:{role}"


def our_key_patterns() -> tuple[str, ...]:
    """Glob patterns (for SCAN MATCH) covering every key permitbus writes or reads, and nothing
    else: derived from the services' declarations in services/runtime/access.py."""
    from services.runtime.access import key_patterns

    return key_patterns()


def describe() -> list[dict[str, str]]:
    """The topology as rows (service, reads, group, writes), for ``permitbus topology``: derived
    from the declarations in services/runtime/access.py."""
    from services.runtime.access import describe as derived

    return derived()


def relay_dlq(target: str) -> str:
    """Stream: outbox entries the relay could not move to ``target`` (after ``max_attempts``),
    each with its partition, outbox id, error and deliveries. Same slot as ``target`` and its
    relay positions: parking an entry and moving the position past it are one step."""
    return f"dlq:relay{{{target}}}"


def relay_attempts(target: str) -> str:
    """Hash: ``<partition>|<outbox id>`` -> failed attempts at relaying it to ``target``."""
    return f"relayatt{{{target}}}"


RELAY_DLQS: tuple[str, ...] = tuple(relay_dlq(target) for target in RELAY_TARGETS)


def counters(stream: str) -> str:
    """Hash: counters kept with a stream's effects, in the stream's slot, for ``permitbus status``
    and ``/metrics`` (counted since the deployment began, by the Lua step that has the effect):
    of an ingress stream, ``accepted`` and ``acked`` (``pb_ack``); of a quarantine,
    ``quarantined`` and ``reason:<reason>`` (entries there now); of a relay target, ``moved``,
    ``delivered``, ``status:<status>``, ``parked`` and the decision latency's buckets
    (``pb_relay``); of an ingress dead-letter stream, ``dead_lettered``."""
    return f"count{{{stream}}}"


def ops_history() -> str:
    """Stream: samples of every stage's counters (one entry every few seconds at most, kept a few
    minutes), so that a one-shot ``permitbus status`` judges the trend of the last minute."""
    return "ops:history"


def trace_ingress(feed: str, day: str) -> str:
    """Hash, one per feed and day (``YYYYMMDD``, UTC), with a TTL: the feed's record id ->
    ``<ingress id> <where>`` (``p<N>`` its partition, ``q <reason>`` quarantined, ``d <dead letter id>``),
    written by the normalizer with the batch it applies (``permitbus trace``). Record ids only:
    no ID number, no name."""
    return f"trace{{ingress:{feed}}}:{day}"


def trace_target(target: str, day: str) -> str:
    """Hash, one per relay target and day, with a TTL: record id -> the ids of the entries it led
    to on ``target`` (decisions on an outlet; dead letters; decider quarantine copies). Written by
    ``pb_relay`` in the step that appends them; in the target's slot."""
    return f"trace{{{target}}}:{day}"


# -- the audit log of every disclosure (services/audit/) ------------------------------------------
# Every decision delivered to an outlet is also appended, in the same pb_relay step, to the audit
# stream of (outlet, partition): one hash chain per relay position, so that the chain has one
# writer exactly when the position has (its compare-and-set), whatever the number of relays. All
# of an outlet's audit keys carry the outlet's name as hash tag: they live in the outlet's slot.
AUDITED: tuple[str, ...] = tuple(o.stream for o in OUTLETS.values())


def audit(outlet: str, p: int | str) -> str:
    """Stream: the decisions delivered to ``outlet`` from partition ``p``, each under its outlet
    entry's own id, with ``prev`` (the hash of the entry before it), ``who`` (the subject's
    pseudonym) and ``dec`` (the decision sealed under the data key)."""
    return f"audit:{{{outlet}}}:p{p}"


def audit_head(outlet: str) -> str:
    """Hash: ``<p>`` -> the hash of the last audit entry of partition p (its chain's head),
    ``<p>:id`` -> that entry's id, ``<p>:anchor`` -> the prev of the first entry kept after a
    trim, ``<p>:trimmed`` -> entries trimmed, ``trim`` -> the highest retention bound trimmed to,
    ``since`` -> the first outlet id ever audited."""
    return f"audithead{{{outlet}}}"


def audit_index(outlet: str) -> str:
    """Hash: subject pseudonym -> the refs (``<audit id>@<p>``, space-separated, oldest first) of
    the decisions about that subject delivered to ``outlet`` (a person's disclosures)."""
    return f"auditidx{{{outlet}}}"


def audit_signatures(outlet: str) -> str:
    """Stream: signed heads of ``outlet``'s audit chains (``permitbus audit sign``): ``kid``,
    ``at``, ``heads`` (a line ``<p> <id> <hash hex>`` per partition), ``sig`` (Ed25519)."""
    return f"auditsig{{{outlet}}}"
