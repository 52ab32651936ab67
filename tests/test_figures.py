"""The city's figures (docs/policy.md, "Figures for the city": （十五）（十六）（十七）), kept current as events flow."""

import json

from services.figures.read import by_district, read_counters, render_table
from tests.conftest import publish
from tests.harness import drain, services
from tests.people import contribution, housing, make_id, months, permit, school
from tests.test_demo import run_cli


async def test_figures_follow_the_events(r, settings, redis_url):
    a, b, old, settler = make_id(), make_id(), make_id(), make_id()
    guardian, child = make_id("19850101"), make_id("20180101")
    await publish(r, "psb:permit",
                  permit("QF", a, district="320111"), permit("QF", b, district="320111"),
                  permit("QF", old, district="320111", qfrq="2020-01-01", yxqz="2021-01-01"),
                  permit("QF", guardian, district="320102"),
                  permit("LH", settler, district="320104", czsj="2026-03-05 10:00:00"))
    await publish(r, "hrss:contribution", *[contribution(a, m) for m in months("202501", 6)])
    async with services(settings):
        await drain(r, settings)
        await publish(r, "edu:application", school(guardian, child, sqqx="320102", sqrq="2026/03/01"),
                      school(guardian, make_id("20180202"), sqqx="320111", sqrq="2025/03/01"))
        await publish(r, "housing:application", housing(settler, income=100000, district="320104",
                                                        applied="2026-04-01"))
        await drain(r, settings)
        table = by_district(await read_counters(r, settings.partitions))
        assert table["320111"]["permit_holders"] == 2  # the expired permit does not count
        assert table["320111"]["eligible"] == {"settlement.four_districts": 1, "health.family_doctor": 2,
                                               "civil.temporary_assistance": 2}
        assert table["320104"]["settlements"] == {"2026": 1}
        assert table["320104"]["eligible"] == {"health.family_doctor": 1, "medins.resident_enrollment": 1,
                                               "civil.temporary_assistance": 1}
        assert table["320102"]["applications"] == {"education.compulsory_enrollment": {"2026": {"eligible": 1}}}
        assert table["320111"]["applications"] == {"education.compulsory_enrollment": {"2025": {"ineligible": 1}}}
        assert table["320104"]["applications"] == {"housing.security": {"2026": {"ineligible": 1}}}
        # a cancellation moves every figure it touches; the guardian's withdraws the place offered
        await publish(r, "psb:permit", permit("ZX", a), permit("ZX", guardian))
        await drain(r, settings)
    out = json.loads(run_cli(redis_url, "figures", "--json", PERMITBUS_PARTITIONS=str(settings.partitions)))
    assert out["320111"]["permit_holders"] == 1
    assert out["320111"]["eligible"] == {"health.family_doctor": 1, "civil.temporary_assistance": 1}
    assert out["320102"]["permit_holders"] == 0
    assert out["320102"]["applications"] == {"education.compulsory_enrollment": {"2026": {"revoked": 1}}}
    assert out["320111"]["name"] == "浦口"
    text = run_cli(redis_url, "figures", PERMITBUS_PARTITIONS=str(settings.partitions))
    assert text.splitlines()[0].split()[:3] == ["district", "permits", "settled"]
    assert "320104    秦淮" in text
    row = next(line.split() for line in text.splitlines() if line.startswith("320102"))
    assert row[-3] == "0/1"  # school 2026: not eligible now (revoked) counts with the refused
    assert render_table(by_district(await read_counters(r, settings.partitions))) == text.rstrip("\n")
