"""A person's view (issue 13, point 3): ``GET /v1/people/{id}/disclosures`` with the ``citizen``
token: every decision about that person any department received, from the audit log, newest
first, paged; only that person's; the citizen token only. Through the real services."""

from __future__ import annotations

import json

import httpx

from services.outlets.api import create_app
from services.runtime import topology as t
from services.runtime.redis import stream_id
from tests.conftest import publish
from tests.harness import drain, services
from tests.people import contribution, housing, make_id, months, permit

TOKENS = {"psb": "t-psb", "health": "t-health", "ops": "t-ops", "citizen": "t-citizen"}
PUKOU, XUANWU, LUHE = "320111", "320102", "320116"


def client(settings):
    app = create_app(settings.model_copy(update={"api_tokens": TOKENS}))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


def auth(who: str) -> dict:
    return {"Authorization": f"Bearer {TOKENS[who]}"}


async def told(r, subject: str) -> list[tuple[str, str]]:
    """What the outlets hold about ``subject``: (outlet, decision id), newest delivery first."""
    found = []
    for outlet in t.AUDITED:
        for eid, f in await r.xrange(outlet):
            d = json.loads(f[b"payload"])
            if d["subject_id"] == subject:
                found.append((stream_id(eid), outlet.split(":", 1)[1], outlet, d["decision_id"]))
    return [(outlet, did) for *_, outlet, did in sorted(found, reverse=True)]


async def story(r, settings) -> tuple[str, str]:
    """``a`` is told about by several departments, several times; ``b`` once or twice."""
    a, b = make_id(), make_id()
    await publish(r, "hrss:contribution", *[contribution(a, m) for m in months("202501", 6)])
    async with services(settings):
        await drain(r, settings)
        for step in (permit("QF", a, district=PUKOU), permit("QF", b, district=PUKOU),
                     permit("BG", a, district=XUANWU), permit("BG", a, district=LUHE)):
            await publish(r, "psb:permit", step)
            await drain(r, settings)
        await publish(r, "housing:application", housing(a, district=LUHE))
        await drain(r, settings)
    return a, b


async def test_a_person_sees_every_decision_about_them_newest_first(r, settings):
    a, b = await story(r, settings)
    want = await told(r, a)
    assert len({o for o, _ in want}) >= 3 and len(want) >= 7
    async with client(settings) as c:
        res = await c.get(f"/v1/people/{a}/disclosures", headers=auth("citizen"))
    assert res.status_code == 200
    body = res.json()
    assert body["subject_id"] == a[:6] + "********" + a[-4:] and a not in res.text
    assert [(x["outlet"], x["decision_id"]) for x in body["disclosures"]] == want and body["next"] is None
    first = body["disclosures"][0]
    assert set(first) >= {"outlet", "department", "entitlement", "status", "district", "reasons", "basis",
                          "decided_at", "delivered_at", "version"}
    revoked = [x for x in body["disclosures"] if x["status"] == "revoked"]
    assert revoked and all(x["reasons"] and x["basis"] for x in revoked)  # what they were told, and why
    assert [x["delivered_at"] for x in body["disclosures"]] == sorted(
        (x["delivered_at"] for x in body["disclosures"]), reverse=True)
    # only that person's: b's own view is b's decisions
    async with client(settings) as c:
        other = (await c.get(f"/v1/people/{b}/disclosures", headers=auth("citizen"))).json()
    assert [(x["outlet"], x["decision_id"]) for x in other["disclosures"]] == await told(r, b)
    assert not {x["decision_id"] for x in other["disclosures"]} & {d for _, d in want}
    # an audit entry altered so that its decision no longer opens: left out, the rest still shown
    outlet, did = want[0]
    keys = settings.data_keyring()
    for p in range(settings.partitions):
        rows = await r.xrange(t.audit(outlet, p))
        mine = [(eid, f) for eid, f in rows if json.loads(keys.open_audit(f[b"dec"]))["decision_id"] == did]
        if mine:
            await r.delete(t.audit(outlet, p))
            for eid, f in rows:
                if eid == mine[0][0]:
                    f = {**f, b"dec": f[b"dec"][:-1] + bytes([f[b"dec"][-1] ^ 1])}
                await r.xadd(t.audit(outlet, p), f, id=eid)
    async with client(settings) as c:
        res = await c.get(f"/v1/people/{a}/disclosures", headers=auth("citizen"))
    assert res.status_code == 200
    assert [(x["outlet"], x["decision_id"]) for x in res.json()["disclosures"]] == want[1:]


async def test_pages_follow_the_cursor_without_repeat_or_gap_and_outlive_the_outlet(r, settings):
    a, _ = await story(r, settings)
    want = await told(r, a)
    pages, cursor = [], None
    async with client(settings) as c:
        while True:
            res = await c.get(f"/v1/people/{a}/disclosures", params={"limit": 2, **({"cursor": cursor} if cursor else {})},
                              headers=auth("citizen"))
            assert res.status_code == 200, res.text
            body = res.json()
            assert body["count"] == len(body["disclosures"]) <= 2
            pages.append(body["disclosures"])
            cursor = body["next"]
            if cursor is None:
                break
        assert len(pages) == (len(want) + 1) // 2
        assert [(x["outlet"], x["decision_id"]) for page in pages for x in page] == want
        # the outlets' retention has passed: the audit log still answers
        for outlet in t.AUDITED:
            await r.xtrim(outlet, maxlen=0)
        again = (await c.get(f"/v1/people/{a}/disclosures", headers=auth("citizen"))).json()
        assert [(x["outlet"], x["decision_id"]) for x in again["disclosures"]] == want
        nobody = (await c.get(f"/v1/people/{make_id()}/disclosures", headers=auth("citizen"))).json()
        assert nobody["disclosures"] == [] and nobody["next"] is None


async def test_only_the_citizen_token_opens_it_and_an_id_must_be_one(r, settings):
    a = make_id()
    async with client(settings) as c:
        path = f"/v1/people/{a}/disclosures"
        assert (await c.get(path)).status_code == 401
        assert (await c.get(path, headers={"Authorization": "Bearer nope"})).status_code == 401
        for who in ("psb", "health", "ops"):
            assert (await c.get(path, headers=auth(who))).status_code == 403, who
        assert (await c.get(path, headers=auth("citizen"))).status_code == 200
        for bad in (a[:-1], a[:-1] + ("0" if a[-1] != "0" else "1"), "*" * 18, a + "0"):
            assert (await c.get(f"/v1/people/{bad}/disclosures", headers=auth("citizen"))).status_code == 422, bad
        assert (await c.get(path, params={"cursor": "x"}, headers=auth("citizen"))).status_code == 422
        assert (await c.get(path, params={"limit": 0}, headers=auth("citizen"))).status_code == 422
        # and the citizen token opens no department's data, nor the operations page
        assert (await c.get(f"/v1/subjects/{a}", headers=auth("citizen"))).status_code == 403
        assert (await c.get("/v1/rosters/health.family_doctor/320111", headers=auth("citizen"))).status_code == 403
        assert (await c.get("/ops/api/status", headers=auth("citizen"))).status_code == 403
