"""``permitbus setup`` and what a worker needs of it.

Set-up is the one administrative step (docs/contract.md, "Access"): it loads this release's function
library, creates the normalizers' consumer groups at ``0``, and checks the Redis it is given. Run
once per deployment and per release by an administrative user (``pb-setup``), it leaves workers
needing no administrative right: a worker started before it says, in one line, what is missing and
waits (``missing``), and does the set-up itself only where its user is allowed to (no ACL,
``permitbus up`` as an administrator, the demo).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from redis.exceptions import NoPermissionError, ResponseError

from services.runtime import topology as t
from services.runtime.redis import LIBRARY, LUA, each_primary, is_cluster, load_functions

MIN_VERSION = (7, 0)


def need_setup(what: str) -> str:
    return f"{what}: run `permitbus setup` (as an administrative Redis user)"


async def missing(r, groups: bool) -> str | None:
    """What this worker needs and Redis lacks, in one line; None when nothing is. Loads the
    library and creates the groups itself when its user may (on a cluster: on every primary)."""
    if not all((await each_primary(r, "FUNCTION LIST", "LIBRARYNAME", LIBRARY)).values()):
        try:
            await load_functions(r)
        except NoPermissionError:
            return need_setup(f"the function library {LIBRARY} is not loaded"
                              + (" on every primary" if is_cluster(r) else ""))
    if groups:
        for feed in t.FEEDS.values():
            try:
                await r.xgroup_create(feed.ingress, t.NORMALIZER_GROUP, id="0", mkstream=True)
            except NoPermissionError:
                return need_setup(f"the consumer group {t.NORMALIZER_GROUP} on {feed.ingress} is missing")
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
    return None


@dataclass
class Report:
    changed: list[str] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def status(self) -> int:
        return 1 if self.errors else 0

    def lines(self) -> list[str]:
        return ([f"changed: {c}" for c in self.changed] or ["changed: nothing (all was in place)"]) \
            + [f"advice: {a}" for a in self.advice] + [f"error: {e}" for e in self.errors]


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _on(node: str) -> str:
    return f" on {node}" if node else ""


async def setup(r) -> Report:
    """Check the Redis, load the library, create the groups; say what changed and what to do.

    On a cluster (docs/contract.md, "Running") the checks and the library are per node: each
    primary is checked and given the library (its replicas follow it by replication); the
    consumer groups live with their streams, wherever their slots are."""
    rep = Report()
    for node, info in (await each_primary(r, "INFO", "server")).items():
        version = tuple(int(x) for x in _text(info.get("redis_version", "0.0")).split(".")[:2])
        if version < MIN_VERSION:
            rep.errors.append(f"Redis {info.get('redis_version')}{_on(node)} is too old: permitbus needs 7.0 or "
                              "newer (functions, consumer-group lag)")
    if rep.errors:
        return rep
    await _check_config(r, rep)
    for node, listed in (await each_primary(r, "FUNCTION LIST")).items():
        libraries = {_text(dict(zip(lib[::2], lib[1::2]))[b"library_name"]) for lib in listed}
        if LIBRARY not in libraries:
            await r.execute_command("FUNCTION LOAD", "REPLACE", LUA,
                                    **({"target_nodes": r.get_node(node_name=node)} if node else {}))
            rep.changed.append(f"loaded the function library {LIBRARY}{_on(node)}")
        older = sorted(lib for lib in libraries if lib.startswith("permitbus_") and lib != LIBRARY)
        if older:
            rep.advice.append(f"older function libraries {', '.join(older)}{_on(node)} stay for workers of earlier "
                              "releases; once none runs: FUNCTION DELETE <library>")
    for feed in t.FEEDS.values():
        try:
            await r.xgroup_create(feed.ingress, t.NORMALIZER_GROUP, id="0", mkstream=True)
            rep.changed.append(f"created consumer group {t.NORMALIZER_GROUP} on {feed.ingress} at 0")
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
    return rep


async def _check_config(r, rep: Report) -> None:
    try:
        confs = {}
        for name in ("appendonly", "maxmemory-policy", "appendfsync"):
            for node, reply in (await each_primary(r, "CONFIG GET", name)).items():
                confs.setdefault(node, {}).update({_text(k): _text(v) for k, v in reply.items()})
    except ResponseError as exc:  # managed services often disable CONFIG
        rep.advice.append(f"could not read the configuration ({_text(exc).split(chr(10))[0][:80]}): make sure "
                          "of appendonly yes and maxmemory-policy noeviction (deploy/redis/redis.conf)")
        return
    for node, conf in confs.items():
        if conf.get("maxmemory-policy") != "noeviction":
            rep.errors.append(f"maxmemory-policy is {conf.get('maxmemory-policy')}{_on(node)}: Redis would evict "
                              "pictures, positions and pending entries when full; set maxmemory-policy noeviction")
        if conf.get("appendonly") != "yes":
            rep.advice.append(f"appendonly is off{_on(node)}: a restart of Redis loses what was written since the "
                              "last snapshot; set appendonly yes (deploy/redis/redis.conf)")
        elif conf.get("appendfsync") == "no":
            rep.advice.append(f"appendfsync is no{_on(node)}: a crash of the host can lose many seconds; everysec "
                              "is advised")


async def run_setup(settings) -> int:
    """``permitbus setup``: 0 when Redis is ready for the workers, 1 when something must be fixed
    first, 2 when Redis cannot be reached or this user may not set up."""
    from services.runtime.outage import REDIS_OUTAGE
    from services.runtime.redis import client, url_of

    r = client(settings)
    try:
        report = await setup(r)
    except REDIS_OUTAGE as exc:
        print(f"cannot reach Redis at {redacted(url_of(settings))}: {exc.__class__.__name__}")
        return 2
    except NoPermissionError as exc:
        print(f"this Redis user may not set up ({str(exc).splitlines()[0][:120]}): run `permitbus setup` as an "
              "administrative user (pb-setup of `permitbus acl`)")
        return 2
    finally:
        await r.aclose()
    for line in report.lines():
        print(line)
    return report.status


def redacted(url: str) -> str:
    """A Redis URL without its password (``redis://pb-decide:***@host:6379/0``)."""
    from urllib.parse import urlsplit, urlunsplit

    u = urlsplit(url)
    if u.password is None:
        return url
    host = u.hostname or ""
    netloc = f"{u.username or ''}:***@{host}" + (f":{u.port}" if u.port else "")
    return urlunsplit((u.scheme, netloc, u.path, u.query, u.fragment))
