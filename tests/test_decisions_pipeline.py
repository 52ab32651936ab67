"""Decisions end to end: department records in, decisions out, through the real services on Redis.

Each test publishes raw records the way the departments do (builders in ``tests/people.py``),
runs the services until every stage is idle, and reads what the departments receive on their
outlets. Records of different feeds are not ordered against each other (docs/contract.md, "Ingress"), so where
a story needs an order between feeds it is told in steps: publish, drain, publish, drain.

The evaluation date D is the fixture's ``today``, 2026-11-28, unless a test says otherwise.
"""

from __future__ import annotations

import datetime as dt

import pytest

from schemas.ids import check_digit
from tests.conftest import publish, read_outlet
from tests.harness import drain, services
from tests.people import contribution, housing, make_id, months, permit, school

PUKOU, LUHE, LISHUI, GAOCHUN = "320111", "320116", "320117", "320118"
XUANWU, QINHUAI, JIANYE = "320102", "320104", "320105"

PERMITS, CONTRIBS, EDU_APPS, HOUSING_APPS = "psb:permit", "hrss:contribution", "edu:application", "housing:application"


def of(decisions, subject, *fields):
    """The decisions about one subject, each as a tuple of the named fields."""
    return [tuple(d[f] for f in fields) for d in decisions if d["subject_id"] == subject]


def story(decisions, subject):
    """(status, district, reasons, version) of each decision about one subject, in outlet order."""
    return of(decisions, subject, "status", "district", "reasons", "version")


def id_with_x(birth: str) -> str:
    """An ID number whose check character is X (sent lower-case by some departments)."""
    for seq in range(1000):
        body = f"320104{birth}{seq:03d}"
        if check_digit(body) == "X":
            return body + "X"
    raise AssertionError("no X check digit")


class Pipeline:
    """The services running on the test's Redis; ``step`` publishes and waits until all is decided."""

    def __init__(self, r, settings):
        self.r, self.settings = r, settings

    async def step(self, feed: str, *records) -> None:
        await publish(self.r, feed, *records)
        await drain(self.r, self.settings)

    async def outlet(self, name: str) -> list[dict]:
        return await read_outlet(self.r, f"outlet:{name}")


# =============================================================================================
# settlement.four_districts and health.family_doctor: roster entitlements
# =============================================================================================
async def test_roster_lifecycle_eligible_revoked_eligible_again(r, settings):
    a = make_id()
    six = [contribution(a, "202501", aae140="110", region="320102"),
           contribution(a, "202502", aae140="110", region="320102"),
           contribution(a, "202502", aae140="210", region="320505"),  # same month again: counts once
           contribution(a, "202504", aae140="210", region="320583"),  # Suzhou
           contribution(a, "202507", aae140="310", region="320200"),  # Wuxi
           contribution(a, "202510", aae140="510", region="320102"),
           contribution(a, "202512", aae140="120", region="320102")]
    qf = permit("QF", a, district=PUKOU)
    bg_out = permit("BG", a, district=XUANWU)
    bg_back = permit("BG", a, district=LUHE)
    p = Pipeline(r, settings)
    async with services(settings):
        await p.step(CONTRIBS, *six)
        await p.step(PERMITS, qf)
        assert story(await p.outlet("psb"), a) == [("eligible", PUKOU, [], 1)]
        await p.step(PERMITS, bg_out)
        await p.step(PERMITS, bg_back)
    psb = await p.outlet("psb")
    assert story(psb, a) == [
        ("eligible", PUKOU, [], 1),
        ("revoked", PUKOU, ["DISTRICT_NOT_COVERED"], 2),  # revoked where it applied
        ("eligible", LUHE, [], 3),
    ]
    assert of(psb, a, "caused_by") == [([qf["ywlsh"]],), ([bg_out["ywlsh"]],), ([bg_back["ywlsh"]],)]
    assert story(await p.outlet("health"), a) == [
        ("eligible", PUKOU, [], 1), ("eligible", XUANWU, [], 2), ("eligible", LUHE, [], 3)]
    assert await p.outlet("medins") == []


async def test_who_has_six_recognised_employee_months(r, settings):
    """Everyone holds a permit in 浦口; only the contributions differ."""
    people = {
        "six months in Nanjing": (lambda p: [contribution(p, m) for m in months("202501", 6)], True),
        "five months": (lambda p: [contribution(p, m) for m in months("202501", 5)], False),
        "six months, not in a row": (lambda p: [contribution(p, m) for m in
                                                ("202301", "202309", "202412", "202503", "202508", "202611")], True),
        "five Nanjing months, one in Suzhou 3205xx": (
            lambda p: [contribution(p, m) for m in months("202501", 5)]
            + [contribution(p, "202506", region="320506")], True),
        "five Nanjing months, one in Shanghai 310000": (
            lambda p: [contribution(p, m) for m in months("202501", 5)]
            + [contribution(p, "202506", region="310000")], False),
        "five Nanjing months, one in Hangzhou 330100": (
            lambda p: [contribution(p, m) for m in months("202501", 5)]
            + [contribution(p, "202506", region="330100")], False),
        "five months, one resident pension 170": (
            lambda p: [contribution(p, m) for m in months("202501", 5)]
            + [contribution(p, "202506", aae140="170")], False),
        "five months, one resident medical 390": (
            lambda p: [contribution(p, m) for m in months("202501", 5)]
            + [contribution(p, "202506", aae140="390")], False),
        "five months, one due but unpaid": (
            lambda p: [contribution(p, m) for m in months("202501", 5)]
            + [contribution(p, "202506", paid="0")], False),
        "one month under six types": (
            lambda p: [contribution(p, "202501", aae140=t) for t in ("110", "120", "210", "310", "410", "510")], False),
        "six months, one reversed later": (
            lambda p: [contribution(p, m) for m in months("202501", 6)]
            + [contribution(p, "202503", paid="0")], False),
        "five months + one unpaid then paid late": (
            lambda p: [contribution(p, m) for m in months("202501", 5)]
            + [contribution(p, "202506", paid="0"), contribution(p, "202506", paid="1")], True),
    }
    ids = {name: make_id() for name in people}
    records = [rec for name, (build, _) in people.items() for rec in build(ids[name])]
    p = Pipeline(r, settings)
    async with services(settings):
        await p.step(CONTRIBS, *records)
        await p.step(PERMITS, *[permit("QF", pid, district=PUKOU) for pid in ids.values()])
    psb = await p.outlet("psb")
    invited = {name for name, pid in ids.items() if story(psb, pid) == [("eligible", PUKOU, [], 1)]}
    assert invited == {name for name, (_, expected) in people.items() if expected}
    assert len(psb) == len(invited)  # nobody else hears anything


async def test_correction_of_a_contribution_revokes_and_restores(r, settings):
    a = make_id()
    reversal = contribution(a, "202503", paid="0")
    late_payment = contribution(a, "202503", paid="1")
    p = Pipeline(r, settings)
    async with services(settings):
        await p.step(PERMITS, permit("QF", a, district=GAOCHUN))
        await p.step(CONTRIBS, *[contribution(a, m) for m in months("202501", 6)])  # 6th month arrives
        await p.step(CONTRIBS, reversal)
        await p.step(CONTRIBS, late_payment)
        await p.step(CONTRIBS, reversal)  # the department re-sends the reversal: a duplicate
    psb = await p.outlet("psb")
    assert story(psb, a) == [
        ("eligible", GAOCHUN, [], 1),
        ("revoked", GAOCHUN, ["INSUFFICIENT_CONTRIBUTIONS"], 2),
        ("eligible", GAOCHUN, [], 3),
    ]
    assert of(psb, a, "caused_by")[1:] == [([reversal["LSH"]],), ([late_payment["LSH"]],)]


async def test_settling_revokes_settlement_invitation_and_moves_health_to_the_registration(r, settings):
    a = make_id()
    p = Pipeline(r, settings)
    async with services(settings):
        await p.step(CONTRIBS, *[contribution(a, m) for m in months("202401", 8)])
        await p.step(PERMITS, permit("QF", a, district=LISHUI))
        await p.step(PERMITS, permit("LH", a, district=QINHUAI, czsj="2026-11-20 10:00:00"))
    assert story(await p.outlet("psb"), a) == [("eligible", LISHUI, [], 1),
                                               ("revoked", LISHUI, ["ALREADY_SETTLED"], 2)]
    assert story(await p.outlet("health"), a) == [("eligible", LISHUI, [], 1), ("eligible", QINHUAI, [], 2)]
    assert story(await p.outlet("medins"), a) == [("eligible", QINHUAI, [], 1)]  # no 310 since 202401+8


async def test_expired_or_cancelled_permit_never_invites(r, settings):
    expired, cancelled, future, last_day = make_id(), make_id(), make_id(), make_id()
    everyone = (expired, cancelled, future, last_day)
    p = Pipeline(r, settings)
    async with services(settings):
        await p.step(CONTRIBS, *[contribution(x, m) for x in everyone for m in months("202501", 6)])
        await p.step(PERMITS,
                     permit("QF", expired, district=PUKOU, qfrq="2024-11-27", yxqz="2026-11-27"),
                     permit("QF", cancelled, district=PUKOU), permit("ZX", cancelled),
                     permit("QF", future, district=PUKOU, qfrq="2026-11-29", yxqz="2028-11-28"),
                     permit("QF", last_day, district=PUKOU, qfrq="20241128", yxqz="20261128"))
    psb = await p.outlet("psb")
    assert story(psb, expired) == [] and story(psb, future) == []
    assert story(psb, cancelled) == [("eligible", PUKOU, [], 1), ("revoked", PUKOU, ["NO_VALID_PERMIT"], 2)]
    assert story(psb, last_day) == [("eligible", PUKOU, [], 1)]  # yxqz == D: still valid
    assert story(await p.outlet("health"), expired) == []


# =============================================================================================
# medins.resident_enrollment
# =============================================================================================
async def test_medical_insurance_window(r, settings):
    """Settled people; D is in 202611, so 202609..202611 is the window."""
    people = {
        "no contributions": ([], True),
        "paid 310 in D's month": ([("202611", "310", "320102", "1")], False),
        "paid 310 one month before": ([("202610", "310", "320102", "1")], False),
        "paid 310 two months before": ([("202609", "310", "320102", "1")], False),
        "paid 310 three months before": ([("202608", "310", "320102", "1")], True),
        "paid 310 in Shanghai this month": ([("202611", "310", "310000", "1")], False),
        "unpaid 310 this month": ([("202611", "310", "320102", "0")], True),
        "pension 110 this month": ([("202611", "110", "320102", "1")], True),
    }
    ids = {name: make_id() for name in people}
    p = Pipeline(r, settings)
    async with services(settings):
        recs = [contribution(ids[n], m, aae140=t, region=reg, paid=pd)
                for n, (rows, _) in people.items() for m, t, reg, pd in rows]
        await p.step(CONTRIBS, *recs)
        await p.step(PERMITS, *[permit("LH", pid, district=JIANYE) for pid in ids.values()])
        medins = await p.outlet("medins")
        enrolled = {n for n, pid in ids.items() if story(medins, pid) == [("eligible", JIANYE, [], 1)]}
        assert enrolled == {n for n, (_, ok) in people.items() if ok}
        assert len(medins) == len(enrolled)
        # later: the one with no contributions takes a job with employee medical insurance
        newcomer = ids["no contributions"]
        await p.step(CONTRIBS, contribution(newcomer, "202611", aae140="310", region="320102"))
    assert story(await p.outlet("medins"), newcomer) == [
        ("eligible", JIANYE, [], 1), ("revoked", JIANYE, ["IN_EMPLOYEE_MEDICAL_INSURANCE"], 2)]


# =============================================================================================
# education.compulsory_enrollment
# =============================================================================================
async def test_education_reasons(r, settings):
    in_pukou, in_xuanwu, no_permit, settled_pukou = make_id("19850101"), make_id("19850101"), make_id("19850101"), \
        make_id("19850101")
    cases = [
        # guardian, child born, xd, sqrq (as spelled), status, reasons
        (in_pukou, "20190501", "XX", "2026/03/01", "eligible", []),
        (settled_pukou, "20190501", "XX", "2026/03/01", "eligible", []),
        (in_pukou, "20200831", "XX", "2026/03/01", "eligible", []),  # 6 exactly on 31 August
        (in_pukou, "20200901", "XX", "2026/03/01", "ineligible", ["UNDER_AGE"]),  # 6 on 1 September
        (in_pukou, "20200901", "XX", "2026年3月1日", "ineligible", ["UNDER_AGE"]),
        (in_pukou, "20200901", "CZ", "2026/03/01", "eligible", []),  # no minimum for junior secondary
        (in_pukou, "20080301", "CZ", "2026/03/01", "ineligible", ["OVER_AGE"]),  # 18 on sqrq
        (in_pukou, "20080302", "CZ", "2026/03/01", "eligible", []),  # 18 the day after sqrq
        (in_xuanwu, "20190501", "XX", "2026/03/01", "ineligible", ["DISTRICT_MISMATCH"]),
        (no_permit, "20190501", "XX", "2026/03/01", "ineligible", ["GUARDIAN_NO_VALID_PERMIT"]),
        (no_permit, "20220101", "XX", "2026/03/01", "ineligible", ["GUARDIAN_NO_VALID_PERMIT", "UNDER_AGE"]),
        (in_xuanwu, "20000101", "CZ", "2026/03/01", "ineligible", ["DISTRICT_MISMATCH", "OVER_AGE"]),
    ]
    apps = [school(g, make_id(born), xd=xd, sqqx=PUKOU, sqrq=sqrq) for g, born, xd, sqrq, _, _ in cases]
    p = Pipeline(r, settings)
    async with services(settings):
        await p.step(PERMITS, permit("QF", in_pukou, district=PUKOU), permit("QF", in_xuanwu, district=XUANWU),
                     permit("LH", settled_pukou, district=PUKOU))
        await p.step(EDU_APPS, *apps)
    edu = {d["application_id"]: d for d in await p.outlet("edu")}
    assert len(edu) == len(apps) == len(await p.outlet("edu"))  # one decision per application
    for app, (_, _, _, _, status, reasons) in zip(apps, cases):
        d = edu[app["sqbh"]]
        assert (d["status"], d["reasons"]) == (status, reasons), app
        assert (d["subject_id"], d["district"], d["version"], d["priority"]) == (app["xssfzh"], PUKOU, 1, False)
        assert d["basis"] == ["（七）", "（八）"] and d["caused_by"] == [app["sqbh"]]


async def test_education_decided_again_when_the_guardians_situation_changes(r, settings):
    guardian, child = make_id("19850101"), make_id("20190501")
    app = school(guardian, child, xd="XX", sqqx=PUKOU, sqrq="2026/03/01")
    qf = permit("QF", guardian, district=PUKOU)
    bg = permit("BG", guardian, district=XUANWU)
    bg_back = permit("BG", guardian, district=PUKOU)
    zx = permit("ZX", guardian)
    p = Pipeline(r, settings)
    async with services(settings):
        await p.step(EDU_APPS, app)
        await p.step(PERMITS, qf)  # a permit issued late, in the district applied in
        await p.step(PERMITS, bg)
        await p.step(PERMITS, bg_back)
        await p.step(PERMITS, zx)
    edu = await p.outlet("edu")
    assert story(edu, child) == [
        ("ineligible", PUKOU, ["GUARDIAN_NO_VALID_PERMIT"], 1),
        ("eligible", PUKOU, [], 2),
        ("revoked", PUKOU, ["DISTRICT_MISMATCH"], 3),  # eligible once: the place offered is withdrawn
        ("eligible", PUKOU, [], 4),
        ("revoked", PUKOU, ["GUARDIAN_NO_VALID_PERMIT"], 5),
    ]
    assert of(edu, child, "caused_by") == [([x],) for x in (app["sqbh"], qf["ywlsh"], bg["ywlsh"],
                                                             bg_back["ywlsh"], zx["ywlsh"])]
    assert {d["application_id"] for d in edu} == {app["sqbh"]} and story(edu, guardian) == []


async def test_education_reason_change_without_outcome_change_emits_nothing(r, settings):
    guardian, child = make_id("19850101"), make_id("20190501")
    p = Pipeline(r, settings)
    async with services(settings):
        await p.step(EDU_APPS, school(guardian, child, sqqx=PUKOU))
        await p.step(PERMITS, permit("QF", guardian, district=XUANWU))  # now DISTRICT_MISMATCH: still ineligible
        await p.step(PERMITS, permit("QZ", guardian, qfrq="2026-01-01", yxqz="2028-12-31", district=None))
    assert story(await p.outlet("edu"), child) == [("ineligible", PUKOU, ["GUARDIAN_NO_VALID_PERMIT"], 1)]


@pytest.mark.parametrize("today, redecided", [("2026-12-31", True), ("2027-01-01", False)],
                         ids=["31 December: still open", "1 January: closed"])
async def test_education_application_closes_at_the_end_of_the_year_of_sqrq(r, settings, today, redecided):
    settings = settings.model_copy(update={"today": dt.date.fromisoformat(today)})
    guardian, child = make_id("19850101"), make_id("20190501")
    p = Pipeline(r, settings)
    async with services(settings):
        await p.step(EDU_APPS, school(guardian, child, sqqx=PUKOU, sqrq="2026/03/01"))
        await p.step(PERMITS, permit("QF", guardian, district=PUKOU))
    expected = [("ineligible", PUKOU, ["GUARDIAN_NO_VALID_PERMIT"], 1)]
    if redecided:
        expected.append(("eligible", PUKOU, [], 2))
    assert story(await p.outlet("edu"), child) == expected
    # first read after its closing day: decided as of that day (docs/policy.md), not as of D
    assert of(await p.outlet("edu"), child, "as_of") == [(min(today, "2026-12-31"),)] * len(expected)
    assert story(await p.outlet("health"), guardian) == [("eligible", PUKOU, [], 1)]  # rosters still follow


# =============================================================================================
# housing.security
# =============================================================================================
async def test_housing_applications(r, settings):
    settled, settled_hw, settled_gj, not_settled = make_id(), make_id(), make_id(), make_id()
    cases = [
        # applicant, application fields, status, reasons, priority
        (settled, dict(size=3, income=9900), "eligible", [], False),  # exactly 3300 x 3
        (settled, dict(size=3, income=9901), "ineligible", ["INCOME_ABOVE_LIMIT"], False),
        (settled, dict(size=3, income="9900.00"), "eligible", [], False),  # numeric string
        (settled, dict(size=2, income=6300, applied="2022-06-30"), "ineligible", ["INCOME_ABOVE_LIMIT"], False),
        (settled, dict(size=2, income=6300, applied="2022-07-01"), "eligible", [], False),
        (settled, dict(size=2, income=6000, applied="2022-06-30"), "eligible", [], False),
        (settled, dict(size=3, income=6000, owns=True), "ineligible", ["OWNS_HOME"], False),
        (settled, dict(size=3, income=6000, occupation="sanitation"), "eligible", [], True),
        (settled, dict(size=3, income=6000, occupation="public_transport"), "eligible", [], True),
        (settled, dict(size=3, income=6000, occupation="teacher"), "eligible", [], False),
        (settled_hw, dict(size=3, income=6000), "eligible", [], True),
        (settled_gj, dict(size=3, income=6000), "eligible", [], True),
        (not_settled, dict(size=1, income=50000, owns=True), "ineligible",
         ["NOT_SETTLED", "OWNS_HOME", "INCOME_ABOVE_LIMIT"], False),
    ]
    apps = [housing(who, district=JIANYE, **kw) for who, kw, *_ in cases]
    p = Pipeline(r, settings)
    async with services(settings):
        await p.step(PERMITS, permit("LH", settled, district=PUKOU),
                     permit("QF", settled_hw, district=PUKOU, hylb="HW"), permit("LH", settled_hw, district=PUKOU),
                     permit("QF", settled_gj, district=PUKOU, hylb="GJ"), permit("LH", settled_gj, district=PUKOU),
                     permit("QF", not_settled, district=PUKOU))
        await p.step(HOUSING_APPS, *apps)
    out = await p.outlet("housing")
    by_no = {d["application_id"]: d for d in out}
    assert len(out) == len(apps)
    for app, (who, _, status, reasons, priority) in zip(apps, cases):
        d = by_no[app["applicationNo"]]
        assert (d["status"], d["reasons"], d["priority"]) == (status, reasons, priority), app
        assert (d["subject_id"], d["district"], d["version"], d["basis"]) == (who, JIANYE, 1, ["（十三）"])


async def test_housing_decided_again_when_the_applicant_settles_or_becomes_priority(r, settings):
    a = make_id()
    app = housing(a, size=3, income=6000, district=JIANYE, applied="2026-05-01")
    lh = permit("LH", a, district=PUKOU)
    p = Pipeline(r, settings)
    async with services(settings):
        await p.step(HOUSING_APPS, app)
        await p.step(PERMITS, lh)
        await p.step(PERMITS, permit("QF", a, district=PUKOU, hylb="HW"))
    out = await p.outlet("housing")
    assert of(out, a, "status", "reasons", "priority", "version") == [
        ("ineligible", ["NOT_SETTLED"], False, 1), ("eligible", [], False, 2), ("eligible", [], True, 3)]
    assert of(out, a, "caused_by")[:2] == [([app["applicationNo"]],), ([lh["ywlsh"]],)]


async def test_housing_application_of_an_earlier_year_is_not_followed(r, settings):
    a = make_id()
    p = Pipeline(r, settings)
    async with services(settings):
        await p.step(HOUSING_APPS, housing(a, applied="2025-10-01"))  # closed on 2025-12-31
        await p.step(PERMITS, permit("LH", a, district=PUKOU))
    assert of(await p.outlet("housing"), a, "status", "reasons", "version") == [("ineligible", ["NOT_SETTLED"], 1)]


# =============================================================================================
# Duplicates and the fields of a decision
# =============================================================================================
async def test_duplicate_records_emit_nothing(r, settings):
    a, child = make_id("19850101"), make_id("20190501")
    recs = {
        CONTRIBS: [contribution(a, m) for m in months("202501", 6)],
        PERMITS: [permit("QF", a, district=PUKOU)],
        EDU_APPS: [school(a, child, sqqx=PUKOU)],
        HOUSING_APPS: [housing(a)],
    }
    p = Pipeline(r, settings)
    async with services(settings):
        for feed in (CONTRIBS, PERMITS, EDU_APPS, HOUSING_APPS):
            await p.step(feed, *recs[feed])
        before = {o: await p.outlet(o) for o in ("psb", "edu", "health", "housing", "medins")}
        assert [len(before[o]) for o in ("psb", "edu", "health", "housing", "medins")] == [1, 1, 1, 1, 0]
        for feed in (PERMITS, CONTRIBS, EDU_APPS, HOUSING_APPS):  # every department retries everything
            await p.step(feed, *recs[feed])
    assert {o: await p.outlet(o) for o in before} == before


async def test_decision_fields_on_the_outlets(r, settings):
    guardian, child = id_with_x("19850612"), id_with_x("20190505")
    sent = dict(guardian=guardian[:17] + "x", child=child[:17] + "x")  # spelled with lower-case x
    p = Pipeline(r, settings)
    async with services(settings):
        await p.step(CONTRIBS, *[contribution(sent["guardian"], m) for m in months("202501", 6)])
        await p.step(PERMITS, permit("QF", sent["guardian"], district=PUKOU))
        await p.step(EDU_APPS, school(sent["guardian"], sent["child"], sqqx=PUKOU, sqbh="JY-FIELDS"))
        await p.step(PERMITS, permit("LH", sent["guardian"], district=PUKOU))
        await p.step(HOUSING_APPS, housing(sent["guardian"], occupation="sanitation", no="ZF-FIELDS"))
    outlets = {o: await p.outlet(o) for o in ("psb", "edu", "health", "housing", "medins")}
    every = [d for ds in outlets.values() for d in ds]
    assert len(every) == 6  # psb 2, edu 1, health 1 (settled where the permit is), housing 1, medins 1
    assert len({d["decision_id"] for d in every}) == len(every)
    entitlement_of = {"psb": "settlement.four_districts", "edu": "education.compulsory_enrollment",
                      "health": "health.family_doctor", "housing": "housing.security",
                      "medins": "medins.resident_enrollment"}
    for outlet, ds in outlets.items():
        for d in ds:
            assert d["entitlement"] == entitlement_of[outlet]
            assert d["as_of"] == "2026-11-28"
            assert dt.datetime.fromisoformat(d["decided_at"]).utcoffset() is not None
            assert d["priority"] is (outlet == "housing")
            assert (d["reasons"] == []) is (d["status"] == "eligible")
            if outlet in ("edu", "housing"):
                assert d["application_id"] in ("JY-FIELDS", "ZF-FIELDS")
            else:
                assert d["application_id"] is None and d["subject_id"] == guardian
    assert [(d["subject_id"], d["application_id"]) for d in outlets["edu"]] == [(child, "JY-FIELDS")]
    assert [(d["subject_id"], d["status"], d["priority"]) for d in outlets["housing"]] == [
        (guardian, "eligible", True)]
    assert [(d["status"], d["version"], d["reasons"]) for d in outlets["psb"]] == [
        ("eligible", 1, []), ("revoked", 2, ["ALREADY_SETTLED"])]
    assert [(d["status"], d["district"], d["version"]) for d in outlets["health"]] == [("eligible", PUKOU, 1)]
