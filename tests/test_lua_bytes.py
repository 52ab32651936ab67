"""Issue 10, point 4 (decider and relay): Lua calls bounded by bytes. A decider commit whose
pictures and outbox entries would pass ``lua_call_bytes`` is split into several pb_commit calls,
each person's picture with the decisions it led to, the position moved by the last; the relay's
pb_relay calls are bounded by bytes as well as by count. Against a real Redis, compared with the
same records committed in one call each."""

from __future__ import annotations

import collections
import json

import pytest
from redis.asyncio.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError

from services.decider import commit
from services.outlets import relay as relay_mod
from services.outlets.relay import Relay
from services.audit import chain
from services.runtime import topology as t
from services.runtime.redis import ensure_groups, load_functions
from tests.people import housing, make_id, permit
from tests.test_decider_cache import append, decider, drain, pictures

LIMIT = 8 << 10


@pytest.fixture
def small(settings):
    return settings.model_copy(update={"decider_entries": 1, "lua_call_bytes": LIMIT})


def _records() -> tuple[str, list[dict], list[dict]]:
    """A person with 1,500 housing applications in one batch, and 200 people with a permit."""
    big = make_id("19800101")
    apps = [housing(big, no=f"ZF{i:08d}", applied="2026-03-01") for i in range(1500)]
    permits = [permit("QF", big, district="320102")] + [permit("QF", make_id(), district="320104") for _ in range(200)]
    return big, apps, permits


async def _load(r, settings, recs) -> str:
    big, apps, permits = recs
    await append(r, settings, "housing:application", *apps)
    await append(r, settings, "psb:permit", *permits)
    return big


async def _state(r, settings) -> tuple:
    """Everything the decider committed: pictures, figures, due dates, positions, and every outbox
    (in order per subject; people split into several calls may interleave differently)."""
    out = collections.defaultdict(list)
    for p in range(settings.partitions):
        for target in t.RELAY_TARGETS:
            for _, f in await r.xrange(t.outbox(p, target)):
                d = json.loads(f[b"payload"])
                out[(target, d.get("subject_id"))].append((d.get("application_id"), d.get("status"), d.get("version")))
    figs = [await r.hgetall(t.figures(p)) for p in range(settings.partitions)]
    due = [await r.zrange(t.due(p), 0, -1, withscores=True) for p in range(settings.partitions)]
    # every partition applied to its end
    pos = [await r.hget(t.decider_meta(p), "pos") == ((await r.xrevrange(t.evt(p), count=1)) or [[None]])[0][0]
           for p in range(settings.partitions)]
    return dict(out), await pictures(r, settings), figs, due, pos


async def _fresh(r) -> None:
    await r.flushdb()
    await load_functions(r)
    await ensure_groups(r)


def _sizes(call: list) -> int:
    return sum(len(x) if isinstance(x, (bytes, str)) else 8 for x in call)


async def test_a_large_commit_is_split_by_bytes_and_commits_what_one_call_commits(r, settings, small, monkeypatch):
    whole = small.model_copy(update={"lua_call_bytes": 1 << 30})
    recs = _records()
    await _load(r, whole, recs)
    await drain(decider(r, whole))
    expected = await _state(r, whole)
    await _fresh(r)

    made = []
    real = commit.calls

    def commit_calls(*a, **kw):
        calls = real(*a, **kw)
        made.append(calls)
        return calls

    monkeypatch.setattr(commit, "calls", commit_calls)
    big = await _load(r, small, recs)
    await drain(decider(r, small))
    assert await _state(r, small) == expected
    split = [calls for calls in made if len(calls) > 1]
    assert split, "nothing was split"
    for calls in made:
        for call in calls:
            if _sizes(call) > LIMIT:  # only a person too large for one call goes alone
                assert int.from_bytes(call[2][1:5], "big") == 2  # [pseudonym, picture]
    # the big person's share is one call; the 200 others' commit went in several calls
    assert max(len(c) for c in made) >= 3


async def test_a_crash_between_the_calls_of_a_split_commit_loses_and_repeats_nothing(r, settings, small, monkeypatch):
    whole = small.model_copy(update={"lua_call_bytes": 1 << 30})
    recs = _records()
    await _load(r, whole, recs)
    await drain(decider(r, whole))
    expected = await _state(r, whole)
    await _fresh(r)

    await _load(r, small, recs)
    execute = Pipeline.execute
    cut = []

    async def first_call_only(self, raise_on_error=True):
        commits = [c for c in self.command_stack if c[0][0] == "FCALL" and str(c[0][1]).startswith("pb_commit")]
        if len(commits) > 1 and not cut:
            cut.append(len(commits))
            self.command_stack = self.command_stack[:1]
            await execute(self, raise_on_error)
            raise RedisConnectionError("injected: the worker died after the first part of the commit")
        return await execute(self, raise_on_error)

    monkeypatch.setattr(Pipeline, "execute", first_call_only)
    d = decider(r, small)
    with pytest.raises(RedisConnectionError):
        await drain(d)
    assert cut and cut[0] > 1
    monkeypatch.setattr(Pipeline, "execute", execute)
    await drain(decider(r, small))  # a new worker: reads the batch again from the position
    assert await _state(r, small) == expected


async def test_relay_calls_are_bounded_by_bytes(r, settings, small, monkeypatch):
    big = await _load(r, small, _records())
    await drain(decider(r, small))
    made = []
    real = relay_mod._chunks

    def chunks(prepared, limit):
        out = real(prepared, limit)
        # an outlet entry's audit (its pseudonym, sealed decision and hash) goes in the same call
        made.append([sum(_sizes(args) + _sizes(audit or ()) + 32 for _, args, audit in c) for c in out])
        return out

    monkeypatch.setattr(relay_mod, "_chunks", chunks)
    outboxes = {target: [f[b"payload"] for p in range(small.partitions)
                         for _, f in await r.xrange(t.outbox(p, target))] for target in t.RELAY_TARGETS}
    rl = Relay(r, small, range(small.partitions))
    while await rl.step():
        pass
    for target in t.RELAY_TARGETS:
        moved = [f[b"payload"] for _, f in await r.xrange(target)]
        assert collections.Counter(moved) == collections.Counter(outboxes[target])
    assert any(len(sizes) > 1 for sizes in made)
    assert max(s for sizes in made for s in sizes) <= LIMIT
    assert len(outboxes["outlet:housing"]) >= 1500 and big


async def test_a_refused_pb_commit_or_pb_relay_has_written_nothing(r, settings):
    """Redis does not undo a Lua function's writes when it fails part-way: pb_commit and pb_relay
    check every argument before their first write, so that a refused call can be retried event
    by event (or entry by entry) without leaving pictures without their decisions."""
    from services.decider.commit import keys as commit_keys
    from services.runtime.redis import fn, msgpack_strings

    keys = commit_keys(0)
    pictures_arg = msgpack_strings([b"someone", b"picture"])
    good_entry = [1, 1, b"payload", b"{}"]
    for bad in ([99, 1, b"payload", b"{}"], [1, 2, b"payload", b"{}"], [1, 0]):
        args = [b"0-0", b"1-0", pictures_arg, b"", 1, b"someone", 7, 1, b"fig", 1, 2, *good_entry, *bad, 0]
        with pytest.raises(Exception, match="PBARG pb_commit"):
            await r.fcall(fn("pb_commit"), len(keys), *keys, *args)
    with pytest.raises(Exception, match="PBARG pb_commit"):  # a due date that is no day number
        await r.fcall(fn("pb_commit"), len(keys), *keys, b"0-0", b"1-0", pictures_arg, b"", 1, b"someone", b"x",
                      0, 0, 0)
    assert await r.exists(*keys) == 0  # nothing at all was written

    target = "outlet:health"
    rkeys = [target, t.relay_pos(target), t.quarantine_marks(target)] + relay_mod.roster_keys(target)
    rkeys += [t.audit(target, 0), t.audit_head(target), t.audit_index(target)]
    rkeys += [t.relay_dlq(target), t.relay_attempts(target), t.counters(target), t.trace_target(target, "20261201")]
    head = chain.genesis(t.audit(target, 0))
    audit_ok = [b"who", b"sealed", chain.link(head, b"who", b"sealed")]
    entry_ok = [1, b"payload", b"{}", "set", "a", "1", "", "", *audit_ok]
    entry_bad = [1, b"payload", b"{}", "set", "b", "12", "", "", b"who", b"sealed", b"h" * 32]  # 11 districts
    with pytest.raises(Exception, match="PBARG pb_relay"):
        await r.fcall(fn("pb_relay"), len(rkeys), *rkeys, 0, "0-0", "1-1", "-", 2, "-", head, *entry_ok, *entry_bad,
                      1000, "\n\n")
    unaudited = [1, b"payload", b"{}", "set", "a", "1", "", "", "", "", ""]
    with pytest.raises(Exception, match="PBARG pb_relay: entry 1: delivered without its audit"):
        await r.fcall(fn("pb_relay"), len(rkeys), *rkeys, 0, "0-0", "1-1", "-", 1, "-", head, *unaudited, 1000, "\n")
    assert await r.exists(*rkeys) == 0
    # the same arguments without the bad entry go through
    assert await r.fcall(fn("pb_relay"), len(rkeys), *rkeys, 0, "0-0", "1-1", "-", 1, "-", head, *entry_ok, 1000,
                         "\n") == [1, b"1-1"]
    assert await r.xlen(target) == 1 and await r.xlen(t.audit(target, 0)) == 1
