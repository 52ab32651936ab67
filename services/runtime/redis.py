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


def connect(url: str) -> aioredis.Redis:
    """Bytes in, bytes out (payloads are kept byte for byte); retries on connection errors."""
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RConnectionError
    from redis.exceptions import TimeoutError as RTimeoutError

    return aioredis.Redis.from_url(
        url,
        decode_responses=False,
        health_check_interval=15,
        socket_keepalive=True,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=3),
        retry_on_error=[RConnectionError, RTimeoutError, ConnectionResetError],
        max_connections=64,
    )


async def load_functions(r: aioredis.Redis) -> None:
    """Load this release's library unless Redis holds it already (the name is the version, so a
    library of that name has this very source). Not loading it again spares a write, which a
    Redis out of memory would refuse."""
    if not await r.function_list(library=LIBRARY):
        await r.function_load(LUA, replace=True)


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
