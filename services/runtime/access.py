"""Who touches what: every service's keys and commands, declared once, as data.

Each service (a feed's normalizer, the decider, the relay, the scheduler, the read API, the
operator commands, the set-up step) and each department lists its ``Use``s: which commands it runs
on which keys, the keys built by the key functions of ``topology.py`` (``t.evt("*")`` is the family
``evt:{p*}``). Commands that Lua functions run are declared with the function (``FUNCTIONS``): Redis
7 checks them against the caller's ACL too. Derived from these declarations, never written twice:

* ``permitbus topology`` (``describe``) and the README's table of keys (``markdown_table``; a test
  keeps the README's copy current);
* the Redis ACL file (``services/runtime/acl.py``): one user per service, one per department;
* every list of "our keys" (``key_patterns``: the demo's clean-up).

The end-to-end tests run each service under the ACL user generated from its declaration, so a key
or a command the code uses and the declaration lacks fails the suite with ``NOPERM``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from services.runtime import topology as t

# Commands that only read the data (the consumer-group bookkeeping of XREADGROUP/XACK/XAUTOCLAIM
# and XGROUP CREATE counts as reading: it changes no entry). Everything else writes.
READS = frozenset({"xread", "xreadgroup", "xrange", "xrevrange", "xlen", "xinfo|groups", "xinfo|stream",
                   "xpending", "xautoclaim", "xclaim", "xack", "xgroup", "xgroup|create", "hget", "hmget", "hgetall",
                   "hscan", "hkeys", "hexists", "zrange", "zrangebyscore", "zscore", "get", "exists", "lindex",
                   "lrange", "llen", "zcount"})
# Commands whose Redis key specification asks only for write access (XADD: "RW INSERT"), so a
# user may append to a stream it cannot read (``%W~``). Commands in neither set need both.
APPENDS = frozenset({"xadd"})
READ_ONLY = frozenset(READS - {"xreadgroup", "xack", "xautoclaim", "xclaim", "xgroup", "xgroup|create"})

# What each function of permitbus.lua runs, per position in its KEYS (its header comment); the
# last position repeats for variadic keys (pb_commit's outboxes, pb_relay's rosters).
FUNCTIONS: dict[str, tuple[tuple[str, ...], ...]] = {
    "pb_quarantine": (("xadd",), ("zscore", "zadd", "zremrangebyscore"), ("hincrby",)),
    "pb_hold": (("hset",), ("zscore",)),
    "pb_trace": (("hset", "pexpire"),),
    "pb_reseal": (("hget", "hset"),),
    "pb_commit": (("hget", "hset", "hincrby"), ("hset",), ("zadd", "zrem"), ("hincrby",), ("xtrim",), ("hdel",), ("hset",),
                  ("xadd",)),
    "pb_ack": (("xack", "xrange"), ("hget", "hset", "hincrby")),
    "pb_rewind": (("xinfo|groups", "xgroup|setid"), ("hget", "hset")),
    "pb_attempt": (("hincrby",),),
    # an outlet's 1st key: EXISTS and XINFO STREAM too (its last id, which its audit stream may
    # not pass); its 17th-19th: its audit stream, audit head and audit index
    "pb_relay": (("xadd", "xtrim", "exists", "xinfo|stream"), ("hget", "hset"), ("zscore", "zadd"),
                 ("hget", "hdel", "hset"), ("hdel", "hset"), ("hget", "hset", "hdel"), ("xadd", "xrevrange"),
                 ("hget", "hset", "hsetnx"), ("hget", "hset"), ("xadd",), ("hdel",), ("hincrby",),
                 ("hget", "hset", "pexpire")),
    # (a quarantine target's 4th key is its held payloads: HGET, HDEL, both declared above)
    "pb_audit_trim": (("xtrim", "xrange"), ("hget", "hset", "hincrby")),
    "pb_audit_prune": (("hget", "hset", "hdel"),),
    "pb_roster_page": (("exists", "xinfo|stream"), ("hkeys", "hmget", "copy"), ("copy", "hmget", "pexpire"),
                       ("rpush", "pexpire")),
    "pb_roster_next": (("hmget",), ("lindex", "lrange", "llen")),
    "pb_subject": (("hget",), ("hget",), ("hget",)),
    "pb_index_subjects": (("hexists",), ("hget", "hset", "hdel")),
    "pb_redrive": (("xadd",), ("hget", "hset", "hdel"), ("zadd", "zrangebyscore", "zrem"), ("xrange", "xdel"),
                   ("hincrby",)),
    "pb_unpark": (("xrange", "xdel"), ("hincrby",)),
    "pb_stream_head": (("xrange", "xlen"),),
    "pb_lease": (("get", "set", "del"), ("hincrby",)),
}
# flags = {'no-writes'}: called with FCALL_RO
READ_ONLY_FUNCTIONS = frozenset({"pb_roster", "pb_roster_next", "pb_subject", "pb_stream_head"})


@dataclass(frozen=True)
class Use:
    """``commands`` run on keys matching ``keys`` (names or glob patterns; none: commands that
    take no key, like PING)."""

    keys: tuple[str, ...]
    commands: tuple[str, ...]

    @property
    def mode(self) -> str:
        """The key permission the commands need: ``R`` (``%R~``), ``W`` (``%W~``) or ``RW`` (``~``)."""
        cmds = set(self.commands)
        if cmds <= READ_ONLY | {"fcall_ro"}:
            return "R"
        if cmds <= APPENDS:
            return "W"
        return "RW"

    @property
    def reads(self) -> bool:
        return any(c in READS for c in self.commands)

    @property
    def writes(self) -> bool:
        return any(c not in READS and not c.startswith("fcall") for c in self.commands)


def uses(keys: str | Iterable[str], *commands: str) -> Use:
    return Use((keys,) if isinstance(keys, str) else tuple(keys), tuple(commands))


def calls(function: str, *keys: str | Iterable[str]) -> tuple[Use, ...]:
    """FCALL ``function`` with these KEYS (one pattern, or several, per position): the call itself
    (it must reach every key) and the commands the function runs on each."""
    groups = [(k,) if isinstance(k, str) else tuple(k) for k in keys]
    per_key = FUNCTIONS[function]
    out = [Use(tuple(k for g in groups for k in g), ("fcall_ro" if function in READ_ONLY_FUNCTIONS else "fcall",))]
    for i, g in enumerate(groups):
        if g:  # an empty group holds a position (a target without rosters)
            out.append(Use(g, per_key[min(i, len(per_key) - 1)]))
    return tuple(out)


@dataclass(frozen=True)
class Service:
    name: str  # as ``permitbus topology`` shows it
    user: str  # its Redis ACL user
    uses: tuple[Use, ...]
    group: str = "-"

    def keys(self, read: bool) -> list[str]:
        return list(dict.fromkeys(k for u in self.uses for k in u.keys if (u.reads if read else u.writes)))

    def commands(self) -> list[str]:
        return sorted({c for u in self.uses for c in u.commands})


# A Redis Cluster client (PERMITBUS_REDIS_CLUSTER_URL, docs/contract.md "Running") learns the
# slots (CLUSTER SLOTS) and the commands' key positions (COMMAND) when it connects, and after a
# MOVED. Every user may, so one ACL file serves one server or every node of a cluster.
CLUSTER_CLIENT = ("cluster|slots", "cluster|shards", "command")
# Every worker answers PING (health checks) and looks for this release's functions at start.
WORKER = uses((), *CLUSTER_CLIENT, "ping", "function|list")


def _outboxes(targets: Iterable[str] = t.RELAY_TARGETS) -> tuple[str, ...]:
    return tuple(t.outbox("*", target) for target in targets)


def normalize(feed: t.Feed) -> Service:
    return Service(f"normalize {feed.name}", "pb-normalize", (
        # FastStream's StreamSub runs XGROUP CREATE at every start (declare=False only drops
        # MKSTREAM); `permitbus setup` created the group at 0, so it answers BUSYGROUP.
        uses(feed.ingress, "xreadgroup", "xautoclaim", "xpending", "xinfo|groups", "xtrim", "xgroup|create"),
        *calls("pb_ack", feed.ingress, t.counters(feed.ingress)),
        *calls("pb_rewind", feed.ingress, t.counters(feed.ingress)),
        uses(t.evt("*"), "xadd"),
        *calls("pb_quarantine", feed.quarantine, t.quarantine_marks(feed.quarantine), t.counters(feed.quarantine)),
        # QZ/BG/ZX payloads wait for the decider's verdict beside the quarantine they may go to
        *(calls("pb_hold", t.held(feed.quarantine), t.quarantine_marks(feed.quarantine))
          if feed.quarantine in t.RELAY_TARGETS else ()),
        # a dead letter and its count in one transaction
        uses(t.dlq(feed.ingress), "xadd"),
        uses(t.counters(t.dlq(feed.ingress)), "hincrby"),
        uses((), "multi", "exec"),
        # the original records are kept PERMITBUS_QUARANTINE_RETENTION_DAYS (services/runtime/retention.py)
        uses((feed.quarantine, t.dlq(feed.ingress)), "xtrim"),
        *calls("pb_lease", t.lease("normalize", feed.name), t.lease_changes(t.lease("normalize", feed.name))),
        # where a child's applications are filed: the guardian's picture (explaining a decision)
        *((uses(t.filed("*"), "zadd"),) if feed.name == "edu:application" else ()),
        *calls("pb_trace", t.trace_ingress(feed.name, "*")),  # permitbus trace's index, a batch a call
        uses(t.trace_ingress(feed.name, "*"), "hset", "pexpire"),  # ... and a dead letter's line
        WORKER,
    ), group=t.NORMALIZER_GROUP)


def decide() -> Service:
    return Service("decide", "pb-decide", (
        uses(t.evt("*"), "xread"),
        uses(t.decider_meta("*"), "hget"),
        uses((t.people("*"), t.archive("*")), "hmget"),
        *calls("pb_commit", t.decider_meta("*"), t.people("*"), t.due("*"), t.figures("*"), t.evt("*"),
               t.attempts("*"), t.archive("*"), _outboxes()),
        *calls("pb_attempt", t.attempts("*")),
        *_share("decider"),
        WORKER,
    ))


def _share(role: str) -> tuple[Use, ...]:
    return (*calls("pb_lease", t.partition_lease(role, "*"), t.lease_changes(t.partition_lease(role, "*"))),
            uses(t.members(role), "zadd", "zremrangebyscore", "zrange", "zrem"))


def _rosters(target: str) -> tuple[tuple[str, ...], ...]:
    """The roster keys pb_relay and the API touch for ``target``: its index, its district hashes,
    its subject index."""
    o = next((o for o in t.OUTLETS.values() if o.stream == target), None)
    if o is None:
        return ()
    return ((t.roster_index(target, o.entitlement),), (t.roster(target, o.entitlement, "*"),),
            (t.roster_subjects(target, o.entitlement),))


def _audit_keys(target: str) -> tuple[tuple[str, ...], ...]:
    """An outlet's audit keys as pb_relay takes them (stream of every partition, head, index);
    empty positions for another target."""
    if target not in t.AUDITED:
        return (), (), ()
    return (t.audit(target, "*"),), (t.audit_head(target),), (t.audit_index(target),)


def relay() -> Service:
    moves = []
    for target in t.RELAY_TARGETS:
        # positions kept: the relay's dead letters come last; a quarantine target has held payloads
        rosters = _rosters(target) or ((t.held(target),) if target.startswith("quarantine:") else (), (), ())
        moves += calls("pb_relay", target, t.relay_pos(target), t.quarantine_marks(target), *rosters,
                       *_audit_keys(target), t.relay_dlq(target), t.relay_attempts(target), t.counters(target),
                       t.trace_target(target, "*"))
        # a failed entry's attempts are counted (and cleared once it goes through); it is re-read to park it
        moves += [uses(t.relay_attempts(target), "hincrby", "hdel")]
        if target.startswith("quarantine:"):  # the held payloads of the records it quarantines, read
            moves += [uses(t.held(target), "hmget")]  # before pb_relay (services/outlets/relay.py)
    # at start, rosters listed before their subject index existed are indexed once (an upgrade)
    for o in t.OUTLETS.values():
        index, _, subjects = _rosters(o.stream)
        moves += [uses(index, "hscan"), uses(subjects, "hexists"), *calls("pb_index_subjects", index, subjects)]
    # the audit log: each chain's head read with the positions; trimmed to its retention, the
    # index pruned of what was trimmed (services/outlets/relay.py, _expire)
    for target in t.AUDITED:
        moves += [uses(t.audit_head(target), "hgetall"), uses(t.audit_index(target), "hscan"),
                  *calls("pb_audit_trim", t.audit(target, "*"), t.audit_head(target)),
                  *calls("pb_audit_prune", t.audit_index(target))]
    # what keeps original records is trimmed to the retention: the quarantine and dead letters it writes
    retained = (*(x for x in t.RELAY_TARGETS if x.startswith(("quarantine:", "dlq:"))),
                *(t.relay_dlq(x) for x in t.RELAY_TARGETS))
    return Service("relay", "pb-relay", (
        uses(_outboxes(), "xread", "xtrim", "xrange"),
        uses(retained, "xtrim"),
        uses(tuple(t.relay_pos(target) for target in t.RELAY_TARGETS), "hgetall"),
        *moves,
        *_share("relay"),
        WORKER,
    ))


def schedule() -> Service:
    return Service("schedule", "pb-schedule", (
        uses(t.scheduler_state(), "hmget", "hset", "hincrby"),
        uses(t.due("*"), "zrangebyscore"),
        # the rules in force changed (services/scheduler/service.py): every picture read, a tick for each
        uses(t.people("*"), "hscan"),
        uses(t.evt("*"), "xadd"),
        # its heartbeat, as the partition workers announce themselves (`permitbus status`)
        uses(t.members("schedule"), "zadd", "zremrangebyscore", "zrem"),
        WORKER,
    ))


def api() -> Service:
    reads = []
    for o in t.OUTLETS.values():
        index, districts, subjects = _rosters(o.stream)
        snapshot = t.roster_snapshot(o.stream, o.entitlement, "*", "*")
        reads += calls("pb_roster_page", o.stream, districts, snapshot[0], snapshot[1])
        reads += calls("pb_roster_next", snapshot[0], snapshot[1])
        reads += calls("pb_subject", index, districts, subjects)
    # a person's disclosures (services/audit/disclosures.py): their refs, then the entries
    reads += [uses(tuple(t.audit_index(o) for o in t.AUDITED), "hget"),
              uses(tuple(t.audit(o, "*") for o in t.AUDITED), "xrange")]
    # the operations page (services/ops/page.py) does what the operator commands do
    return Service("api", "pb-api", (*reads, *explaining(), *operations(), uses((), *CLUSTER_CLIENT, "ping")))


def explaining() -> tuple[Use, ...]:
    """What explaining a decision reads (services/outlets/explain.py: the API, ``permitbus explain``):
    one person's picture with its months stored apart (one MULTI/EXEC), and where a child's
    applications are filed."""
    return (uses((t.people("*"), t.archive("*")), "hget"), uses((), "multi", "exec"),
            uses(t.filed("*"), "zrange"))


def audit() -> Service:
    """``permitbus audit verify|export|sign`` (services/audit/): an auditor's user, apart from the
    operators': it reads the audit log and the outlets (to count them against each other) and
    appends the signed heads; it changes nothing else."""
    return Service("audit", "pb-audit", (
        uses(tuple(t.audit(o, "*") for o in t.AUDITED), "xrange"),
        uses(tuple(t.audit_head(o) for o in t.AUDITED), "hgetall", "hget"),
        uses(t.AUDITED, "xrange"),
        uses(tuple(t.audit_signatures(o) for o in t.AUDITED), "xadd", "xrange", "xrevrange", "xtrim"),
        uses((), *CLUSTER_CLIENT, "ping"),
    ))


def status_reads() -> tuple[Use, ...]:
    """What ``services/ops/status.py`` reads (``permitbus status``, ``GET /metrics``, the ops page)
    and the trend samples it keeps: a fixed number of calls per stage and partition."""
    feeds = t.FEEDS.values()
    return (
        uses(tuple(f.ingress for f in feeds), "xinfo|groups", "xpending", "xrange"),
        uses(tuple(t.counters(s) for f in feeds for s in (f.ingress, f.quarantine, t.dlq(f.ingress))), "hgetall"),
        uses(tuple(t.counters(target) for target in t.RELAY_TARGETS if not target.startswith("quarantine:")),
             "hgetall"),
        *calls("pb_stream_head", (t.evt("*"), *_outboxes())),
        uses(t.decider_meta("*"), "hget"),
        uses(t.due("*"), "zcount"),
        uses(tuple(t.lease("normalize", f.name) for f in feeds), "exists"),
        uses(tuple(t.members(role) for role in ("decider", "relay", "schedule")), "zcount"),
        uses(t.scheduler_state(), "hget"),
        uses((*(t.lease_changes(t.lease("normalize", f.name)) for f in feeds),
              *(t.lease_changes(t.partition_lease(role, "*")) for role in ("decider", "relay"))), "hget"),
        uses((*t.quarantine_streams(), *t.dead_letter_streams()), "xlen"),
        uses(t.ops_history(), "xadd", "xrange", "xtrim"),
        uses((), "info"),
    )


def ops() -> Service:
    """``permitbus quarantine|dlq|figures|trace|status|rekey|explain|retick``."""
    return Service("ops", "pb-ops", (
        *operations(),
        # `permitbus rekey`: every picture re-sealed under the current data key; `permitbus retick`:
        # every picture read (HSCAN), a date.tick appended for each (services/ops/retick.py)
        uses(t.people("*"), "hscan"),
        *calls("pb_reseal", t.people("*")),
        uses(t.evt("*"), "xadd"),
        *explaining(),  # `permitbus explain`
        uses((), *CLUSTER_CLIENT, "ping", "function|list"),
    ))


def operations() -> tuple[Use, ...]:
    """What the operators' tools use, from ``permitbus`` (pb-ops) or the ``/ops`` page (pb-api)."""
    parked = (*t.quarantine_streams(), *t.dead_letter_streams())
    redrives: list[Use] = []
    for target in (*(f.ingress for f in t.FEEDS.values()), t.evt("*"), *_outboxes()):
        redrives += calls("pb_redrive", target, t.redrive_marks(target), t.redrive_times(target), parked,
                          tuple(t.counters(q) for q in t.quarantine_streams()))
        redrives.append(uses(t.redrive_marks(target), "hget"))
    redrives += calls("pb_unpark", t.quarantine_streams(), tuple(t.counters(q) for q in t.quarantine_streams()))
    return (
        uses(tuple(f.ingress for f in t.FEEDS.values()), "xinfo|groups", "xinfo|stream"),
        uses(t.decider_meta("*"), "hget"),
        uses(t.evt("*"), "xrevrange", "xrange"),
        uses(tuple(t.relay_pos(target) for target in t.RELAY_TARGETS), "hgetall"),
        uses(_outboxes(), "xrevrange"),
        uses(t.figures("*"), "hgetall"),
        uses(parked, "xrange", "xrevrange", "xdel"),
        *status_reads(),
        # re-driving puts a record back where it entered (its ingress stream, or its partition),
        # once: marks in the target's slot (services/ops/redrive.py)
        *redrives,
        # permitbus trace: the indexes the normalizers and the relay keep
        uses((*(t.trace_ingress(f, "*") for f in t.FEEDS), *(t.trace_target(x, "*") for x in t.RELAY_TARGETS)),
             "hget"),
    )


def setup() -> Service:
    """``permitbus setup``: the administrative step, once per deployment and release."""
    return Service("setup", "pb-setup", (
        uses(tuple(f.ingress for f in t.FEEDS.values()), "xgroup|create", "xinfo|groups"),
        uses((), *CLUSTER_CLIENT, "ping", "function|load", "function|list", "info", "config|get"),
    ))


def department(dept: str) -> Service:
    """docs/contract.md "Access": append to its own ingress stream, read its own quarantine, read,
    group and acknowledge its own outlet; nothing else. ``permitbus follow`` runs under this user:
    XREAD and XINFO STREAM on the outlet (services/follow/outlet.py)."""
    own: list[Use] = []
    for feed in t.department_feeds(dept):
        own += [uses(feed.ingress, "xadd"), uses(feed.quarantine, "xrange", "xrevrange", "xread", "xlen")]
    outlet = t.DEPARTMENT_OUTLETS[dept]
    own += [uses(outlet, "xread", "xrange", "xrevrange", "xlen", "xinfo|stream", "xinfo|groups", "xpending"),
            uses(outlet, "xreadgroup", "xack", "xgroup", "xautoclaim", "xclaim"),
            uses((), *CLUSTER_CLIENT, "ping")]
    return Service(f"department {dept}", f"dept-{dept}", tuple(own))


def workers() -> list[Service]:
    """The services ``permitbus up`` runs."""
    return [*(normalize(f) for f in t.FEEDS.values()), decide(), relay(), schedule()]


def services() -> list[Service]:
    return [*workers(), api(), ops(), audit(), setup()]


def departments() -> list[Service]:
    return [department(d) for d in t.DEPARTMENT_OUTLETS]


# Users of ``runner.serve``'s services (``permitbus run <service>``).
USER_OF_SERVICE = {"normalize": "pb-normalize", "decider": "pb-decide", "relay": "pb-relay",
                   "scheduler": "pb-schedule"}


def users() -> dict[str, list[Service]]:
    """ACL user -> the services it runs; ``pb-up`` runs every worker (``permitbus up``)."""
    out: dict[str, list[Service]] = {}
    for s in services() + departments():
        out.setdefault(s.user, []).append(s)
    out["pb-up"] = workers()
    return out


def key_patterns() -> tuple[str, ...]:
    """Every key (name or glob) any service or department declares: everything that is ours."""
    return tuple(dict.fromkeys(k for s in services() + departments() for u in s.uses for k in u.keys))


# -- views ----------------------------------------------------------------------------------------
def generalize(key: str, feeds: bool = True) -> str:
    """A key or pattern as the README writes its family: ``{p*}`` -> ``{pN}``, a relay target ->
    ``<target>``, an outlet -> ``outlet:<dept>``, a feed -> ``<feed>`` (unless ``feeds`` is False)."""
    out = key.replace("{p*}", "{pN}")
    if out in t.DEPARTMENT_OUTLETS.values():
        return "outlet:<dept>"
    if feeds:
        for f in t.FEEDS.values():
            out = out.replace(f"{{{f.quarantine}}}", "{quarantine:<feed>}")
    for target in t.RELAY_TARGETS:
        if target.startswith("quarantine:") and not feeds:
            continue
        out = out.replace(f"{{{target}}}", "{<target>}").replace(f"}}:{target}", "}:<target>")
    for o in t.OUTLETS.values():
        out = out.replace(f":{o.entitlement}:*", ":<entitlement>:<district>").replace(o.entitlement, "<entitlement>")
    if feeds:
        for f in t.FEEDS:
            out = re.sub(rf"(?<=:){re.escape(f)}$", "<feed>", out)
    out = re.sub(r"\{ingress:[a-z]+:[a-z]+\}", "{ingress:<feed>}", out) if feeds else out
    out = re.sub(r"\{(dlq:ingress|lease:normalize):[a-z]+:[a-z]+\}", r"{\1:<feed>}", out) if feeds else out
    for role in ("decider", "relay", "schedule"):
        out = out.replace(f"lease:{role}:", "lease:<role>:").replace(f"members:{role}", "members:<role>")
    return re.sub(r"^(audit:\{[^}]*\}):p\*$", r"\1:p<N>", out)


def describe() -> list[dict[str, str]]:
    """One row per service: what it reads (and in which group) and writes."""
    rows = []
    for s in workers() + [api(), ops(), audit()]:
        feeds = not s.name.startswith("normalize")
        rows.append({"service": s.name, "user": s.user,
                     "reads": ", ".join(dict.fromkeys(generalize(k, feeds) for k in s.keys(read=True))),
                     "group": s.group,
                     "writes": ", ".join(dict.fromkeys(generalize(k, feeds) for k in s.keys(read=False)))})
    return rows


def _who(s: Service) -> str:
    if s.name.startswith("normalize"):
        return "normalize"
    if s.name.startswith("department"):
        return "departments"
    return s.name


# What each family of keys holds, for the README's table (a test checks every family has one).
KINDS = {
    "ingress:<feed>": "stream, field `payload`; group `permitbus-normalize` (created at `0`)",
    "evt:{pN}": "stream; field `b` = an envelope (msgpack array) of canonical events in order, one entry per "
                "normalizer batch and partition; or field `e` = one event (re-driven dead letters). Events name "
                "people by pseudonym, IDs sealed, no names",
    "quarantine:<feed>": "stream: `payload` `source_id` `reason` `detail`",
    "qmarks{quarantine:<feed>}": "sorted set: ingress ids already quarantined (in the stream's slot)",
    "qmarks{<target>}": "sorted set: source ids already copied to a relay target",
    "dlq:ingress:<feed>": "stream: the record, `error`, `deliveries`",
    "dlq:decider": "stream: the event, `error`, `deliveries`",
    "lease:normalize:<feed>": "string: the feed's active normalizer, with a TTL",
    "lease:<role>:{pN}": "string: the decider or relay owning partition N, with a TTL",
    "members:<role>": "sorted set: live deciders or relays -> when their membership lapses",
    "dec:{pN}": "hash: `pos` = last applied `evt:{pN}` id",
    "ppl:{pN}": "hash: pseudonym -> picture (msgpack) with the last 6-11 months of contributions; its ID numbers "
                "sealed (AES-256-GCM, `PERMITBUS_DATA_KEY`)",
    "arc:{pN}": "hash: pseudonym -> the older months of contributions (packed slots)",
    "filed:{pN}": "sorted set (by lexicographic range): a child's pseudonym, the guardian's partition and "
                  "pseudonym, the application id: where an education application about the child is filed "
                  "(`permitbus explain`)",
    "due:{pN}": "sorted set: pseudonym -> date its outcomes may change by themselves",
    "fig:{pN}": "hash: figure counters",
    "att:{pN}": "hash: evt id -> failed attempts (poison events)",
    "out:{pN}:<target>": "stream (outbox) of decisions or quarantine copies for `<target>`",
    "relaypos{<target>}": "hash: partition -> last outbox id relayed (in the target's slot)",
    "relaypos{quarantine:<feed>}": "the same, for the permit feed's quarantine",
    "outlet:<dept>": "stream, field `payload` = decision JSON",
    "rosteridx{<target>}:<entitlement>": "hash: subject -> district it is listed in",
    "roster{<target>}:<entitlement>:<district>": "hash: subject -> current eligible decision",
    "sched:state": "hash: the date last ticked for, people ticked then and in all (`ticked_total`), the digest of "
                   "the rules in force then (`rules`: a change ticks everyone)",
    "rosteridx{<target>}:<entitlement>:subjects": "hash: subject pseudonym -> its application ids listed (for a "
                                                  "constant-cost subject lookup)",
    "roster{<target>}:<entitlement>:<district>:snap:*": "hash with a TTL: a paged roster read's copy of the roster",
    "roster{<target>}:<entitlement>:<district>:snap:*:order": "list with a TTL: that read's outlet position, then "
                                                              "its fields in order",
    "redriven{ingress:<feed>}": "hash: `<parked stream> <parked id>` -> id of its re-driven copy (a re-drive "
                                "killed half-way copies nothing twice)",
    "redriventime{ingress:<feed>}": "sorted set: the same marks by time (kept 90 days)",
    "redriven:evt:{pN}": "the same, for dead letters re-driven onto a partition stream",
    "redriventime:evt:{pN}": "the same, by time",
    "held{quarantine:<feed>}": "hash: ingress entry id -> payload of a `QZ`/`BG`/`ZX` record the decider may still "
                               "quarantine (`UNKNOWN_PERMIT`); partition streams carry no payloads",
    "redriven:out:{pN}:<target>": "the same, for relay dead letters re-driven onto their outbox",
    "redriventime:out:{pN}:<target>": "the same, by time",
    "dlq:relay{<target>}": "stream: outbox entries the relay could not move (the entry, `error`, `deliveries`), "
                           "in the target's slot",
    "relayatt{<target>}": "hash: `<partition>\\|<outbox id>` -> failed attempts at relaying it",
    "dlq:relay{quarantine:<feed>}": "the same, for the permit feed's quarantine",
    "relayatt{quarantine:<feed>}": "the same, for the permit feed's quarantine",
    "count{ingress:<feed>}": "hash: `accepted`, `acked` entries since the deployment began (counted by `pb_ack`); "
                             "`committed`: the last entry the normalizer finished, `committed_n` the group's "
                             "entries-read there (reads are NOACK: `pb_rewind` moves the group back to it)",
    "count{quarantine:<feed>}": "hash: `quarantined` since the deployment began, `reason:<reason>` entries there now "
                                "(`pb_quarantine`, `pb_relay`; a re-drive takes one off)",
    "count{dlq:ingress:<feed>}": "hash: `dead_lettered` since the deployment began",
    "count{<target>}": "hash: `moved`, `delivered`, `status:<status>`, `parked`, the decision latency's buckets "
                       "`lat:<ms>`, `lat_sum_ms`, `lat_count` (counted by `pb_relay`)",
    "count{lease:normalize:<feed>}": "hash: `changes` = times the feed's lease was acquired (`pb_lease`)",
    "lease:<role>:{pN}:changes": "hash: the same, for a partition's lease",
    "ops:history": "stream: samples of each stage's counters, one every few seconds at most, kept 5 minutes "
                   "(`permitbus status` judges the trend of the last minute from it)",
    "trace{ingress:<feed>}:*": "hash per UTC day, with a TTL (`PERMITBUS_TRACE_DAYS`): record id -> `<ingress id> "
                               "p<N>` / `q <reason>` / `d <dead letter id>` (`permitbus trace`)",
    "trace{<target>}:*": "hash per UTC day, with a TTL: record id -> the ids of the entries it led to on the "
                         "target (written by `pb_relay`)",
    "trace{quarantine:<feed>}:*": "the same, for the permit feed's quarantine",
    "audit:{<target>}:p<N>": "stream per outlet and partition, kept `PERMITBUS_AUDIT_RETENTION_DAYS`: every decision "
                             "delivered to the outlet, under its outlet entry's id, written by `pb_relay` in the step "
                             "that delivers it: `prev` (SHA-256 of the entry before it), `who` (the subject's "
                             "pseudonym), `dec` (the decision sealed with `PERMITBUS_DATA_KEY`)",
    "audithead{<target>}": "hash: each partition's audit chain head (`<p>`: its hash, `<p>:id`: its entry), "
                           "`<p>:anchor` where the chain starts after a trim, `trim` (its bound), `since` (the first outlet id "
                           "audited)",
    "auditidx{<target>}": "hash: subject pseudonym -> `<audit id>@<p>` of each decision about them on the outlet (a "
                          "person's disclosures)",
    "auditsig{<target>}": "stream: Ed25519-signed heads of the outlet's audit chains (`permitbus audit sign`): "
                          "`kid`, `at`, `heads`, `sig`",
}


def markdown_table() -> str:
    """The README's table of keys: family | kind | written by | read by | commands."""
    written: dict[str, list[str]] = {}
    read: dict[str, list[str]] = {}
    commands: dict[str, set[str]] = {}
    for s in services() + departments():
        if s.name == "setup":
            continue
        for u in s.uses:
            for k in u.keys:
                fam = generalize(k)
                written.setdefault(fam, [])
                read.setdefault(fam, [])
                commands.setdefault(fam, set()).update(c.upper() for c in u.commands)
                if u.writes and _who(s) not in written[fam]:
                    written[fam].append(_who(s))
                if u.reads and _who(s) not in read[fam]:
                    read[fam].append(_who(s))
    lines = ["| key | kind | written by | read by | commands |", "| --- | --- | --- | --- | --- |"]
    for fam in written:
        cmds = " ".join(sorted(commands[fam])).replace("|", "\\|")  # XINFO|GROUPS inside a table cell
        who = f"{', '.join(written[fam]) or '-'} | {', '.join(read[fam]) or '-'}"
        lines.append(f"| `{fam}` | {KINDS.get(fam, '?')} | {who} | {cmds} |")
    return "\n".join(lines)
