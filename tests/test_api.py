"""The departments' read API: roster + outlet position, a subject's entitlements, ownership."""

import json

import httpx
import msgspec

from services.outlets.api import create_app
from tests.conftest import publish, read_outlet
from tests.harness import drain, services
from tests.people import contribution, make_id, months, permit, school

TOKENS = {"psb": "t-psb", "edu": "t-edu", "health": "t-health", "housing": "t-housing", "medins": "t-medins"}


def client(settings):
    app = create_app(settings.model_copy(update={"api_tokens": TOKENS}))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


def auth(dept):
    return {"Authorization": f"Bearer {TOKENS[dept]}"}


async def test_roster_position_then_follow_without_gap_or_repeat(r, settings):
    a, b = make_id(), make_id()
    await publish(r, "psb:permit", permit("QF", a, district="320111"), permit("QF", b, district="320111"))
    await publish(r, "hrss:contribution", *[contribution(a, m) for m in months("202501", 6)])
    async with services(settings):
        await drain(r, settings)
        async with client(settings) as c:
            snap = (await c.get("/v1/rosters/health.family_doctor/320111", headers=auth("health"))).json()
        assert snap["count"] == 2 and {e["subject_id"] for e in snap["entries"]} == {a, b}
        # b's permit is cancelled after the snapshot: following from the position shows exactly that
        await publish(r, "psb:permit", permit("ZX", b))
        await drain(r, settings)
    after = await r.xread({"outlet:health": snap["position"]})
    follow = [msgspec.json.decode(f[b"payload"]) for _, f in after[0][1]]
    assert [(d["subject_id"], d["status"]) for d in follow] == [(b, "revoked")]
    async with client(settings) as c:
        now = (await c.get("/v1/rosters/health.family_doctor/320111", headers=auth("health"))).json()
    assert [e["subject_id"] for e in now["entries"]] == [a]
    assert now["position"] == after[0][1][-1][0].decode()


async def test_only_the_owning_department_reads_an_entitlement(r, settings):
    async with client(settings) as c:
        assert (await c.get("/v1/rosters/health.family_doctor/320111")).status_code == 401
        assert (await c.get("/v1/rosters/health.family_doctor/320111",
                            headers={"Authorization": "Bearer wrong"})).status_code == 401
        assert (await c.get("/v1/rosters/health.family_doctor/320111", headers=auth("edu"))).status_code == 403
        assert (await c.get("/v1/rosters/nope/320111", headers=auth("edu"))).status_code == 404
        assert (await c.get("/v1/rosters/health.family_doctor/999999", headers=auth("health"))).status_code == 404


async def test_subject_entitlements_by_department(r, settings):
    guardian, child = make_id("19850101"), make_id("20190301")
    await publish(r, "psb:permit", permit("QF", guardian, district="320111"))
    async with services(settings):
        await drain(r, settings)
        await publish(r, "edu:application", school(guardian, child, xd="XX", sqqx="320111", sqrq="2026/03/01",
                                                   sqbh="JY1"))
        await drain(r, settings)
    assert [d["status"] for d in await read_outlet(r, "outlet:edu")] == ["eligible"]
    async with client(settings) as c:
        edu = (await c.get(f"/v1/subjects/{child}", headers=auth("edu"))).json()
        health_view = (await c.get(f"/v1/subjects/{guardian}", headers=auth("health"))).json()
        edu_view_of_guardian = (await c.get(f"/v1/subjects/{guardian}", headers=auth("edu"))).json()
    assert [(e["entitlement"], e["application_id"]) for e in edu["entries"]] == [
        ("education.compulsory_enrollment", "JY1")]
    assert [e["entitlement"] for e in health_view["entries"]] == ["health.family_doctor"]
    assert edu_view_of_guardian["entries"] == []


# -- the API's inputs (issue 10, point 8) ------------------------------------------------------
async def test_a_subject_id_that_is_not_an_id_number_gets_422_not_the_roster(r, settings):
    guardian, child = make_id("19850101"), make_id("20190301")
    await publish(r, "psb:permit", permit("QF", guardian, district="320111"))
    await publish(r, "edu:application", school(guardian, child, sqqx="320111", sqrq="2026/03/01", sqbh="JY1"))
    async with services(settings):
        await drain(r, settings)
    bad_check = child[:17] + ("0" if child[17] != "0" else "1")
    async with client(settings) as c:
        for sid in ("*", "3201*", child[:17], child + "0", bad_check, f"{child[:6]}*"):
            got = await c.get(f"/v1/subjects/{sid}", headers=auth("edu"))
            assert got.status_code == 422, (sid, got.text)
        for sid in ("*", guardian[:10] + "*"):
            assert (await c.get(f"/v1/subjects/{sid}", headers=auth("health"))).status_code == 422
        assert len((await c.get(f"/v1/subjects/{child}", headers=auth("edu"))).json()["entries"]) == 1
        assert (await c.get(f"/v1/subjects/{make_id()}", headers=auth("edu"))).json()["entries"] == []


def counting_client(monkeypatch):
    """Patch the API's Redis connection to count the calls it sends (each command, pipeline or
    function call is one), so the cost of a request is measured without MONITOR."""
    import services.outlets.api as api

    calls = []
    real_client = api.client

    def redis_client(settings):
        conn = real_client(settings)
        send = conn.execute_command

        async def counted(*args, **kw):
            calls.append(args[0])
            return await send(*args, **kw)

        conn.execute_command = counted
        return conn

    monkeypatch.setattr(api, "client", redis_client)
    return calls


async def test_a_subject_lookup_costs_the_same_few_calls_whatever_the_roster_size(r, settings, monkeypatch):
    calls = counting_client(monkeypatch)
    guardian, child = make_id("19850101"), make_id("20190301")
    await publish(r, "psb:permit", permit("QF", guardian, district="320111"))
    await publish(r, "edu:application", school(guardian, child, sqqx="320111", sqrq="2026/03/01", sqbh="JY-A"),
                  school(guardian, child, xd="CZ", sqqx="320111", sqrq="2026/03/02", sqbh="JY-B"))
    async with services(settings):
        await drain(r, settings)
        async with client(settings) as c:
            calls.clear()
            small = (await c.get(f"/v1/subjects/{child}", headers=auth("edu"))).json()
            cost_small = len(calls)
            # 2,400 more applications of other children on the same roster
            others = [(make_id("19800101", seq=i), make_id("20180101", seq=i)) for i in range(1200)]
            await publish(r, "psb:permit", *[permit("QF", g, district="320111") for g, _ in others])
            await publish(r, "edu:application",
                          *[school(g, k, sqqx="320111", sqrq="2026/03/01", sqbh=f"JY-{i}-{n}")
                            for i, (g, k) in enumerate(others) for n in (1, 2)])
            await drain(r, settings, timeout=60)
            assert await r.hlen("rosteridx{outlet:edu}:education.compulsory_enrollment") == 2402
            calls.clear()
            large = (await c.get(f"/v1/subjects/{child}", headers=auth("edu"))).json()
            cost_large = len(calls)
    assert [e["application_id"] for e in small["entries"]] == ["JY-A", "JY-B"] == \
        [e["application_id"] for e in large["entries"]]
    assert cost_small == cost_large == 1, calls


async def test_roster_pages_share_one_position_and_following_on_gives_the_final_roster(r, settings):
    people = [make_id(seq=i) for i in range(25)]
    await publish(r, "psb:permit", *[permit("QF", p, district="320111") for p in people])
    async with services(settings):
        await drain(r, settings)
        async with client(settings) as c:
            url = "/v1/rosters/health.family_doctor/320111"
            first = (await c.get(url, params={"limit": 10}, headers=auth("health"))).json()
            assert (first["count"], len(first["entries"])) == (25, 10) and first["next"]
            # decisions arrive between pages: cancellations on this page and later ones, a move, newcomers
            ordered = sorted(people)
            newcomers = [make_id(seq=100 + i) for i in range(4)]
            await publish(r, "psb:permit", permit("ZX", ordered[0]), permit("ZX", ordered[15]),
                          permit("ZX", ordered[24]), permit("BG", ordered[20], district="320102"),
                          *[permit("QF", p, district="320111") for p in newcomers])
            await drain(r, settings)
            pages = [first]
            while pages[-1]["next"]:
                pages.append((await c.get(url, params={"limit": 10, "cursor": pages[-1]["next"]},
                                          headers=auth("health"))).json())
            final = (await c.get(url, params={"limit": 5000}, headers=auth("health"))).json()
            assert (await c.get(url, params={"cursor": "0123456789abcdef.0"},
                                headers=auth("health"))).status_code == 410
            assert (await c.get(url, params={"cursor": "*"}, headers=auth("health"))).status_code == 422
    assert len(pages) == 3 and {p["position"] for p in pages} == {first["position"]}
    read = [e["subject_id"] for p in pages for e in p["entries"]]
    assert read == ordered  # every entry once, in a stable order, as of the first page's position
    roster = set(read)
    after = await r.xread({"outlet:health": first["position"]})
    for _, f in after[0][1]:
        d = msgspec.json.decode(f[b"payload"])
        if d["status"] == "eligible" and d["district"] == "320111":
            roster.add(d["subject_id"])
        else:
            roster.discard(d["subject_id"])
    assert roster == {e["subject_id"] for e in final["entries"]}
    assert roster == (set(people) - {ordered[0], ordered[15], ordered[24], ordered[20]}) | set(newcomers)
    assert final["position"] == after[0][1][-1][0].decode() and final["next"] is None


def test_an_empty_or_shared_token_stops_the_api_at_start(settings, monkeypatch, capsys):
    import pytest

    from services.cli import main
    from services.outlets.api import ApiRefusal

    for tokens, says in (({"edu": "t1", "health": ""}, "empty token for health"),
                         ({"edu": "t1", "health": "   "}, "empty token for health"),
                         ({"edu": "same", "health": "same"}, "edu and health have the same token")):
        with pytest.raises(ApiRefusal, match=says):
            create_app(settings.model_copy(update={"api_tokens": tokens}))
        monkeypatch.setenv("PERMITBUS_API_TOKENS", json.dumps(tokens))
        assert main(["api"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "PERMITBUS_API_TOKENS" in err[0] and says in err[0], err


async def test_each_token_has_a_request_rate_limit(r, settings):
    app = create_app(settings.model_copy(update={"api_tokens": TOKENS, "api_rate_per_s": 0.5, "api_burst": 3}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c:
        url = "/v1/rosters/health.family_doctor/320111"
        codes = [(await c.get(url, headers=auth("health"))).status_code for _ in range(5)]
        assert codes == [200, 200, 200, 429, 429]
        limited = await c.get(url, headers=auth("health"))
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        assert (await c.get("/v1/rosters/medins.resident_enrollment/320111",
                            headers=auth("medins"))).status_code == 200  # another token: its own bucket


def test_outbox_entries_of_an_earlier_decider_keep_the_status_rule():
    """A decider of an earlier release states no roster action: the relay lists while eligible."""
    import datetime as dt

    from schemas.decision import Decision, decision_encoder
    from services.outlets.relay import roster_change
    from services.runtime.identity import Pseudonymizer

    def entry(status, app=None, extra=None):
        d = Decision(decision_id="x", entitlement="housing.security" if app else "health.family_doctor",
                     subject_id=make_id(), application_id=app, status=status, district="320111",
                     priority=False, reasons=[], basis=[], as_of=dt.date(2026, 11, 28), caused_by=[],
                     version=1, decided_at=dt.datetime(2026, 11, 28, 9, tzinfo=dt.timezone.utc))
        return {b"payload": decision_encoder.encode(d), **(extra or {})}

    pseudonym = Pseudonymizer("k")
    assert roster_change(entry("eligible"), pseudonym)[1][0] == b"set"
    assert roster_change(entry("revoked"), pseudonym)[1][0] == b"del"
    fields, args = roster_change(entry("eligible", "ZF-1", {b"roster": b"del"}), pseudonym)
    assert [k for k in fields if k[:1] != b"_"] == [b"payload"] and fields[b"_s"] == b"eligible" and args[0] == b"del" and args[3] and args[4] == "ZF-1"
    fields, args = roster_change({b"roster": b"del", b"field": b"X|ZF-2"}, pseudonym)
    assert fields == {} and args[:2] == [b"del", b"X|ZF-2"] and args[4] == b"ZF-2"


async def test_a_relay_indexes_the_subjects_of_rosters_listed_before_the_index(r, settings):
    """An upgrade: applications listed by a relay of an earlier release are found by a lookup once
    a relay of this one has started."""
    guardian, child = make_id("19850101"), make_id("20190301")
    await publish(r, "psb:permit", permit("QF", guardian, district="320111"))
    await publish(r, "edu:application", school(guardian, child, sqqx="320111", sqrq="2026/03/01", sqbh="JY1"),
                  school(guardian, child, xd="CZ", sqqx="320111", sqrq="2026/03/01", sqbh="JY2"))
    async with services(settings):
        await drain(r, settings)
    subjects = "rosteridx{outlet:edu}:education.compulsory_enrollment:subjects"
    await r.delete(subjects)  # as an earlier release left it
    async with services(settings):
        await drain(r, settings)
        assert await r.hexists(subjects, "built")
        async with client(settings) as c:
            found = (await c.get(f"/v1/subjects/{child}", headers=auth("edu"))).json()["entries"]
    assert [e["application_id"] for e in found] == ["JY1", "JY2"]
    assert await r.hlen(subjects) == 2  # the child, and the mark that the index is complete


async def test_paged_reads_a_token_may_start_are_bounded(r, settings):
    """Each paged read holds a copy of the roster in Redis until its TTL: past the budget, 429
    and no copy; rosters that fit in one page need none and stay readable."""
    people = [make_id(seq=i) for i in range(5)]
    await publish(r, "psb:permit", *[permit("QF", p, district="320111") for p in people])
    async with services(settings):
        await drain(r, settings)
    app = create_app(settings.model_copy(update={"api_tokens": TOKENS, "api_snapshots_max": 2}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c:
        url = "/v1/rosters/health.family_doctor/320111"
        codes = [(await c.get(url, params={"limit": 2}, headers=auth("health"))).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        assert len(await r.keys("roster{outlet:health}:*:snap:*")) == 4  # two reads: hash + order each
        assert (await c.get(url, params={"limit": 5}, headers=auth("health"))).json()["count"] == 5
