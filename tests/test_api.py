"""The departments' read API: roster + outlet position, a subject's entitlements, ownership."""

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
