"""The Redis connection every service uses, and start-up chores (functions, groups)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import pathlib
import re
import struct
import time

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoPermissionError, ResponseError

from services.runtime import topology
from services.runtime.outage import acl_refusal

log = logging.getLogger("permitbus.redis")
_SOURCE = (pathlib.Path(__file__).parent / "permitbus.lua").read_text()
# The library and its functions are named after the source's content: workers of two versions
# (a rolling upgrade) each call their own functions, whose arguments they agree with. Function
# names are global in Redis, and a function given another version's arguments could fail part
# way through its writes. Older versions' libraries stay until an operator deletes them.
VERSION = hashlib.sha1(_SOURCE.encode()).hexdigest()[:10]
LIBRARY = f"permitbus_{VERSION}"
_NAMES = sorted(set(re.findall(r"register_function(?:\{function_name = |\()'(pb_\w+)'", _SOURCE)))
LUA = re.sub(r"(register_function(?:\{function_name = |\()')(pb_\w+)'", rf"\1\2_{VERSION}'",
             _SOURCE.replace("#!lua name=permitbus\n", f"#!lua name={LIBRARY}\n", 1))


def fn(name: str) -> str:
    """The name under which this version's function ``name`` (``pb_commit``, …) is loaded."""
    if name not in _NAMES:
        raise KeyError(f"no function {name!r} in permitbus.lua (it has {', '.join(_NAMES)})")
    return f"{name}_{VERSION}"


def stream_id(x: bytes | str | None) -> tuple[int, int]:
    """A stream entry id as a comparable pair (``None`` and empty are ``(0, 0)``)."""
    if not x:
        return (0, 0)
    s = x.decode() if isinstance(x, bytes) else x
    ms, _, seq = s.partition("-")
    return int(ms), int(seq or 0)


def connect(url: str, cluster: bool = False):
    """Bytes in, bytes out (payloads are kept byte for byte); retries on connection errors.

    ``cluster``: ``url`` names any node of a Redis Cluster (docs/contract.md, "Running"): the
    client learns the slots from it and follows ``MOVED``/``ASK`` redirections itself."""
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RConnectionError
    from redis.exceptions import TimeoutError as RTimeoutError

    if cluster:
        return Cluster.from_url(
            url,
            decode_responses=False,
            health_check_interval=15,
            socket_keepalive=True,
            retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=3),
            max_connections=64,  # per node
        )
    return aioredis.Redis.from_url(
        url,
        decode_responses=False,
        health_check_interval=15,
        socket_keepalive=True,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=3),
        retry_on_error=[RConnectionError, RTimeoutError, ConnectionResetError],
        max_connections=64,
    )


def client(settings):
    """The one place a service's Redis client is made: a Redis Cluster client when
    ``PERMITBUS_REDIS_CLUSTER_URL`` is set (``PERMITBUS_REDIS_URL`` is then ignored,
    docs/contract.md, "Running"), else the one server's."""
    if settings.redis_cluster_url:
        return connect(settings.redis_cluster_url, cluster=True)
    return connect(settings.redis_url)


def url_of(settings) -> str:
    """The URL ``client`` connects to (for messages, redacted by the caller)."""
    return settings.redis_cluster_url or settings.redis_url


def is_cluster(r) -> bool:
    return isinstance(r, RedisCluster)


class Cluster(RedisCluster):
    """redis-py's cluster client, routing ``FCALL``/``FCALL_RO``/``XREAD``/``XREADGROUP`` by
    their keys without asking a node first. These commands are flagged ``movablekeys``, for
    which redis-py sends ``COMMAND GETKEYS`` with the command's whole arguments (a decider's
    commit carries up to ``PERMITBUS_LUA_CALL_BYTES``) before every call (redis/redis-py#2229).
    Their key positions are fixed by their syntax: ``FCALL f numkeys key...``, ``... STREAMS
    key... id...``. Every key of one call must share a slot (the key layout sees to it,
    services/runtime/topology.py); Redis refuses the call (``CROSSSLOT``) otherwise.

    ``XGROUP <sub>``/``XINFO <sub>`` (key first) are routed here too: redis-py 8.1's parser of
    subcommands now and then found no key for ``XGROUP CREATE`` ("No way to dispatch this
    command"), which stopped a normalizer at start on the test cluster about one start in three."""

    async def initialize(self, *args, **kwargs):
        """No node reachable is an outage like a lost connection (services/runtime/outage.py),
        not redis-py's generic cluster error."""
        from redis.exceptions import ConnectionError as RConnectionError
        from redis.exceptions import RedisClusterException

        try:
            return await super().initialize(*args, **kwargs)
        except RedisClusterException as exc:
            if "cannot be connected" in str(exc) or isinstance(exc.__cause__, (OSError, RConnectionError)):
                raise RConnectionError(str(exc).splitlines()[0][:200]) from exc
            raise

    async def _determine_slot(self, command, *args):
        name = command.upper() if isinstance(command, str) else command.decode().upper()
        keys = None
        if name.startswith(("XGROUP ", "XINFO ")) and args:  # XGROUP CREATE key ..., XINFO GROUPS key
            keys = args[:1]
        elif name in ("FCALL", "FCALL_RO") and len(args) >= 2:
            keys = args[2:2 + int(args[1])]
        elif name in ("XREAD", "XREADGROUP"):
            upper = [a.upper() if isinstance(a, str) else a.upper() if isinstance(a, bytes) else a for a in args]
            at = next((i for i, a in enumerate(upper) if a in ("STREAMS", b"STREAMS")), None)
            if at is not None:
                rest = args[at + 1:]
                keys = rest[:len(rest) // 2]
        if keys:
            slots = {self.keyslot(k) for k in keys}
            if len(slots) == 1:
                return slots.pop()
        return await super()._determine_slot(command, *args)


async def each_primary(r, *command, **kwargs) -> dict[str, object]:
    """``command`` on every primary of a cluster (or on the one server), by node name: what a
    cluster keeps per node (functions, configuration, INFO, ACL) is read or written on each."""
    if not is_cluster(r):
        return {"": await r.execute_command(*command, **kwargs)}
    await r.initialize()
    out = {}
    for node in r.get_primaries():
        out[node.name] = await r.execute_command(*command, target_nodes=node, **kwargs)
    return out


def slot_groups(r, keys):
    """``keys`` grouped so that each group may go in one multi-key command: all of them on one
    server, one group per hash slot on a cluster (Redis refuses a command whose keys span slots,
    even slots of one node)."""
    keys = list(keys)
    if not is_cluster(r):
        return [keys]
    groups: dict[int, list] = {}
    for k in keys:
        groups.setdefault(r.keyslot(k), []).append(k)
    return list(groups.values())


def cluster_broker_class():
    """FastStream's cluster broker, its client made as ``Cluster`` (the routing above)."""
    from faststream.redis import RedisClusterBroker
    from faststream.redis.configs.state import RedisClusterConnectionState

    class State(RedisClusterConnectionState):
        async def connect(self):
            if not self._connected:
                self._client = Cluster(**{k: v for k, v in self._options.items() if v is not None})
                self._connected = True
            return self._client

    class Broker(RedisClusterBroker):
        def _make_connection_state(self, connection_options, kwargs):
            return State(connection_options)

    return Broker


CLUSTER_IDLE_S = 0.05  # a cluster read found nothing: how long before the next (see ``xread``)


async def xread(r, streams: dict, count: int, block: int | None = None):
    """``XREAD`` over ``streams`` (name -> id), as ``r.xread`` replies.

    On one server: one command, blocking up to ``block`` ms. On a cluster the streams of one
    hash slot are read together (a partition's outboxes share ``{pN}``) and the slots' reads go
    in one pipeline, which redis-py sends per node: one round trip per shard. A blocking read
    would wait on one slot only, so an empty round waits ``CLUSTER_IDLE_S`` (or ``block``,
    whichever is shorter) instead: an idle worker polls every shard 20 times a second."""
    if not is_cluster(r):
        return await r.xread(streams, count=count, block=block)
    groups = slot_groups(r, streams)
    pipe = r.pipeline(transaction=False)
    for names in groups:
        pipe.xread({n: streams[n] for n in names}, count=count)
    out = [row for reply in await pipe.execute() if reply for row in reply]
    if not out and block:
        await asyncio.sleep(min(block / 1000, CLUSTER_IDLE_S))
    return out


def stream_reply(response) -> list:
    """An ``XREAD``/``XREADGROUP`` reply (RESP3's map or RESP2's list of streams) as redis-py gives
    it, ``[[stream, [(id, {field: value}), ...]], ...]``, built in one comprehension: redis-py's
    own parse calls two functions an entry (about 9 % of the normalizer's CPU). Entries of one
    field (every ingress entry: ``payload``) take the shortest way."""
    if not response:
        return []
    streams = response.items() if isinstance(response, dict) else response
    return [[name, [(e[0], {f[0]: f[1]} if len(f := e[1]) == 2 else dict(zip(f[::2], f[1::2])))
                    if e is not None else (None, None) for e in entries]]
            for name, entries in streams]


def parse_streams_quickly(client) -> None:
    """Have ``client`` parse its ``XREADGROUP`` replies with ``stream_reply`` (the normalizer's
    FastStream broker: its subscribers read many entries a second through it). A read with
    options (the ``CLAIM`` form of Redis 8.4) keeps redis-py's parse."""
    theirs = client.response_callbacks["XREADGROUP"]
    if getattr(theirs, "ours", False):
        return

    def reply(response, **options):
        return theirs(response, **options) if options else stream_reply(response)

    reply.ours = True
    client.set_response_callback("XREADGROUP", reply)


async def load_functions(r) -> None:
    """Load this release's library unless Redis holds it already (the name is the version, so a
    library of that name has this very source). Not loading it again spares a write, which a
    Redis out of memory would refuse. On a cluster, on every primary that lacks it (a function
    runs on the node of its keys' slot; a primary's replicas get it by replication)."""
    for node, libs in (await each_primary(r, "FUNCTION LIST", "LIBRARYNAME", LIBRARY)).items():
        if not libs:
            await r.execute_command("FUNCTION LOAD", "REPLACE", LUA,
                                    **({"target_nodes": r.get_node(node_name=node)} if node else {}))


async def ensure_groups(r: aioredis.Redis) -> None:
    """docs/contract.md, "Running": groups on ingress streams start at id 0, so nothing published earlier is lost."""
    for feed in topology.FEEDS.values():
        try:
            await r.xgroup_create(feed.ingress, topology.NORMALIZER_GROUP, id="0", mkstream=True)
            log.info("created consumer group %s on %s at 0", topology.NORMALIZER_GROUP, feed.ingress)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


_HEAD = struct.Struct(">BI")  # msgpack array 32 (0xdd) or str 32 (0xdb), and a length


def msgpack_strings(items: list[bytes]) -> bytes:
    """Many values as one function argument: a msgpack array of strings, for ``cmsgpack.unpack``
    (Redis's Lua reads no bin type; its strings are bytes). redis-py packs arguments one by one,
    ~1 us each: 2,500 ids for an XACK took 2.8 ms, as one argument 0.5 ms."""
    parts = [_HEAD.pack(0xDD, len(items))]
    for item in items:
        parts += (_HEAD.pack(0xDB, len(item)), item)
    return b"".join(parts)


async def recover(r: aioredis.Redis, exc: BaseException) -> bool:
    """Redis came back without our functions or groups (restarted without persistence, or
    flushed): put them back, or wait for ``permitbus setup`` when this user may not. A command
    this user may not run (NOPERM: the ACL lacks a right the service declares) is said clearly
    and waited out, so that an ``ACL LOAD`` of a corrected file lets the service go on. True when
    ``exc`` was such a case and the caller should try again."""
    if not isinstance(exc, ResponseError):
        return False
    text = str(exc)
    try:
        if "Function not found" in text or "function not found" in text.lower():
            log.warning("Redis has lost permitbus's functions: loading them again")
            await load_functions(r)
            return True
        if "NOGROUP" in text or "no such key" in text:
            log.warning("Redis has lost permitbus's consumer groups: creating them again at 0")
            await ensure_groups(r)
            return True
    except NoPermissionError:
        log.warning("Redis lacks permitbus's functions or consumer groups and this user may not restore them: "
                    "run `permitbus setup`; retrying")
        await asyncio.sleep(2.0)
        return True
    refusal = acl_refusal(exc)
    if refusal is None:
        return False
    _said_refusal(refusal)
    await asyncio.sleep(2.0)
    return True


_REFUSALS: dict[str, float] = {}


def _said_refusal(refusal: str) -> None:
    """Log an ACL refusal once a minute at most (a worker retries it every 2 s)."""
    now = time.monotonic()
    if now - _REFUSALS.get(refusal, -1e9) >= 60:
        _REFUSALS[refusal] = now
        log.error("Redis refuses this service's user: %s. The user lacks a right the service needs: check "
                  "that its ACL comes from `permitbus acl` of this release; retrying", refusal)
