"""How much work is waiting at each stage: the operations team's first question, and how the demo,
tests and benchmarks know that a burst has been processed."""

from __future__ import annotations

from dataclasses import dataclass

from redis.exceptions import ResponseError

from services.runtime import topology as t
from services.runtime.redis import stream_id


def in_flight(group: dict, counters: dict | None) -> tuple[int, bytes | None]:
    """Entries of a feed its normalizer has read and not finished, and its committed position.

    The normalizer reads with NOACK (services/ingress/service.py): the group's last-delivered-id
    moves when a batch is read, ``committed`` (in the feed's counters) when its effect is written;
    between them, ``entries-read`` - ``committed_n`` entries (at least one while they differ)."""
    committed = (counters or {}).get(b"committed")
    if committed is None or stream_id(committed) >= stream_id(group["last-delivered-id"]):
        return 0, committed
    done, read = (counters or {}).get(b"committed_n"), group.get("entries-read")
    return (max(1, int(read) - int(done)) if done is not None and read is not None else 1), committed


@dataclass
class Backlog:
    ingress_lag: int  # entries not yet read by the normalizers
    ingress_pending: int  # read, not yet finished (``in_flight``; and entries pending in the group)
    partitions_behind: int  # partitions whose applied position is behind their stream
    outboxes_behind: int  # outboxes not yet relayed to their target

    @property
    def idle(self) -> bool:
        return not (self.ingress_lag or self.ingress_pending or self.partitions_behind or self.outboxes_behind)


async def backlog(r, partitions: int) -> Backlog:
    pipe = r.pipeline(transaction=False)
    for feed in t.FEEDS.values():
        pipe.xinfo_groups(feed.ingress)
        pipe.xinfo_stream(feed.ingress)
        pipe.hgetall(t.counters(feed.ingress))
    for p in range(partitions):
        pipe.hget(t.decider_meta(p), "pos")
        pipe.xrevrange(t.evt(p), count=1)
    for target in t.RELAY_TARGETS:
        pipe.hgetall(t.relay_pos(target))
        for p in range(partitions):
            pipe.xrevrange(t.outbox(p, target), count=1)
    res = await pipe.execute(raise_on_error=False)
    i = 0
    lag = pending = 0
    for _ in t.FEEDS:
        groups, info, counters = res[i], res[i + 1], res[i + 2]
        i += 3
        if isinstance(groups, ResponseError):
            continue
        for g in groups:
            if g["name"] in (t.NORMALIZER_GROUP, t.NORMALIZER_GROUP.encode()):
                pending += g["pending"] + in_flight(g, None if isinstance(counters, ResponseError) else counters)[0]
                if g.get("lag") is not None:
                    lag += g["lag"]
                elif stream_id(g["last-delivered-id"]) < stream_id(info["last-generated-id"]):
                    lag += 1
    behind = 0
    for _ in range(partitions):
        pos, last = res[i], res[i + 1]
        i += 2
        if last and stream_id(last[0][0]) > stream_id(pos):
            behind += 1
    out_behind = 0
    for _ in t.RELAY_TARGETS:
        positions = res[i]
        i += 1
        for p in range(partitions):
            last = res[i]
            i += 1
            if last and stream_id(last[0][0]) > stream_id(positions.get(str(p).encode())):
                out_behind += 1
    return Backlog(lag, pending, behind, out_behind)
