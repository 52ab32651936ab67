"""The change of date: a permit past yxqz stops counting the next day, with no event."""

import datetime as dt

from services.runtime.clock import ManualClock
from tests.conftest import publish, read_outlet
from tests.harness import drain, services
from tests.people import contribution, housing, make_id, months, permit, school


async def test_expired_permit_revokes_roster_entitlements_next_day(r, settings):
    clock = ManualClock(dt.date(2026, 11, 27))
    expiring, lasting = make_id(), make_id()
    guardian, child = make_id("19850101"), make_id("20180101")
    await publish(r, "psb:permit",
                  permit("QF", expiring, district="320116", qfrq="2024-11-28", yxqz="2026-11-28"),
                  permit("QF", lasting, district="320102", qfrq="2024-11-28", yxqz="2030-01-01"),
                  permit("QF", guardian, district="320113", qfrq="2024-11-28", yxqz="2026-11-28"))
    await publish(r, "hrss:contribution", *[contribution(expiring, m) for m in months("202501", 8)])
    async with services(settings, clock=clock) as running:
        await drain(r, settings)
        await publish(r, "edu:application", school(guardian, child, sqqx="320113", sqrq="2026/09/01"))
        await drain(r, settings)
        assert [d["status"] for d in await read_outlet(r, "outlet:psb")] == ["eligible"]
        assert [d["status"] for d in await read_outlet(r, "outlet:edu")] == ["eligible"]
        clock.set(dt.date(2026, 11, 28))  # yxqz itself: still valid, nothing changes
        await running.scheduler.check()
        await drain(r, settings)
        assert len(await read_outlet(r, "outlet:health")) == 3
        ticked_before = running.scheduler.ticked
        clock.set(dt.date(2026, 11, 29))  # the day after yxqz: the scheduler notices by itself
        await drain(r, settings, timeout=10)
        import asyncio

        for _ in range(100):
            if len(await read_outlet(r, "outlet:psb")) == 2:
                break
            await asyncio.sleep(0.05)
        await drain(r, settings)
    assert running.scheduler.ticked - ticked_before == 2  # exactly the two affected people
    psb = await read_outlet(r, "outlet:psb")
    assert [(d["status"], d["version"], d["reasons"], d["as_of"]) for d in psb] == [
        ("eligible", 1, [], "2026-11-27"), ("revoked", 2, ["NO_VALID_PERMIT"], "2026-11-29")]
    assert psb[1]["district"] == "320116" and psb[1]["caused_by"] == []
    health = {(d["subject_id"], d["status"]) for d in await read_outlet(r, "outlet:health")}
    assert (expiring, "revoked") in health and (guardian, "revoked") in health and (lasting, "revoked") not in health
    edu = await read_outlet(r, "outlet:edu")  # the open application is decided again: the place is withdrawn
    assert [(d["status"], d["reasons"], d["version"]) for d in edu] == [
        ("eligible", [], 1), ("revoked", ["GUARDIAN_NO_VALID_PERMIT"], 2)]


async def _due_index_matches_pictures(r, settings) -> int:
    """due:{pN} holds exactly the people whose stored picture names a next change, at that date."""
    import msgspec

    from schemas.picture import Person
    from services.runtime import topology as t

    n = 0
    for p in range(settings.partitions):
        pictures = {k: msgspec.msgpack.decode(v, type=Person) for k, v in (await r.hgetall(t.people(p))).items()}
        index = {k: int(score) for k, score in await r.zrange(t.due(p), 0, -1, withscores=True)}
        assert index == {k: person.due for k, person in pictures.items() if person.due}
        n += len(index)
    return n


async def test_due_dates_are_written_when_they_move_and_stay_in_step_with_the_pictures(r, settings):
    clock = ManualClock(dt.date(2026, 11, 27))
    worker, settled = make_id(), make_id()
    await publish(r, "psb:permit",
                  permit("QF", worker, district="320116", qfrq="2024-11-28", yxqz="2026-12-31"),
                  permit("LH", settled, district="320105", czsj="2025-06-30 10:00:00"))
    await publish(r, "hrss:contribution", *[contribution(worker, m) for m in months("202601", 10)],
                  *[contribution(settled, m, aae140="310") for m in months("202608", 3)])
    async with services(settings, clock=clock) as running:
        await drain(r, settings)
        assert await _due_index_matches_pictures(r, settings) == 2
        due_before = {m: s for p in range(settings.partitions)
                      for m, s in await r.zrange(f"due:{{p{p}}}", 0, -1, withscores=True)}
        await publish(r, "hrss:contribution", contribution(worker, "202611", aae140="120"))  # same month, 2nd scheme
        await drain(r, settings)
        assert {m: s for p in range(settings.partitions)
                for m, s in await r.zrange(f"due:{{p{p}}}", 0, -1, withscores=True)} == due_before
        clock.set(dt.date(2027, 1, 1))  # past yxqz and past the settled person's medical window
        await running.scheduler.check()
        await drain(r, settings)
        assert running.scheduler.ticked == 2
        await _due_index_matches_pictures(r, settings)


# -- applications close on 31 December of their year (docs/policy.md, "The entitlements") ------
async def _roster(r, outlet: str, entitlement: str, district: str) -> list[str]:
    from services.runtime import topology as t

    return sorted(f.decode() for f in await r.hkeys(t.roster(outlet, entitlement, district)))


async def test_an_application_first_read_after_its_closing_day_is_decided_as_of_that_day(r, settings):
    """Dated 2026-12-21, read on 2027-01-02 (a backlog): decided once, as of 2026-12-31, while the
    guardian's permit (to 2026-12-31) was valid; closed, so listed on no roster."""
    clock = ManualClock(dt.date(2027, 1, 2))
    guardian, child = make_id("19850101"), make_id("20180101")
    await publish(r, "psb:permit", permit("QF", guardian, district="320113", qfrq="2024-12-01", yxqz="2026-12-31"))
    async with services(settings, clock=clock) as running:
        await drain(r, settings)  # the feeds are read independently: the permit first
        await publish(r, "edu:application", school(guardian, child, sqqx="320113", sqrq="2026/12/21", sqbh="JY-LATE"))
        await drain(r, settings)
        clock.set(dt.date(2027, 1, 3))  # later days change nothing for a closed application
        await running.scheduler.check()
        await drain(r, settings)
    edu = await read_outlet(r, "outlet:edu")
    assert [(d["application_id"], d["status"], d["reasons"], d["as_of"], d["version"]) for d in edu] == [
        ("JY-LATE", "eligible", [], "2026-12-31", 1)]
    assert await _roster(r, "outlet:edu", "education.compulsory_enrollment", "320113") == []


async def test_applications_leave_their_rosters_at_the_change_of_year_with_no_decision(r, settings):
    clock = ManualClock(dt.date(2026, 12, 30))
    guardian, child, applicant = make_id("19850101"), make_id("20180101"), make_id("19800101")
    await publish(r, "psb:permit",
                  permit("QF", guardian, district="320113", qfrq="2024-12-01", yxqz="2030-01-01"),
                  permit("LH", applicant, district="320111", czsj="2025-06-30 10:00:00"))
    async with services(settings, clock=clock) as running:
        await drain(r, settings)  # the feeds are read independently: the permits first
        await publish(r, "edu:application", school(guardian, child, sqqx="320113", sqrq="2026/12/21", sqbh="JY-1"))
        await publish(r, "housing:application", housing(applicant, applied="2026-12-01", no="ZF-1"))
        await drain(r, settings)
        assert await _roster(r, "outlet:edu", "education.compulsory_enrollment", "320113") == [f"{child}|JY-1"]
        assert await _roster(r, "outlet:housing", "housing.security", "320111") == [f"{applicant}|ZF-1"]
        clock.set(dt.date(2026, 12, 31))  # the closing day itself: still open
        await running.scheduler.check()
        await drain(r, settings)
        assert await _roster(r, "outlet:edu", "education.compulsory_enrollment", "320113") == [f"{child}|JY-1"]
        clock.set(dt.date(2027, 1, 1))
        await running.scheduler.check()
        await drain(r, settings)
        assert running.scheduler.ticked >= 2  # both people were due on their applications' closing
        assert await _roster(r, "outlet:edu", "education.compulsory_enrollment", "320113") == []
        assert await _roster(r, "outlet:housing", "housing.security", "320111") == []
        # the guardian's permit is cancelled afterwards: the closed application is decided no more
        await publish(r, "psb:permit", permit("ZX", guardian))
        await drain(r, settings)
    edu = await read_outlet(r, "outlet:edu")
    housing_out = await read_outlet(r, "outlet:housing")
    assert [(d["status"], d["version"], d["as_of"]) for d in edu] == [("eligible", 1, "2026-12-30")]
    assert [(d["status"], d["version"]) for d in housing_out] == [("eligible", 1)]
    assert await _roster(r, "outlet:edu", "education.compulsory_enrollment", "320113") == []
    for outlet, ent in (("outlet:edu", "education.compulsory_enrollment"), ("outlet:housing", "housing.security")):
        assert await r.hlen(f"rosteridx{{{outlet}}}:{ent}") == 0  # the indexes followed the rosters
        assert await r.hkeys(f"rosteridx{{{outlet}}}:{ent}:subjects") == [b"built"]  # no subject left
    await _due_index_matches_pictures(r, settings)


def test_permitbus_today_must_be_a_day_or_the_start_fails_naming_it(monkeypatch, capsys):
    from services.cli import main

    for bad in ("0", "1700000000", "2026-1-1", "2026-02-30", "tomorrow"):
        monkeypatch.setenv("PERMITBUS_TODAY", bad)
        assert main(["topology"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "PERMITBUS_TODAY" in err[0] and "YYYY-MM-DD" in err[0], err
    monkeypatch.setenv("PERMITBUS_TODAY", "2026-12-01")
    assert main(["topology"]) == 0


async def test_an_application_closed_before_this_release_leaves_its_roster_with_the_next_event(r, settings):
    """A picture of an earlier release filed no due date for an application's closing: the first
    event of that person after the closing day (a contribution, here) takes it off the roster."""
    from services.runtime import topology as t
    from services.runtime.identity import Pseudonymizer, partition_of

    clock = ManualClock(dt.date(2026, 12, 30))
    guardian, child = make_id("19850101"), make_id("20180101")
    await publish(r, "psb:permit", permit("QF", guardian, district="320113", qfrq="2024-12-01", yxqz="2030-01-01"))
    async with services(settings, clock=clock):
        await drain(r, settings)
        await publish(r, "edu:application", school(guardian, child, sqqx="320113", sqrq="2026/12/21", sqbh="JY-OLD"))
        await drain(r, settings)
        # as an earlier release left it: nobody due on the closing day
        await r.zrem(t.due(partition_of(guardian, settings.partitions)), Pseudonymizer(settings.pseudonym_secret())(guardian))
        clock.set(dt.date(2027, 1, 5))
        await drain(r, settings)
        assert await _roster(r, "outlet:edu", "education.compulsory_enrollment", "320113") == [f"{child}|JY-OLD"]
        await publish(r, "hrss:contribution", contribution(guardian, "202612"))
        await drain(r, settings)
    assert await _roster(r, "outlet:edu", "education.compulsory_enrollment", "320113") == []
    assert [(d["status"], d["version"]) for d in await read_outlet(r, "outlet:edu")] == [("eligible", 1)]
