"""``permitbus follow <dept> --into <PostgreSQL URL>`` (docs/contract.md, "Departments' side"), against
the real Redis and the real PostgreSQL on this machine (a database of its own per test).

Decisions come from the real services (department records in, through the pipeline); the rosters
from the real read API. The kill -9 test runs everything as processes under the ACL users of
``permitbus acl``."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import httpx
import msgspec
import psycopg
import pytest

from services.follow import store
from services.follow.follower import Follower
from services.follow.outlet import Span, before, judge
from services.follow.rows import Rejected, Row, from_entry
from services.follow.snapshot import Api
from schemas.districts import DISTRICTS

CODES = list(DISTRICTS)
from services.outlets.api import create_app
from tests import pg
from tests.conftest import publish
from tests.harness import drain, services
from tests.people import contribution, make_id, months, permit, school

TOKENS = {"psb": "t-psb", "edu": "t-edu", "health": "t-health", "housing": "t-housing", "medins": "t-medins"}
HEALTH, EDU = "health.family_doctor", "education.compulsory_enrollment"


@pytest.fixture
def pg_url():
    with pg.database() as url:
        yield url


def api_for(settings, dept: str, stopping: asyncio.Event | None = None, **update) -> Api:
    app = create_app(settings.model_copy(update={"api_tokens": TOKENS, **update}))
    return Api("http://api", TOKENS[dept], transport=httpx.ASGITransport(app=app), stopping=stopping)


async def follow_once(settings, dept: str, url: str, batch: int = 500, **update) -> Follower:
    """Run a follower in this process until it has caught up with the outlet."""
    api = api_for(settings, dept, **update)
    f = Follower(dept, settings.redis_url, url, api, batch=batch, once=True)
    try:
        await f.run()
    finally:
        await api.aclose()
    return f


async def rosters(settings, dept: str, entitlement: str) -> dict[tuple[str, str, str], dict]:
    """The API's current roster, every district: {key: decision}."""
    out = {}
    api = api_for(settings, dept)
    try:
        for d in DISTRICTS:
            async for _, entries in api.pages(entitlement, d):
                for e in entries:
                    out[(e["entitlement"], e["subject_id"], e["application_id"] or "")] = e
    finally:
        await api.aclose()
    return out


async def latest_on_outlet(r, outlet: str, after: str = "0-0") -> dict[tuple[str, str, str], dict]:
    """The latest decision per key among the outlet's entries after ``after``."""
    out: dict = {}
    for _, f in await r.xrange(outlet, f"({after}" if after != "0-0" else "-"):
        d = json.loads(f[b"payload"])
        key = (d["entitlement"], d["subject_id"], d["application_id"] or "")
        if key not in out or d["version"] > out[key]["version"]:
            out[key] = d
    return out


def as_rows(decisions: dict) -> dict:
    """Decisions as the table holds them (timestamps parsed, payload as a dict)."""
    return {k: (d["entitlement"], d["subject_id"], d["application_id"] or "", d["status"], d["district"],
                d["priority"], d["version"], d["decision_id"], dt.datetime.fromisoformat(d["decided_at"]), d)
            for k, d in decisions.items()}


# -- pure parts ------------------------------------------------------------------------------------
GOOD = {"decision_id": "d1", "entitlement": HEALTH, "subject_id": "32011119900101001X", "application_id": None,
        "status": "eligible", "district": "320111", "priority": False, "reasons": [], "basis": ["（七）"],
        "as_of": "2026-11-28", "caused_by": ["GA1"], "version": 3, "decided_at": "2026-11-28T10:00:00+08:00"}


def entry(obj) -> dict[bytes, bytes]:
    return {b"payload": obj if isinstance(obj, bytes) else json.dumps(obj, ensure_ascii=False).encode()}


def test_an_outlet_entry_makes_its_row_or_says_why_not():
    row = from_entry("1-1", entry(GOOD), frozenset({HEALTH}))
    assert isinstance(row, Row)
    assert row.key == (HEALTH, GOOD["subject_id"], "") and row.version == 3 and row.source == "1-1"
    assert row.decided_at == dt.datetime(2026, 11, 28, 2, tzinfo=dt.timezone.utc)
    bad = {
        "not json": b"{nope",
        "not an object": b"[1, 2]",
        "other outlet's": {**GOOD, "entitlement": EDU},
        "an ID that is not one": {**GOOD, "subject_id": "32011119900101001x"},
        "version 0": {**GOOD, "version": 0},
        "no offset": {**GOOD, "decided_at": "2026-11-28T10:00:00"},
        "odd status": {**GOOD, "status": "maybe"},
        "no version": {k: v for k, v in GOOD.items() if k != "version"},
        "not utf-8": b'{"a": "\xff"}',
        "a lone surrogate": json.dumps(GOOD).replace('"d1"', '"\\ud800"').encode(),
        "a district that is not one": {**GOOD, "district": "abc"},
    }
    for what, payload in bad.items():
        out = from_entry("1-2", entry(payload), frozenset({HEALTH}))
        assert isinstance(out, Rejected), what
        assert GOOD["subject_id"] not in out.reason, what  # reasons name fields, not values
    assert isinstance(from_entry("1-3", {b"other": b"x"}, frozenset({HEALTH})), Rejected)
    # an enum's message quotes the value: an ID number there is masked
    leaky = from_entry("1-4", entry({**GOOD, "status": GOOD["subject_id"]}), frozenset({HEALTH}))
    assert isinstance(leaky, Rejected) and GOOD["subject_id"] not in leaky.reason


def test_a_position_is_judged_against_what_the_outlet_still_holds():
    assert before("5-3") == "5-2" and before("5-0") == f"4-{2**64 - 1}" and before("0-0") is None
    never_trimmed = Span(length=10, added=10, first=(1, 0), last=(10, 0))
    assert judge(never_trimmed, "0-0") is None and judge(never_trimmed, "5-0") is None
    trimmed = Span(length=5, added=10, first=(6, 0), last=(10, 0))
    assert judge(trimmed, "6-0") is None and judge(trimmed, "7-0") is None  # the head is at or before it
    assert "trimmed past" in judge(trimmed, "4-0")
    assert "trimmed past" in judge(trimmed, "0-0")
    emptied = Span(length=0, added=10, first=None, last=(10, 0))
    assert judge(emptied, "10-0") is None and "trimmed" in judge(emptied, "9-0")
    assert "made anew" in judge(Span(0, 0, None, (0, 0)), "10-0")


# -- the table against the rosters and the outlet -------------------------------------------------
async def test_snapshot_then_follow_equals_the_rosters_and_the_latest_decisions(r, settings, pg_url):
    people = [make_id() for _ in range(12)]
    await publish(r, "psb:permit", *[permit("QF", p, district=CODES[i % 3]) for i, p in enumerate(people)])
    async with services(settings):
        await drain(r, settings)
        first = await follow_once(settings, "health", pg_url)
        assert first.snapshots == 1 and first.applied == 0
        snap = pg.rows(pg_url)
        assert snap == as_rows(await rosters(settings, "health", HEALTH)) and len(snap) == 12
        base = pg.scalar(pg_url, "SELECT position FROM permitbus_follow_position WHERE outlet = 'outlet:health'")
        # after the snapshot: cancellations, moves, newcomers
        newcomers = [make_id() for _ in range(5)]
        await publish(r, "psb:permit", *[permit("ZX", p) for p in people[:4]],
                      *[permit("BG", p, district=CODES[5]) for p in people[4:7]],
                      *[permit("QF", p, district=CODES[7]) for p in newcomers])
        await drain(r, settings)
        second = await follow_once(settings, "health", pg_url)
    assert second.snapshots == 0 and second.applied == 4 + 3 + 5
    table = pg.rows(pg_url)
    eligible = {k: v for k, v in table.items() if v[3] == "eligible"}
    assert eligible == as_rows(await rosters(settings, "health", HEALTH))  # the eligible rows are the roster
    assert {k: v for k, v in table.items() if v[3] == "revoked"} == \
        {k: v for k, v in as_rows(await latest_on_outlet(r, "outlet:health", base)).items() if v[3] == "revoked"}
    assert len([v for v in table.values() if v[3] == "revoked"]) == 4
    outlet_last = (await r.xinfo_stream("outlet:health"))["last-generated-id"].decode()
    assert pg.scalar(pg_url, "SELECT position FROM permitbus_follow_position") == outlet_last


async def test_application_decisions_land_ineligible_ones_included(r, settings, pg_url):
    guardian, kids = make_id("19850101"), [make_id("20190301") for _ in range(3)]
    stranger, orphan = make_id("19860101"), make_id("20190401")
    await publish(r, "psb:permit", permit("QF", guardian, district="320111"))
    await publish(r, "hrss:contribution", *[contribution(guardian, m) for m in months("202501", 12)])
    async with services(settings):
        await drain(r, settings)
        await follow_once(settings, "edu", pg_url)  # nothing decided yet: an empty snapshot
        assert pg.rows(pg_url) == {}
        apps = [school(guardian, k, sqbh=f"JY-{i}") for i, k in enumerate(kids)]
        await publish(r, "edu:application", *apps, school(stranger, orphan, sqbh="JY-X"))
        await drain(r, settings)
        await follow_once(settings, "edu", pg_url)
        table = pg.rows(pg_url)
        assert {k[2]: v[3] for k, v in table.items()} == {"JY-0": "eligible", "JY-1": "eligible",
                                                          "JY-2": "eligible", "JY-X": "ineligible"}
        assert {k: v for k, v in table.items() if v[3] == "eligible"} == as_rows(await rosters(settings, "edu", EDU))
        await publish(r, "psb:permit", permit("ZX", guardian))  # the guardian's permit ends
        await drain(r, settings)
        f = await follow_once(settings, "edu", pg_url)
    table = pg.rows(pg_url)
    assert f.snapshots == 0
    # an application that stops being eligible goes out `revoked`, version 2 (docs/policy.md, education)
    assert {k[2]: v[3:7] for k, v in table.items()} == {
        **{f"JY-{i}": ("revoked", "320111", False, 2) for i in range(3)},
        "JY-X": ("ineligible", "320111", False, 1)}
    assert table == as_rows(await latest_on_outlet(r, "outlet:edu"))
    assert await rosters(settings, "edu", EDU) == {}


async def test_the_version_guard_keeps_the_latest_whatever_the_order(pg_url):
    def row(version: int, status: str) -> Row:
        payload = json.dumps({**GOOD, "version": version, "status": status})
        return from_entry(f"{version}-0", entry(payload.encode()), frozenset({HEALTH}))

    conn = await store.connect(pg_url)
    try:
        await conn.execute("INSERT INTO permitbus_follow_position VALUES ('outlet:health', '0-0')")
        await store.commit_batch(conn, "outlet:health", "0-0", "3-0", [row(3, "revoked"), row(2, "eligible")], [])
        await store.commit_batch(conn, "outlet:health", "3-0", "4-0", [row(1, "eligible")], [])  # older: no change
        assert [v[3:7] for v in pg.rows(pg_url).values()] == [("revoked", "320111", False, 3)]
        await store.commit_batch(conn, "outlet:health", "4-0", "5-0", [row(3, "revoked")], [])  # again: no change
        await store.commit_batch(conn, "outlet:health", "5-0", "6-0", [row(4, "eligible"), row(4, "eligible")], [])
        assert [v[3:7] for v in pg.rows(pg_url).values()] == [("eligible", "320111", False, 4)]
        # the position moves only from where this writer read it
        with pytest.raises(store.PositionMoved):
            await store.commit_batch(conn, "outlet:health", "5-0", "7-0", [row(9, "revoked")], [])
        assert [v[6] for v in pg.rows(pg_url).values()] == [4]  # and nothing of that batch stayed
    finally:
        await conn.close()


async def test_malformed_outlet_entries_are_kept_aside_and_the_rest_flows(r, settings, pg_url):
    await follow_once(settings, "health", pg_url)  # an empty outlet: position 0-0
    good = [{**GOOD, "subject_id": make_id(), "decision_id": f"g{i}"} for i in range(3)]
    await r.xadd("outlet:health", entry(good[0]))
    bad_ids = [await r.xadd("outlet:health", {b"payload": b"not json"}),
               await r.xadd("outlet:health", {b"other": b"field"}),
               await r.xadd("outlet:health", entry({**GOOD, "entitlement": EDU})),
               # valid JSON that jsonb cannot hold: PostgreSQL refuses it, found one row at a time
               await r.xadd("outlet:health", entry({**good[1], "reasons": ["\u0000"]}))]
    await r.xadd("outlet:health", entry(good[1]))
    last = await r.xadd("outlet:health", entry(good[2]))
    f = await follow_once(settings, "health", pg_url, batch=100)
    assert f.applied == 7 and f.rejected == 4
    assert {k[1] for k in pg.rows(pg_url)} == {g["subject_id"] for g in good}
    with psycopg.connect(pg_url) as c:
        got = c.execute("SELECT entry_id, reason FROM permitbus_follow_rejected ORDER BY entry_id").fetchall()
    assert [g[0] for g in got] == sorted(i.decode() for i in bad_ids)
    assert "refused by PostgreSQL: 22P05" in got[-1][1]
    assert pg.scalar(pg_url, "SELECT position FROM permitbus_follow_position") == last.decode()
    # read again (a kill before the next batch): nothing doubles
    await pg_reset_position(pg_url, "0-0")
    await follow_once(settings, "health", pg_url, batch=2)
    assert pg.scalar(pg_url, "SELECT count(*) FROM permitbus_follow_rejected") == 4
    assert len(pg.rows(pg_url)) == 3


async def pg_reset_position(url: str, position: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as c:
        await c.execute("UPDATE permitbus_follow_position SET position = %s", (position,))


# -- snapshots: when the position has left the outlet, and when one is interrupted ---------------
async def wave(r, settings, people: list[str], district: str) -> None:
    await publish(r, "psb:permit", *[permit("QF", p, district=district) for p in people])
    await drain(r, settings)


async def test_a_position_past_the_outlets_retention_takes_a_new_snapshot(r, settings, pg_url):
    people = [make_id() for _ in range(20)]
    with pg.database() as fresh_url:
        async with services(settings):
            await wave(r, settings, people[:10], CODES[0])
            await follow_once(settings, "health", pg_url)
            position = pg.scalar(pg_url, "SELECT position FROM permitbus_follow_position")
            # trimmed exactly up to the position: the entry at it is still there, nothing is lost
            await publish(r, "psb:permit", *[permit("ZX", p) for p in people[:3]])
            await drain(r, settings)
            await r.xtrim("outlet:health", minid=position, approximate=False)
            f = await follow_once(settings, "health", pg_url)
            assert f.snapshots == 0 and f.applied == 3
            # a follower away while the outlet was trimmed past its position (the relay trims to
            # PERMITBUS_OUTLET_RETENTION_DAYS; here by hand): revocations it never saw are gone
            position = pg.scalar(pg_url, "SELECT position FROM permitbus_follow_position")
            await publish(r, "psb:permit", *[permit("ZX", p) for p in people[3:6]])
            await drain(r, settings)
            await wave(r, settings, people[10:], CODES[1])
            after = [eid for eid, _ in await r.xrange("outlet:health", f"({position}", "+")]
            await r.xtrim("outlet:health", minid=after[2].decode(), approximate=False)  # two of them trimmed
            f = await follow_once(settings, "health", pg_url)
            assert f.snapshots == 1
            fresh = await follow_once(settings, "health", fresh_url)
        table = pg.rows(pg_url)
        assert table == pg.rows(fresh_url)  # what a follower started now holds
        assert {k[1] for k, v in table.items() if v[3] == "eligible"} == set(people[6:])
        assert table == as_rows(await rosters(settings, "health", HEALTH))
        assert pg.scalar(pg_url, "SELECT count(*) FROM permitbus_follow_snapshot") == 0


class StopAfter(httpx.AsyncBaseTransport):
    """The API's transport, stopping the follower after ``n`` requests (a SIGTERM mid-snapshot)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, n: int, stopping: asyncio.Event) -> None:
        self.inner, self.n, self.stopping = inner, n, stopping

    async def handle_async_request(self, request):
        self.n -= 1
        if self.n < 0:
            self.stopping.set()
        return await self.inner.handle_async_request(request)


async def test_a_snapshot_stopped_half_way_starts_again_from_the_same_base(r, settings, pg_url):
    """The rows depend on the snapshot's base alone (services/follow/snapshot.py): a follower
    stopped during its snapshot, started again after more was decided, ends with the rows of one
    that was not stopped."""
    people = [make_id() for _ in range(30)]
    with pg.database() as steady_url:
        async with services(settings):
            for i in range(3):
                await wave(r, settings, people[i * 5:i * 5 + 5], CODES[i])
            stopping = asyncio.Event()
            app = create_app(settings.model_copy(update={"api_tokens": TOKENS}))
            api = Api("http://api", TOKENS["health"], transport=StopAfter(httpx.ASGITransport(app=app), 2, stopping),
                      stopping=stopping)
            stopped = Follower("health", settings.redis_url, pg_url, api, once=True)
            await stopped.run()
            await api.aclose()
            assert stopped.snapshots == 0 and pg.rows(pg_url) == {}
            base = pg.scalar(pg_url, "SELECT base FROM permitbus_follow_snapshot")
            assert pg.scalar(pg_url, "SELECT count(*) FROM permitbus_follow_position") == 0
            steady = await follow_once(settings, "health", steady_url)  # from the same base: nothing new since
            assert pg.scalar(steady_url, "SELECT position FROM permitbus_follow_position") == base
            # meanwhile: some leave (their revocations come after the base), others arrive
            await publish(r, "psb:permit", *[permit("ZX", p) for p in people[:7]])
            await wave(r, settings, people[15:], CODES[4])
            again = await follow_once(settings, "health", pg_url)
            steady = await follow_once(settings, "health", steady_url)
        assert again.snapshots == 1 and steady.snapshots == 0
        assert pg.rows(pg_url) == pg.rows(steady_url)
        assert {k[1] for k, v in pg.rows(pg_url).items() if v[3] == "revoked"} == set(people[:7])


async def test_a_second_follower_of_the_same_outlet_and_database_waits_as_a_standby(r, settings, pg_url, caplog):
    first = Follower("health", settings.redis_url, pg_url, api_for(settings, "health"))  # follows until stopped
    running = asyncio.create_task(first.run())
    while not (pg.scalar(pg_url, "SELECT to_regclass('permitbus_follow_position') IS NOT NULL")
               and pg.scalar(pg_url, "SELECT count(*) FROM permitbus_follow_position")):
        await asyncio.sleep(0.05)
    await r.xadd("outlet:health", entry(GOOD))
    await wait_for_rows(pg_url, 1)
    second = Follower("health", settings.redis_url, pg_url, api_for(settings, "health"), once=True)
    standby = asyncio.create_task(second.run())
    await asyncio.sleep(1.5)
    assert not standby.done() and "another follower holds this outlet" in caplog.text
    later = {**GOOD, "subject_id": make_id(), "decision_id": "d2"}
    await r.xadd("outlet:health", entry(later))
    await wait_for_rows(pg_url, 2)  # the first goes on
    first.stop()
    await asyncio.wait_for(running, 5)
    await asyncio.wait_for(standby, 10)  # then the standby takes over: caught up, it stops (--once)
    assert second.applied == 0 and first.applied == 2


async def wait_for_rows(url: str, n: int, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not (pg.scalar(url, "SELECT to_regclass('permitbus_decision') IS NOT NULL")
               and pg.scalar(url, "SELECT count(*) FROM permitbus_decision") >= n):
        assert asyncio.get_running_loop().time() < deadline, f"fewer than {n} rows after {timeout} s"
        await asyncio.sleep(0.05)


async def test_an_outlet_without_rosters_needs_no_api(r, settings, pg_url, monkeypatch):
    """An outlet that carries no entitlement yet (as outlet:hrss did before clause （九）: a
    department whose entitlements come in a later release): no snapshot to read, the follower
    starts at the outlet's end without asking the API."""
    from services.runtime import topology

    monkeypatch.setattr(topology, "OUTLETS", {e: o for e, o in topology.OUTLETS.items() if o.stream != "outlet:hrss"})
    f = Follower("hrss", settings.redis_url, pg_url, None, once=True)
    await f.run()
    assert f.snapshots == 1 and pg.scalar(pg_url, "SELECT position FROM permitbus_follow_position") == "0-0"
    # with rosters to read and no API given, it says what it needs
    from services.follow.snapshot import Refused

    with pytest.raises(Refused, match="PERMITBUS_FOLLOW_API"):
        await Follower("health", settings.redis_url, pg_url, None, once=True).run()


# -- what goes away comes back ---------------------------------------------------------------------
async def test_postgresql_and_redis_connections_lost_mid_run_it_goes_on_from_the_stored_position(
        r, settings, pg_url, caplog):
    f = Follower("health", settings.redis_url, pg_url, api_for(settings, "health"), batch=50)
    running = asyncio.create_task(f.run())
    decisions = [{**GOOD, "subject_id": make_id(), "decision_id": f"x{i}"} for i in range(600)]
    try:
        while not (pg.scalar(pg_url, "SELECT to_regclass('permitbus_follow_position') IS NOT NULL")
                   and pg.scalar(pg_url, "SELECT count(*) FROM permitbus_follow_position")):
            await asyncio.sleep(0.05)
        for i, d in enumerate(decisions):
            await r.xadd("outlet:health", entry(d))
            if i == 200:  # PostgreSQL ends the follower's session (a restart, a failover)
                pg.scalar(pg_url, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                  "WHERE application_name = 'permitbus follow' AND datname = current_database()")
            if i == 400:  # Redis drops its connections (those on this test's database: others may share the server)
                db = int(settings.redis_url.rsplit("/", 1)[1])
                me = await r.client_id()
                for c in await r.client_list():
                    if int(c["db"]) == db and int(c["id"]) != me:
                        await r.client_kill_filter(_id=int(c["id"]))
        await wait_for_rows(pg_url, len(decisions), timeout=30)
    finally:
        f.stop()
        await asyncio.wait_for(running, 10)
    assert pg.rows(pg_url) == as_rows({(HEALTH, d["subject_id"], ""): d for d in decisions})
    assert "PostgreSQL unavailable" in caplog.text


class Flaky(httpx.AsyncBaseTransport):
    """The API's transport: the first ``n`` requests fail (unreachable, then 503)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, n: int) -> None:
        self.inner, self.n = inner, n

    async def handle_async_request(self, request):
        self.n -= 1
        if self.n >= 1:
            raise httpx.ConnectError("refused")
        if self.n == 0:
            return httpx.Response(503)
        return await self.inner.handle_async_request(request)


async def test_an_api_away_during_the_snapshot_is_waited_for(r, settings, pg_url, caplog):
    people = [make_id() for _ in range(4)]
    async with services(settings):
        await wave(r, settings, people, CODES[2])
    app = create_app(settings.model_copy(update={"api_tokens": TOKENS}))
    api = Api("http://api", TOKENS["health"], transport=Flaky(httpx.ASGITransport(app=app), 3))
    f = Follower("health", settings.redis_url, pg_url, api, once=True)
    await f.run()
    await api.aclose()
    assert f.snapshots == 1 and {k[1] for k in pg.rows(pg_url)} == set(people)
    assert "read API unreachable" in caplog.text and "read API answered 503" in caplog.text


# -- the command ------------------------------------------------------------------------------------
def test_the_command_says_what_is_missing_and_prints_no_password(redis_url, pg_url, monkeypatch, capsys):
    from services.cli import main

    monkeypatch.setenv("PERMITBUS_REDIS_URL", redis_url)
    monkeypatch.delenv("PERMITBUS_FOLLOW_TOKEN", raising=False)
    assert main(["follow", "health", "--into", pg_url, "--api", "http://127.0.0.1:9"]) == 2
    assert "PERMITBUS_FOLLOW_TOKEN" in capsys.readouterr().err
    assert main(["follow", "health", "--into", pg_url, "--batch", "0"]) == 2
    # a libpq key=value string with a password (trust auth ignores it): never echoed (an outlet with
    # no roster to read, so that no API is needed: as outlet:hrss was before clause （九）)
    from services.runtime import topology

    monkeypatch.setattr(topology, "OUTLETS", {e: o for e, o in topology.OUTLETS.items() if o.stream != "outlet:hrss"})
    dbname = pg_url.rsplit("/", 1)[1]
    into = f"host=127.0.0.1 port=5432 user=postgres dbname={dbname} password=sekrit-pw"
    assert main(["follow", "hrss", "--into", into, "--once"]) == 0
    err = capsys.readouterr().err
    assert "outlet:hrss into the database: 0 entries applied" in err and "sekrit-pw" not in err
    assert main(["follow", "hrss", "--into", pg_url.replace("postgres@", "postgres:sekrit-pw@"), "--once"]) == 0
    err = capsys.readouterr().err
    assert "postgres:***@" in err and "sekrit-pw" not in err
    # PostgreSQL refusing the database: exit 2, one line
    assert main(["follow", "hrss", "--into", pg_url + "_none", "--once"]) == 2
    assert "PostgreSQL refuses" in capsys.readouterr().err
