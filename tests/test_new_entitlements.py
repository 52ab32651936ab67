"""Clauses （九） and （十四） and revoked applications end to end: department records in, decisions,
rosters, figures and the read API out, through the real services on Redis, the change of date
noticed by the scheduler (services/scheduler/service.py) with the project's clock.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
import msgspec

from schemas.picture import Outcome, Permit, Person
from services.figures.read import by_district, read_counters
from services.outlets.api import create_app
from services.picture.contributions import Contributions
from services.runtime import topology as t
from services.runtime.clock import ManualClock
from services.runtime.identity import Pseudonymizer, fingerprint, partition_of
from tests.conftest import publish, read_outlet
from tests.harness import drain, services
from tests.people import contribution, make_id, months, permit, school
from tests.test_date_change import _due_index_matches_pictures

EMPLOYMENT, CIVIL = "employment.unemployment_registration", "civil.temporary_assistance"
EDUCATION = "education.compulsory_enrollment"
PUKOU, XUANWU, QIXIA = "320111", "320102", "320113"
TOKENS = {"hrss": "t-hrss", "civil": "t-civil", "health": "t-health", "edu": "t-edu"}


def client(settings):
    app = create_app(settings.model_copy(update={"api_tokens": TOKENS}))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


def auth(dept):
    return {"Authorization": f"Bearer {TOKENS[dept]}"}


def brief(decisions, subject):
    return [(d["status"], d["district"], d["reasons"], d["version"], d["as_of"]) for d in decisions
            if d["subject_id"] == subject]


async def roster(r, outlet: str, entitlement: str, district: str) -> list[str]:
    return sorted(f.decode() for f in await r.hkeys(t.roster(outlet, entitlement, district)))


async def tick_to(running, r, settings, clock, on: str) -> int:
    """Move D to ``on``; the scheduler notices by itself. Returns the people it ticked."""
    before = running.scheduler.ticked
    clock.set(dt.date.fromisoformat(on))
    await running.scheduler.check()
    await drain(r, settings)
    return running.scheduler.ticked - before


# =============================================================================================
# employment.unemployment_registration: the window moves on the first of the month, no event
# =============================================================================================
async def test_the_unemployment_window_moves_with_the_date_for_exactly_the_people_it_affects(r, settings):
    """docs/policy.md's example (D = 2021-09-01, last paid month 2021-06: eligible that day) through the
    services: the scheduler ticks that person on 2021-09-01 and no one else, and the revocation
    (NO_RECENT_EMPLOYMENT) comes with no event, on the first day the lookback no longer holds
    2021-06: 2022-09-01 by conditions 3-4 (tests/test_rules_employment_civil.py,
    test_the_policy_example, says why not the example's 2022-07-01)."""
    clock = ManualClock(dt.date(2021, 8, 15))
    stopped, working, idle = make_id(), make_id(), make_id()
    await publish(r, "hrss:contribution",
                  *[contribution(stopped, m) for m in months("202007", 12)],  # 2020-07 .. 2021-06
                  *[contribution(working, m, aae140=t_, region="310000")  # Shanghai: any region counts
                    for m in months("202008", 12) for t_ in ("110", "310")])  # 2020-08 .. 2021-07
    async with services(settings, clock=clock) as running:
        await drain(r, settings)  # the history first (with a permit first, each month would be decided in turn)
        await publish(r, "psb:permit", *[permit("QF", p, district=QIXIA, qfrq="2020-01-01", yxqz="2030-12-31",
                                                czsj="2020-01-01 09:00:00") for p in (stopped, working, idle)])
        await drain(r, settings)
        assert await read_outlet(r, "outlet:hrss") == []  # 2021-06 (stopped), 2021-07 (working): gap months
        assert {d["subject_id"] for d in await read_outlet(r, "outlet:civil")} == {stopped, working, idle}
        assert await tick_to(running, r, settings, clock, "2021-08-31") == 0
        assert await tick_to(running, r, settings, clock, "2021-09-01") == 1  # stopped, only
        hrss = await read_outlet(r, "outlet:hrss")
        assert brief(hrss, stopped) == [("eligible", QIXIA, [], 1, "2021-09-01")]
        assert hrss[0]["caused_by"] == [] and hrss[0]["basis"] == ["（九）"] and hrss[0]["application_id"] is None
        assert await roster(r, "outlet:hrss", EMPLOYMENT, QIXIA) == [stopped]
        assert await tick_to(running, r, settings, clock, "2021-10-01") == 1  # working, whose 2021-07 left the gap
        assert brief(await read_outlet(r, "outlet:hrss"), working) == [("eligible", QIXIA, [], 1, "2021-10-01")]
        for on in ("2021-11-01", "2022-01-01", "2022-07-01", "2022-08-01"):
            assert await tick_to(running, r, settings, clock, on) == 0, on  # nobody's outcome changes
        assert await tick_to(running, r, settings, clock, "2022-09-01") == 1
        assert await tick_to(running, r, settings, clock, "2022-10-01") == 1
        await _due_index_matches_pictures(r, settings)
    hrss = await read_outlet(r, "outlet:hrss")
    assert brief(hrss, stopped) == [("eligible", QIXIA, [], 1, "2021-09-01"),
                                    ("revoked", QIXIA, ["NO_RECENT_EMPLOYMENT"], 2, "2022-09-01")]
    assert brief(hrss, working) == [("eligible", QIXIA, [], 1, "2021-10-01"),
                                    ("revoked", QIXIA, ["NO_RECENT_EMPLOYMENT"], 2, "2022-10-01")]
    assert brief(hrss, idle) == []
    assert await roster(r, "outlet:hrss", EMPLOYMENT, QIXIA) == []
    assert [d["status"] for d in await read_outlet(r, "outlet:civil")] == ["eligible"] * 3  # nothing moved them


async def test_a_contribution_revokes_and_a_birthday_admits(r, settings):
    """Going back to work (a record for a gap month, any region) revokes with EMPLOYED; a 16th
    birthday is a change of date the scheduler notices; the figures follow."""
    clock = ManualClock(dt.date(2026, 11, 28))
    adult, teen = make_id(), make_id("20101215")
    await publish(r, "psb:permit", permit("QF", adult, district=PUKOU), permit("QF", teen, district=PUKOU))
    await publish(r, "hrss:contribution", contribution(adult, "202606"), contribution(teen, "202607", aae140="210"))
    async with services(settings, clock=clock) as running:
        await drain(r, settings)
        assert brief(await read_outlet(r, "outlet:hrss"), adult) == [("eligible", PUKOU, [], 1, "2026-11-28")]
        table = by_district(await read_counters(r, settings.partitions))
        assert table[PUKOU]["eligible"] == {"health.family_doctor": 2, CIVIL: 2, EMPLOYMENT: 1}
        await publish(r, "hrss:contribution", contribution(adult, "202610", region="320505"))  # Suzhou, October
        await drain(r, settings)
        assert await tick_to(running, r, settings, clock, "2026-12-14") == 0
        assert await tick_to(running, r, settings, clock, "2026-12-15") == 1  # the teen turns 16
        table = by_district(await read_counters(r, settings.partitions))
        assert table[PUKOU]["eligible"] == {"health.family_doctor": 2, CIVIL: 2, EMPLOYMENT: 1}
    hrss = await read_outlet(r, "outlet:hrss")
    assert brief(hrss, adult) == [("eligible", PUKOU, [], 1, "2026-11-28"),
                                  ("revoked", PUKOU, ["EMPLOYED"], 2, "2026-11-28")]
    assert brief(hrss, teen) == [("eligible", PUKOU, [], 1, "2026-12-15")]
    assert await roster(r, "outlet:hrss", EMPLOYMENT, PUKOU) == [teen]


# =============================================================================================
# civil.temporary_assistance, and the two new outlets' owners
# =============================================================================================
async def test_the_new_rosters_are_read_by_their_own_departments_only(r, settings):
    a, settler = make_id(), make_id()
    await publish(r, "psb:permit", permit("QF", a, district=PUKOU),
                  permit("LH", settler, district=XUANWU, czsj="2026-03-05 10:00:00"))
    await publish(r, "hrss:contribution", contribution(a, "202605"))
    async with services(settings):
        await drain(r, settings)
        await publish(r, "psb:permit", permit("BG", a, district=QIXIA))  # eligible again in the new district
        await drain(r, settings)
    civil = await read_outlet(r, "outlet:civil")
    assert brief(civil, a) == [("eligible", PUKOU, [], 1, "2026-11-28"), ("eligible", QIXIA, [], 2, "2026-11-28")]
    assert brief(civil, settler) == [("eligible", XUANWU, [], 1, "2026-11-28")]
    assert all(d["entitlement"] == CIVIL and d["basis"] == ["（十四）"] for d in civil)
    assert {d["entitlement"] for d in await read_outlet(r, "outlet:hrss")} == {EMPLOYMENT}
    async with client(settings) as c:
        got = (await c.get(f"/v1/rosters/{CIVIL}/{QIXIA}", headers=auth("civil"))).json()
        assert [e["subject_id"] for e in got["entries"]] == [a] and got["outlet"] == "outlet:civil"
        assert (await c.get(f"/v1/rosters/{CIVIL}/{PUKOU}", headers=auth("civil"))).json()["count"] == 0
        got = (await c.get(f"/v1/rosters/{EMPLOYMENT}/{QIXIA}", headers=auth("hrss"))).json()
        assert [e["subject_id"] for e in got["entries"]] == [a] and got["outlet"] == "outlet:hrss"
        for ent, wrong in ((CIVIL, "hrss"), (CIVIL, "health"), (EMPLOYMENT, "civil"), (EMPLOYMENT, "edu")):
            assert (await c.get(f"/v1/rosters/{ent}/{QIXIA}", headers=auth(wrong))).status_code == 403
        mine = (await c.get(f"/v1/subjects/{a}", headers=auth("civil"))).json()
        assert [e["entitlement"] for e in mine["entries"]] == [CIVIL]
        mine = (await c.get(f"/v1/subjects/{a}", headers=auth("hrss"))).json()
        assert [e["entitlement"] for e in mine["entries"]] == [EMPLOYMENT]


# =============================================================================================
# Applications say revoked
# =============================================================================================
async def test_an_application_eligible_then_not_goes_out_revoked_and_leaves_its_roster(r, settings):
    """The guardian's permit is cancelled (ZX) after an eligible decision: ``revoked`` with
    GUARDIAN_NO_VALID_PERMIT, off the roster; a new permit: ``eligible`` again, on the roster. An
    application first decided ineligible stays ``ineligible``: nothing new when its reasons change."""
    guardian, child, other_child = make_id("19850101"), make_id("20190501"), make_id("20190601")
    await publish(r, "psb:permit", permit("QF", guardian, district=PUKOU))
    async with services(settings):
        await drain(r, settings)
        await publish(r, "edu:application",
                      school(guardian, child, sqqx=PUKOU, sqrq="2026/03/01", sqbh="JY-A"),
                      school(guardian, other_child, sqqx=XUANWU, sqrq="2026/03/01", sqbh="JY-B"))
        await drain(r, settings)
        assert await roster(r, "outlet:edu", EDUCATION, PUKOU) == [f"{child}|JY-A"]
        await publish(r, "psb:permit", permit("ZX", guardian))
        await drain(r, settings)
        assert await roster(r, "outlet:edu", EDUCATION, PUKOU) == []
        async with client(settings) as c:
            assert (await c.get(f"/v1/subjects/{child}", headers=auth("edu"))).json()["entries"] == []
        table = by_district(await read_counters(r, settings.partitions))
        assert table[PUKOU]["applications"] == {EDUCATION: {"2026": {"revoked": 1}}}
        assert table[XUANWU]["applications"] == {EDUCATION: {"2026": {"ineligible": 1}}}
        await publish(r, "psb:permit", permit("QF", guardian, jzzbh="JZZ002", district=PUKOU))
        await drain(r, settings)
        assert await roster(r, "outlet:edu", EDUCATION, PUKOU) == [f"{child}|JY-A"]
        table = by_district(await read_counters(r, settings.partitions))
        assert table[PUKOU]["applications"] == {EDUCATION: {"2026": {"eligible": 1}}}
    edu = await read_outlet(r, "outlet:edu")
    assert [(d["application_id"], d["status"], d["reasons"], d["version"]) for d in edu] == [
        ("JY-A", "eligible", [], 1),
        ("JY-B", "ineligible", ["DISTRICT_MISMATCH"], 1),
        ("JY-A", "revoked", ["GUARDIAN_NO_VALID_PERMIT"], 2),  # JY-B: now GUARDIAN_NO_VALID_PERMIT, still refused
        ("JY-A", "eligible", [], 3),
    ]
    assert edu[2]["district"] == PUKOU and edu[2]["subject_id"] == child


# =============================================================================================
# Pictures written by the release before these rules
# =============================================================================================
async def test_a_picture_of_the_previous_release_is_decided_by_the_new_rules(r, settings):
    """A picture as the release before wrote it (schema 3, no birth date, no outcome for the new
    rosters) is read, decided by the new rules at the person's next event (the age read from the
    sealed ID), and written back with its birth date."""
    teen = make_id("20101215")
    key = Pseudonymizer(settings.pseudonym_secret())(teen)
    p = partition_of(teen, settings.partitions)
    slots = Contributions()
    slots.record(fingerprint("RS-OLD"), 202607, "110", "320102", True)
    contrib, old_fps = slots.pack()
    figs = [f"eligible|{PUKOU}|health.family_doctor", f"permit_holders|{PUKOU}"]
    person = Person(v=3, sid=settings.data_keyring().seal(teen), contrib=contrib, old_fps=old_fps,
                    emp_months=slots.employee_months, figs=figs, seen=[fingerprint("GA-OLD")],
                    permit=Permit("JZZ001", PUKOU, dt.date(2025, 1, 1).toordinal(), dt.date(2026, 12, 31).toordinal()),
                    roster={"health.family_doctor": Outcome("eligible", PUKOU, False, 1)})
    older = msgspec.msgpack.encode(list(msgspec.structs.astuple(person))[:-1])  # the layout without ``born``
    await r.hset(t.people(p), key, older)
    for f in figs:
        await r.hincrby(t.figures(p), f, 1)
    clock = ManualClock(dt.date(2026, 12, 15))  # the teen's 16th birthday
    async with services(settings, clock=clock):
        await publish(r, "psb:permit", permit("QZ", teen, qfrq="2026-12-15", yxqz="2028-12-14", district=None))
        await drain(r, settings)
    assert brief(await read_outlet(r, "outlet:hrss"), teen) == [("eligible", PUKOU, [], 1, "2026-12-15")]
    assert brief(await read_outlet(r, "outlet:civil"), teen) == [("eligible", PUKOU, [], 1, "2026-12-15")]
    assert await read_outlet(r, "outlet:health") == []  # still eligible there: nothing new
    person = msgspec.msgpack.decode(await r.hget(t.people(p), key), type=Person)
    assert person.born == dt.date(2010, 12, 15).toordinal()
    table = by_district(await read_counters(r, settings.partitions))
    assert table[PUKOU]["eligible"] == {"health.family_doctor": 1, CIVIL: 1, EMPLOYMENT: 1}
    assert table[PUKOU]["permit_holders"] == 1


async def test_retick_puts_the_people_of_an_earlier_release_on_the_new_rosters(r, settings, redis_url):
    """A settled person and a long-term permit holder decided by the release before (no outcome for
    the new rosters, nothing due for months): ``permitbus retick`` ticks every picture once, and
    they are listed; a second pass emits nothing."""
    from tests.test_demo import run_cli

    settler, holder = make_id(), make_id()
    await publish(r, "psb:permit", permit("LH", settler, district=XUANWU, czsj="2025-06-30 10:00:00"),
                  permit("QF", holder, district=PUKOU, qfrq="2025-01-01", yxqz="2030-12-31"))
    async with services(settings):
        await drain(r, settings)
    for p in range(settings.partitions):  # as the release before left them: no outcome for clause （十四）
        for key, blob in (await r.hgetall(t.people(p))).items():
            person = msgspec.msgpack.decode(blob, type=Person)
            person.roster.pop(CIVIL)
            person.figs = [f for f in person.figs if CIVIL not in f]
            await r.hset(t.people(p), key, msgspec.msgpack.encode(person))
    await r.delete(*[t.figures(p) for p in range(settings.partitions)])  # (recounted below from the pictures)
    await r.xtrim("outlet:civil", maxlen=0)
    await r.delete(t.roster("outlet:civil", CIVIL, XUANWU), t.roster("outlet:civil", CIVIL, PUKOU),
                   t.roster_index("outlet:civil", CIVIL))
    for p in range(settings.partitions):
        for blob in (await r.hgetall(t.people(p))).values():
            for f in msgspec.msgpack.decode(blob, type=Person).figs:
                await r.hincrby(t.figures(p), f, 1)
    env = {"PERMITBUS_PARTITIONS": str(settings.partitions)}
    async with services(settings):
        out = await asyncio.to_thread(run_cli, redis_url, "retick", **env)
        assert "2 people to be decided again as of 2026-11-28" in out
        await drain(r, settings)
        await asyncio.to_thread(run_cli, redis_url, "retick", **env)  # again: nothing changes
        await drain(r, settings)
    civil = await read_outlet(r, "outlet:civil")
    assert sorted((d["subject_id"], d["status"], d["district"], d["caused_by"]) for d in civil) == sorted([
        (settler, "eligible", XUANWU, []), (holder, "eligible", PUKOU, [])])
    assert await roster(r, "outlet:civil", CIVIL, XUANWU) == [settler]
    table = by_district(await read_counters(r, settings.partitions))
    assert table[XUANWU]["eligible"][CIVIL] == 1 and table[PUKOU]["eligible"][CIVIL] == 1
