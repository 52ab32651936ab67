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
    )
}

# Every stream the relay moves outbox entries to: the five outlets, and the quarantine of the
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


def dlq(stream: str) -> str:
    """Dead letters of a stream read by a consumer group (poison entries)."""
    return f"dlq:{stream}"


def describe() -> list[dict[str, str]]:
    """The topology as rows, for the README and ``permitbus topology``."""
    rows = []
    for f in FEEDS.values():
        writes = f"evt:{{pN}}, {f.quarantine}" + (f", {held(f.quarantine)}" if f.quarantine in RELAY_TARGETS else "")
        rows.append({"service": f"normalize {f.name}", "reads": f.ingress, "group": NORMALIZER_GROUP,
                     "writes": writes})
    rows.append({"service": "decider", "reads": "evt:{pN} (from its own applied position)", "group": "-",
                 "writes": "ppl:{pN}, arc:{pN}, out:{pN}:<target>, due:{pN}, fig:{pN}"})
    rows.append({"service": "relay", "reads": "out:{pN}:<target>, held{<quarantine>}", "group": "-",
                 "writes": ", ".join(RELAY_TARGETS) + ", roster{<outlet>}:…"})
    rows.append({"service": "scheduler", "reads": "due:{pN}", "group": "-", "writes": "evt:{pN} (date.tick)"})
    return rows
