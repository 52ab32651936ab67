"""Quarantine and duplicates, end to end on a real Redis (docs/contract.md, "What bad input gets";
"Departments retry: the same record ... must take effect once"; docs/policy.md, "What the system knows of a person": UNKNOWN_PERMIT).

* Every bad ingress entry lands once on ``quarantine:<feed>`` with ``payload`` (the original bytes),
  ``source_id`` (the ingress entry id), ``reason`` and ``detail``, and is acknowledged; the feed
  goes on: good records published after bad ones take effect.
* A department's retry (new ingress entry, same record id) and a redelivery (the same ingress
  entries applied twice by the normalizer) have one effect: no new decision, no version or
  figure moved, no second quarantine copy.

Records of different feeds are not ordered against each other: where order across feeds matters
the tests publish and drain in steps.
"""

from __future__ import annotations

import json

import pytest

from services.figures.read import read_counters
from services.ingress.fields import REASONS
from services.ingress.service import Normalizer
from services.outlets.relay import Relay, _entry_args
from services.runtime import topology as t
from services.runtime.redis import fn
from tests.conftest import read_outlet, wait_until
from tests.harness import drain, services
from tests.people import contribution, housing, make_id, months, permit, school

GROUP = "permitbus-normalize"
QUARANTINE = t.FEEDS["psb:permit"].quarantine
FEEDS = ("psb:permit", "hrss:contribution", "edu:application", "housing:application")
OUTLETS = ("outlet:psb", "outlet:edu", "outlet:health", "outlet:housing", "outlet:medins")
NO_PAYLOAD = object()  # marker: an ingress entry without a ``payload`` field


def styled(rec, style: int = 0) -> bytes:
    """The bytes of a record as some department system might spell them (all valid UTF-8 JSON)."""
    if isinstance(rec, bytes):
        return rec
    if style % 4 == 0:
        return json.dumps(rec, ensure_ascii=False).encode()
    if style % 4 == 1:
        return (" \t" + json.dumps(rec, ensure_ascii=False, indent=2).replace("\n", "\r\n") + "\r\n\n").encode()
    if style % 4 == 2:
        return json.dumps(rec, ensure_ascii=True, separators=(",", ":")).encode()
    return ("\n" + json.dumps(rec, ensure_ascii=False, separators=(" ,  ", " :\t")) + "   ").encode()


async def add(r, feed: str, payload) -> bytes:
    """XADD one ingress entry (``payload`` bytes, a dict, or NO_PAYLOAD); returns its id."""
    if payload is NO_PAYLOAD:
        return await r.xadd(f"ingress:{feed}", {"data": b'{"ywlsh": "not where it belongs"}'})
    return await r.xadd(f"ingress:{feed}", {"payload": styled(payload)})


async def quarantined(r, feed: str) -> list[dict[bytes, bytes]]:
    return [fields for _, fields in await r.xrange(f"quarantine:{feed}")]


async def outlets(r) -> dict[str, list[dict]]:
    return {name: await read_outlet(r, name) for name in OUTLETS}


async def assert_acknowledged(r, *feeds: str) -> None:
    for feed in feeds:
        stream = f"ingress:{feed}"
        assert (await r.xpending(stream, GROUP))["pending"] == 0, f"{stream}: entries left unacknowledged"
        (group,) = [g for g in await r.xinfo_groups(stream) if g["name"] in (GROUP, GROUP.encode())]
        assert group["pending"] == 0 and group["lag"] == 0, f"{stream}: {group}"
        assert group["last-delivered-id"] == (await r.xinfo_stream(stream))["last-generated-id"]


async def assert_no_dead_letters(r) -> None:
    for feed in FEEDS:
        assert await r.xlen(f"dlq:ingress:{feed}") == 0, f"dlq:ingress:{feed}: {await r.xrange(f'dlq:ingress:{feed}')}"
    assert await r.xlen("dlq:decider") == 0


def assert_quarantine_entry(fields: dict[bytes, bytes], source_id: bytes, reason: str, payload: bytes) -> None:
    assert set(fields) == {b"payload", b"source_id", b"reason", b"detail"}, fields
    assert fields[b"source_id"] == source_id
    assert fields[b"reason"] == reason.encode(), fields
    assert fields[b"payload"] == payload  # byte for byte
    assert fields[b"detail"].decode().strip(), "detail must be a sentence for a person"


def view(decisions: list[dict]) -> list[tuple]:
    return [(d["subject_id"], d["application_id"], d["status"], d["district"], d["version"], d["reasons"])
            for d in decisions]


def of(decisions: list[dict], subject: str) -> list[dict]:
    return [d for d in decisions if d["subject_id"] == subject]


# ---------------------------------------------------------------------------------------------
# Bad records of every feed, every reason: quarantined once, acknowledged, feed goes on
# ---------------------------------------------------------------------------------------------

def bad_records(feed: str, person: str, other: str) -> list[tuple[str, object]]:
    """(reason, payload) for every reason that applies to the feed; payloads are bytes or dicts."""
    wrong_check = person[:17] + ("0" if person[17] != "0" else "1")
    short_id = person[:17]
    common = [
        ("INVALID_JSON", b"this is not JSON at all"),
        ("INVALID_JSON", b""),
        ("INVALID_JSON", b"\xef\xbb\xbf{\"truncated\": "),
        ("NOT_AN_OBJECT", b" [1, 2, 3] \r\n"),
        ("NOT_AN_OBJECT", '"张三"'.encode()),
        ("NOT_AN_OBJECT", b"42"),
        ("NO_PAYLOAD", NO_PAYLOAD),
        # issue 10's findings: each went to a dead-letter stream or further (tests/test_input_limits.py)
        ("INVALID_JSON", b"[" * 30_000 + b"]" * 30_000),  # deep within 64 KiB (100,000 deep is TOO_LARGE)
        ("TOO_LARGE", b'{"x": "' + b"x" * 10_000_000 + b'"}'),
        ("DUPLICATE_FIELD", b'{"a": 1, "b": {"c": 2, "c": 3}}'),
    ]
    born_2099 = make_id("20990101")
    if feed == "psb:permit":
        rec = permit("QF", person, district="320102")
        rec_no_sfzh = dict(rec)
        del rec_no_sfzh["sfzh"]
        return common + [
            ("MISSING_FIELD", rec_no_sfzh),
            ("MISSING_FIELD", {**permit("BG", person), "jzdqh": None}),
            ("MISSING_FIELD", {**permit("ZX", person), "jzzbh": ""}),
            ("WRONG_TYPE", {**rec, "ywlsh": 123456}),
            ("BAD_ID", {**rec, "sfzh": short_id}),
            ("BAD_ID_CHECKSUM", {**rec, "sfzh": wrong_check}),
            ("UNKNOWN_CODE", {**rec, "ywlx": "XX"}),
            ("BAD_DATE", {**rec, "qfrq": "2025-02-30"}),
            ("BAD_DATE", {**rec, "czsj": "2025-01-01"}),
            ("DATE_ORDER", {**rec, "qfrq": "20260101", "yxqz": "2025-12-31"}),
            ("BAD_DATE", {**permit("QZ", person), "yxqz": "9999-12-31"}),
            ("BAD_ID", {**rec, "sfzh": born_2099}),
            ("UNKNOWN_DISTRICT", {**rec, "jzdqh": "320100"}),
        ]
    if feed == "hrss:contribution":
        rec = contribution(person, "202501")
        return common + [
            ("MISSING_FIELD", {**rec, "AAE078": None}),
            ("WRONG_TYPE", {**rec, "AAE002": 202501}),
            ("BAD_ID", {**rec, "AAC002": short_id}),
            ("BAD_ID_CHECKSUM", {**rec, "AAC002": wrong_check}),
            ("UNKNOWN_CODE", {**rec, "AAE140": "999"}),
            ("UNKNOWN_CODE", {**rec, "AAE078": "2"}),
            ("BAD_DATE", {**rec, "AAE002": "202513"}),
            ("BAD_DATE", {**rec, "AAE002": "999912"}),
            ("BAD_ID", {**rec, "AAC002": born_2099}),
            ("DUPLICATE_FIELD", json.dumps(rec).encode()[:-1] + b', "AAE002": "209912"}'),
            ("BAD_REGION", {**rec, "AAB301": "32010"}),
        ]
    if feed == "edu:application":
        rec = school(person, other)
        return common + [
            ("MISSING_FIELD", {**rec, "sqqx": ""}),
            ("WRONG_TYPE", {**rec, "sqbh": 17}),
            ("BAD_ID", {**rec, "xssfzh": short_id}),
            ("BAD_ID_CHECKSUM", {**rec, "jhrsfzh": wrong_check}),
            ("SAME_PERSON", {**rec, "xssfzh": other, "jhrsfzh": other}),
            ("UNKNOWN_CODE", {**rec, "xd": "GZ"}),
            ("BAD_DATE", {**rec, "sqrq": "2026-03-01"}),
            ("BAD_ID", {**rec, "xssfzh": born_2099}),
            ("UNKNOWN_DISTRICT", {**rec, "sqqx": "320199"}),
        ]
    rec = housing(person)
    return common + [
        ("MISSING_FIELD", {k: v for k, v in rec.items() if k != "ownsHome"}),
        ("WRONG_TYPE", {**rec, "householdSize": 2.5}),
        ("BAD_ID", {**rec, "applicantId": short_id}),
        ("BAD_ID_CHECKSUM", {**rec, "applicantId": wrong_check}),
        ("BAD_DATE", {**rec, "appliedOn": "2026/03/01"}),
        ("UNKNOWN_DISTRICT", {**rec, "districtCode": "999999"}),
        ("BAD_NUMBER", {**rec, "householdSize": 0}),
        ("BAD_NUMBER", {**rec, "monthlyIncome": "abc"}),
        ("BAD_NUMBER", {**rec, "monthlyIncome": -1}),
        ("BAD_NUMBER", {**rec, "monthlyIncome": "NaN"}),
        ("BAD_NUMBER", {**rec, "monthlyIncome": 10**13}),
        ("BAD_NUMBER", json.dumps(rec).encode()[:-1] + b', "extra": 1e400}'),
        ("BAD_ID", {**rec, "applicantId": born_2099}),
    ]


def test_the_tables_cover_every_normalizer_reason():
    p, c = make_id("19850101"), make_id("20180101")
    covered = {reason for feed in FEEDS for reason, _ in bad_records(feed, p, c)}
    assert covered == set(REASONS) - {"UNKNOWN_PERMIT"}


@pytest.mark.parametrize("feed", FEEDS)
async def test_every_bad_record_is_quarantined_once_and_the_feed_goes_on(r, settings, feed):
    person, child = make_id("19850101"), make_id("20180101")
    async with services(settings):
        # what the good records after the bad ones need, published first (feeds are not ordered)
        if feed == "hrss:contribution":
            await add(r, "psb:permit", permit("QF", person, district="320111"))
        elif feed == "edu:application":
            await add(r, "psb:permit", permit("QF", person, district="320113"))
        elif feed == "housing:application":
            await add(r, "psb:permit", permit("LH", person, district="320105", czsj="2025-06-30 10:00:00"))
        await drain(r, settings)
        before = await outlets(r)

        expected = []
        for i, (reason, rec) in enumerate(bad_records(feed, person, child)):
            payload = b"" if rec is NO_PAYLOAD else styled(rec, i)
            sid = await add(r, feed, NO_PAYLOAD if rec is NO_PAYLOAD else payload)
            expected.append((sid, reason, payload))
        if feed == "psb:permit":
            good = [permit("QF", person, district="320102", ywlsh="GA-GOOD-1")]
        elif feed == "hrss:contribution":
            good = [contribution(person, m, lsh=f"RS-GOOD-{m}") for m in months("202501", 6)]
        elif feed == "edu:application":
            good = [school(person, child, sqqx="320113", sqbh="JY-GOOD-1")]
        else:
            good = [housing(person, district="320105", no="ZF-GOOD-1")]
        for i, rec in enumerate(good):
            await add(r, feed, styled(rec, i + 1))
        last_bad = b'{"ywlsh": "GA-LATE"'  # and one more bad record after the good ones
        expected.append((await add(r, feed, last_bad), "INVALID_JSON", last_bad))
        await drain(r, settings)

    got = await quarantined(r, feed)
    assert [(q[b"source_id"], q[b"reason"].decode(), q[b"payload"]) for q in got] == expected
    for q, (sid, reason, payload) in zip(got, expected):
        assert_quarantine_entry(q, sid, reason, payload)
    for other in FEEDS:
        if other != feed:
            assert await r.xlen(f"quarantine:{other}") == 0
    await assert_acknowledged(r, *FEEDS)
    await assert_no_dead_letters(r)

    after = await outlets(r)
    new = {name: after[name][len(before[name]):] for name in OUTLETS}
    if feed == "psb:permit":
        assert view(new["outlet:health"]) == [(person, None, "eligible", "320102", 1, [])]
        assert new["outlet:health"][0]["caused_by"] == ["GA-GOOD-1"]
    elif feed == "hrss:contribution":
        assert view(new["outlet:psb"]) == [(person, None, "eligible", "320111", 1, [])]
        assert new["outlet:psb"][0]["caused_by"] == ["RS-GOOD-202506"]
    elif feed == "edu:application":
        assert view(new["outlet:edu"]) == [(child, "JY-GOOD-1", "eligible", "320113", 1, [])]
    else:
        assert view(new["outlet:housing"]) == [(person, "ZF-GOOD-1", "eligible", "320105", 1, [])]
    assert sum(len(v) for v in new.values()) == 1, new


NOT_UTF8 = b"\xff\xfe{\"ywlsh\": \"GA-GBK\"}\r\n"  # not UTF-8 at all (a UTF-16 BOM): INVALID_JSON


def _broken_utf8(person: str) -> dict[str, bytes]:
    """Good-looking records of every feed with an invalid UTF-8 sequence inside a JSON string."""
    broken = {
        "psb:permit": styled(permit("QF", person, xm="@@")).replace(b"@@", "张三".encode("gbk")),
        "hrss:contribution": styled(contribution(person, "202501")).replace("张三".encode(), "张三".encode("gbk")),
        "edu:application": styled(school(person, make_id("20180101"))).replace("小明".encode(), b"\xc0\xaf"),
        "housing:application": styled(housing(person, occupation="@@")).replace(b"@@", b"\xed\xa0\x80"),
    }
    for raw in broken.values():
        with pytest.raises(UnicodeDecodeError):
            raw.decode("utf-8")
    return broken


async def leave_pending(r, feed: str) -> None:
    """A worker that died after reading the feed's new entries: delivered, never acknowledged."""
    await r.xreadgroup(GROUP, "died", {f"ingress:{feed}": ">"}, count=1000)


async def test_a_payload_that_is_not_utf8_is_quarantined_and_its_batch_goes_on(r, settings):
    first, second = make_id(), make_id()
    # published before start-up: one batch, a bad entry between two good ones
    await add(r, "psb:permit", permit("QF", first, district="320102"))
    sid = await add(r, "psb:permit", NOT_UTF8)
    await add(r, "psb:permit", permit("QF", second, district="320104"))
    async with services(settings):
        await drain(r, settings, timeout=2)
    (q,) = await quarantined(r, "psb:permit")
    assert_quarantine_entry(q, sid, "INVALID_JSON", NOT_UTF8)
    assert sorted(view(await read_outlet(r, "outlet:health"))) == sorted([
        (first, None, "eligible", "320102", 1, []), (second, None, "eligible", "320104", 1, [])])
    await assert_acknowledged(r, *FEEDS)


async def test_entries_left_pending_by_a_dead_worker_are_quarantined_byte_for_byte(r, settings):
    """The take-over path (XAUTOCLAIM -> handle) quarantines payloads that are not UTF-8 exactly."""
    person = make_id()
    expected = {}
    for feed in FEEDS:
        expected[feed] = [(await add(r, feed, NOT_UTF8), "INVALID_JSON", NOT_UTF8),
                          (await add(r, feed, b"  [\t]  "), "NOT_AN_OBJECT", b"  [\t]  ")]
        await leave_pending(r, feed)
    await add(r, "psb:permit", permit("QF", person, district="320102"))
    await leave_pending(r, "psb:permit")
    async with services(settings):
        await drain(r, settings)
    for feed in FEEDS:
        got = await quarantined(r, feed)
        assert [(q[b"source_id"], q[b"reason"].decode(), q[b"payload"]) for q in got] == expected[feed]
        for q in got:
            assert q[b"detail"].strip()
    assert view(await read_outlet(r, "outlet:health")) == [(person, None, "eligible", "320102", 1, [])]
    await assert_acknowledged(r, *FEEDS)
    await assert_no_dead_letters(r)


async def test_invalid_utf8_inside_a_string_is_quarantined_byte_for_byte(r, settings):
    """Through the take-over path: FastStream's parser fails earlier on such bytes (see above)."""
    person = make_id()
    broken = _broken_utf8(person)
    sids = {}
    for feed, raw in broken.items():  # taken over from a dead worker: not through FastStream's parser
        sids[feed] = await add(r, feed, raw)
        await leave_pending(r, feed)
    async with services(settings):
        await add(r, "psb:permit", permit("QF", person, district="320102"))
        await drain(r, settings)
    assert view(await read_outlet(r, "outlet:health")) == [(person, None, "eligible", "320102", 1, [])]
    await assert_acknowledged(r, *FEEDS)
    await assert_no_dead_letters(r)
    for feed, raw in broken.items():
        (q,) = await quarantined(r, feed)
        assert_quarantine_entry(q, sids[feed], "INVALID_JSON", raw)


async def test_household_size_too_large_to_carry_is_quarantined(r, settings):
    raw = styled(housing(make_id(), size=10**30))
    async with services(settings):
        sid = await add(r, "housing:application", raw)
        await drain(r, settings)
    await assert_no_dead_letters(r)
    (q,) = await quarantined(r, "housing:application")
    assert_quarantine_entry(q, sid, "BAD_NUMBER", raw)


# ---------------------------------------------------------------------------------------------
# UNKNOWN_PERMIT (found by the decider)
# ---------------------------------------------------------------------------------------------

async def test_unknown_permit_numbers_are_quarantined_with_the_original_payload(r, settings):
    holder, nobody, cancelled = make_id(), make_id(), make_id()
    records = [
        permit("QF", holder, jzzbh="NJ-A", district="320102", ywlsh="GA-A-QF"),
        ("UNKNOWN_PERMIT", permit("QZ", holder, jzzbh="NJ-OTHER", district="320104", qfrq="2026-01-01",
                                  yxqz="2030-12-31", ywlsh="GA-A-QZ")),
        ("UNKNOWN_PERMIT", permit("BG", holder, jzzbh="NJ-OTHER", district="320118", ywlsh="GA-A-BG")),
        ("UNKNOWN_PERMIT", permit("ZX", holder, jzzbh="NJ-OTHER", ywlsh="GA-A-ZX")),
        ("UNKNOWN_PERMIT", permit("ZX", nobody, jzzbh="NJ-B", ywlsh="GA-B-ZX")),
        ("UNKNOWN_PERMIT", permit("QZ", nobody, jzzbh="NJ-B", ywlsh="GA-B-QZ")),
        ("UNKNOWN_PERMIT", permit("BG", nobody, jzzbh="NJ-B", district="320104", ywlsh="GA-B-BG")),
        permit("QF", cancelled, jzzbh="NJ-C", district="320104", ywlsh="GA-C-QF"),
        permit("ZX", cancelled, jzzbh="NJ-C", ywlsh="GA-C-ZX"),
        ("UNKNOWN_PERMIT", permit("QZ", cancelled, jzzbh="NJ-C", qfrq="2026-01-01", yxqz="2030-12-31",
                                  ywlsh="GA-C-QZ")),
        ("UNKNOWN_PERMIT", permit("BG", cancelled, jzzbh="NJ-C", district="320118", ywlsh="GA-C-BG")),
        ("UNKNOWN_PERMIT", permit("ZX", cancelled, jzzbh="NJ-C", ywlsh="GA-C-ZX2")),
    ]
    expected = {}
    async with services(settings):
        for i, item in enumerate(records):
            rec = item[1] if isinstance(item, tuple) else item
            raw = styled(rec, i)
            sid = await add(r, "psb:permit", raw)
            if isinstance(item, tuple):
                expected[sid] = raw
        await drain(r, settings)
        health_before = await read_outlet(r, "outlet:health")

    got = await quarantined(r, "psb:permit")
    assert len(got) == len(expected) == 9
    assert {q[b"source_id"] for q in got} == set(expected)
    for q in got:
        assert_quarantine_entry(q, q[b"source_id"], "UNKNOWN_PERMIT", expected[q[b"source_id"]])
    await assert_acknowledged(r, *FEEDS)
    await assert_no_dead_letters(r)
    # none of them had an effect: the holder stays in 320102 until 2027-12-31, nobody has nothing
    health = health_before
    assert view(of(health, holder)) == [(holder, None, "eligible", "320102", 1, [])]
    assert view(of(health, cancelled)) == [(cancelled, None, "eligible", "320104", 1, []),
                                           (cancelled, None, "revoked", "320104", 2, ["NO_VALID_PERMIT"])]
    assert of(health, nobody) == []
    counters = await read_counters(r, settings.partitions)
    assert {k: v for k, v in counters.items() if k.startswith("permit_holders")} == {"permit_holders|320102": 1}


# ---------------------------------------------------------------------------------------------
# Redelivery: the same ingress entries applied twice by the normalizer
# ---------------------------------------------------------------------------------------------

async def deliver_twice(r, settings, feed: str) -> list[bytes]:
    """Read the feed's new entries in the group and apply them twice (a crash before the
    acknowledgement, then redelivery), then acknowledge. Returns the entry ids."""
    n = Normalizer(r, settings, feed, "redelivered")
    resp = await r.xreadgroup(GROUP, "redelivered", {f"ingress:{feed}": ">"}, count=1000)
    entries = resp[0][1] if resp else []
    await n.apply(entries)
    await n.apply(entries)
    if entries:
        await r.xack(f"ingress:{feed}", GROUP, *[eid for eid, _ in entries])
    return [eid for eid, _ in entries]


async def test_redelivered_bad_entries_are_quarantined_once(r, settings):
    p, c = make_id("19850101"), make_id("20180101")
    expected: dict[str, list[tuple]] = {}
    for feed in FEEDS:
        cases = bad_records(feed, p, c) + [("INVALID_JSON", NOT_UTF8)]
        payloads = [b"" if rec is NO_PAYLOAD else styled(rec, i) for i, (_, rec) in enumerate(cases)]
        sids = [await add(r, feed, NO_PAYLOAD if rec is NO_PAYLOAD else raw)
                for (_, rec), raw in zip(cases, payloads)]
        assert await deliver_twice(r, settings, feed) == sids
        expected[feed] = [(sid, reason, raw) for sid, (reason, _), raw in zip(sids, cases, payloads)]
    for feed in FEEDS:
        got = await quarantined(r, feed)
        assert [(q[b"source_id"], q[b"reason"].decode(), q[b"payload"]) for q in got] == expected[feed]
    await assert_acknowledged(r, *FEEDS)


async def test_redelivered_unknown_permit_is_quarantined_once(r, settings):
    person = make_id()
    await add(r, "psb:permit", permit("QF", person, jzzbh="NJ-1", district="320102"))
    raws = [styled(permit("BG", person, jzzbh="NJ-9", district="320104"), 1),
            styled(permit("ZX", make_id(), jzzbh="NJ-2"), 2)]
    sids = [await add(r, "psb:permit", raw) for raw in raws]
    await deliver_twice(r, settings, "psb:permit")
    async with services(settings, services=("decider", "relay")):
        await drain(r, settings)
    got = await quarantined(r, "psb:permit")
    assert sorted((q[b"source_id"], q[b"payload"]) for q in got) == sorted(zip(sids, raws))
    assert await r.hlen(t.held(QUARANTINE)) == 0


# ---------------------------------------------------------------------------------------------
# Held payloads: events carry none (issue 10: a few large QZ/BG/ZX records made an envelope larger
# than Redis accepts; issue 11: partition streams held names)
# ---------------------------------------------------------------------------------------------

async def test_held_payloads_wait_outside_the_events_and_leave_once_settled(r, settings):
    holder, nobody = make_id(), make_id()
    good_qz = permit("QZ", holder, jzzbh="NJ-A", qfrq="2026-01-01", yxqz="2030-12-31", ywlsh="GA-QZ")
    records = [permit("QF", holder, jzzbh="NJ-A", district="320102", ywlsh="GA-QF"),
               good_qz, good_qz,  # a department's retry: a duplicate
               permit("BG", holder, jzzbh="NJ-OTHER", district="320104", ywlsh="GA-BG"),
               permit("ZX", nobody, jzzbh="NJ-B", ywlsh="GA-ZX")]
    raws = [styled(rec, i) + b" " * 60_000 for i, rec in enumerate(records)]  # large: 60 KB each
    sids = [await add(r, "psb:permit", raw) for raw in raws]

    async def normalized():
        group = (await r.xinfo_groups("ingress:psb:permit"))[0]
        return group["lag"] == 0 and group["pending"] == 0

    async with services(settings, services=("normalize",)):
        await wait_until(normalized)
    keys_ = settings.data_keyring()  # the payloads wait sealed: names and IDs rest in clear only in the quarantine
    held_now = await r.hgetall(t.held(QUARANTINE))
    assert {k: keys_.open_record(v) for k, v in held_now.items()} == dict(zip(sids[1:], raws[1:]))
    assert not any(raw in v for v in held_now.values() for raw in raws[1:])
    stored = [f[b"b"] for p in range(settings.partitions) for _, f in await r.xrange(t.evt(p))]
    assert sum(len(s) for s in stored) < 5_000  # five events, no payloads
    assert not any("张三".encode() in s or b"\\u5f20" in s for s in stored)  # nor names

    async with services(settings, services=("decider", "relay")):
        await drain(r, settings)
    assert await r.hlen(t.held(QUARANTINE)) == 0
    got = await quarantined(r, "psb:permit")
    assert sorted((q[b"source_id"], q[b"reason"], q[b"payload"]) for q in got) == \
        [(sids[3], b"UNKNOWN_PERMIT", raws[3]), (sids[4], b"UNKNOWN_PERMIT", raws[4])]  # two partitions: any order
    await assert_no_dead_letters(r)


async def test_an_older_releases_event_with_its_payload_is_quarantined_with_it(r, settings):
    """Rolling upgrade: a normalizer of the release before held payloads put the payload in the
    event (``raw``); this decider and relay still quarantine those bytes."""
    import datetime as dt

    from schemas.events import PermitCancelled, encode_envelope, encode_event
    from services.runtime.identity import partition_of

    person = make_id()
    raw = styled(permit("ZX", person, jzzbh="NJ-9"), 1)
    ev = PermitCancelled(record_id="GA-OLD", source_id="7-0", person_id=person, permit_no="NJ-9",
                         at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=8))), raw=raw)
    await r.xadd(t.evt(partition_of(person, settings.partitions)), {"b": encode_envelope([encode_event(ev)])})
    async with services(settings, services=("decider", "relay")):
        await drain(r, settings)
    (q,) = await quarantined(r, "psb:permit")
    assert_quarantine_entry(q, b"7-0", "UNKNOWN_PERMIT", raw)
    await assert_no_dead_letters(r)


async def test_the_quarantine_relay_step_is_guarded_by_its_position(r, settings):
    """pb_relay on the permit quarantine twice from the same position (a relay killed before it saw the reply,
    or a second relay): the second call changes nothing. The held payloads rest sealed; the relay
    opens the one it quarantines. An entry of an older release that carries its payload is copied
    as it is."""
    held = t.held(QUARANTINE)
    keys_ = settings.data_keyring()
    await r.hset(held, mapping={"1-0": keys_.seal_record(b"first payload"), "2-0": keys_.seal_record(b"second")})
    assert b"first payload" not in b"".join((await r.hgetall(held)).values())  # no record in clear at rest
    entries = [(b"5-0", {b"action": b"quarantine", b"source_id": b"1-0", b"reason": b"UNKNOWN_PERMIT",
                         b"detail": b"no such permit"}),
               (b"5-1", {b"action": b"release", b"source_id": b"2-0"}),
               (b"5-2", {b"payload": b"older release", b"source_id": b"3-0", b"reason": b"UNKNOWN_PERMIT",
                         b"detail": b"d"})]
    entries = await Relay(r, settings)._with_held_payloads(QUARANTINE, entries)
    keys = [QUARANTINE, t.relay_pos(QUARANTINE), t.quarantine_marks(QUARANTINE), held,
            t.relay_dlq(QUARANTINE), t.relay_attempts(QUARANTINE), t.counters(QUARANTINE),
            t.trace_target(QUARANTINE, "20261201")]
    call = [len(keys), *keys, 0, b"0-0", b"5-2", "-", len(entries), 1_000, "-"]  # "-": no audit log here
    lines = ""
    for _, fields in entries:
        *args, line = _entry_args(QUARANTINE, fields, None)  # the last item: the entry's trace line
        call += args + ["", "", ""]
        lines += line + "\n"
    call += [86_400_000, lines]
    assert await r.fcall(fn("pb_relay"), *call) == [1, b"5-2"]
    assert await r.fcall(fn("pb_relay"), *call) == [0, b"5-2"]
    got = await quarantined(r, "psb:permit")
    assert [(q[b"source_id"], q[b"payload"]) for q in got] == [(b"1-0", b"first payload"), (b"3-0", b"older release")]
    assert await r.hlen(held) == 0
    # a normalizer redelivering the record after it was quarantined holds nothing again
    assert await r.fcall(fn("pb_hold"), 2, held, t.quarantine_marks(QUARANTINE), "1-0", b"first payload") == 0
    assert await r.hlen(held) == 0


async def test_redelivered_good_entries_take_effect_once(r, settings):
    worker, guardian, child, settled = make_id("19900101"), make_id("19850101"), make_id("20180101"), make_id()
    await add(r, "psb:permit", permit("QF", worker, district="320111", ywlsh="GA-W"))
    await add(r, "psb:permit", permit("QF", guardian, district="320113", ywlsh="GA-G"))
    await add(r, "psb:permit", permit("LH", settled, district="320105", czsj="2025-06-30 10:00:00", ywlsh="GA-S"))
    await deliver_twice(r, settings, "psb:permit")
    for m in months("202501", 6):
        await add(r, "hrss:contribution", contribution(worker, m, lsh=f"RS-{m}"))
    await deliver_twice(r, settings, "hrss:contribution")
    await add(r, "edu:application", school(guardian, child, sqqx="320113", sqbh="JY-1"))
    await deliver_twice(r, settings, "edu:application")
    await add(r, "housing:application", housing(settled, district="320105", no="ZF-1"))
    await deliver_twice(r, settings, "housing:application")
    for p in range(settings.partitions):  # every event really is there twice
        assert await r.xlen(f"evt:{{p{p}}}") % 2 == 0
    async with services(settings, services=("decider", "relay")):
        await drain(r, settings)

    out = await outlets(r)
    assert view(out["outlet:psb"]) == [(worker, None, "eligible", "320111", 1, [])]
    assert out["outlet:psb"][0]["caused_by"] == ["RS-202506"]
    assert sorted(view(out["outlet:health"])) == sorted([
        (worker, None, "eligible", "320111", 1, []), (guardian, None, "eligible", "320113", 1, []),
        (settled, None, "eligible", "320105", 1, [])])
    assert view(out["outlet:medins"]) == [(settled, None, "eligible", "320105", 1, [])]
    assert view(out["outlet:edu"]) == [(child, "JY-1", "eligible", "320113", 1, [])]
    assert view(out["outlet:housing"]) == [(settled, "ZF-1", "eligible", "320105", 1, [])]
    assert dict(await read_counters(r, settings.partitions)) == {
        "permit_holders|320111": 1,
        "permit_holders|320113": 1,
        "settlements|320105|2025": 1,
        "eligible|320111|settlement.four_districts": 1,
        "eligible|320111|health.family_doctor": 1,
        "eligible|320113|health.family_doctor": 1,
        "eligible|320105|health.family_doctor": 1,
        "eligible|320105|medins.resident_enrollment": 1,
        "eligible|320111|civil.temporary_assistance": 1,
        "eligible|320113|civil.temporary_assistance": 1,
        "eligible|320105|civil.temporary_assistance": 1,
        "applications|320113|education.compulsory_enrollment|2026|eligible": 1,
        "applications|320105|housing.security|2026|eligible": 1,
    }
    for feed in FEEDS:
        assert await r.xlen(f"quarantine:{feed}") == 0
    await assert_acknowledged(r, *FEEDS)


# ---------------------------------------------------------------------------------------------
# Department retries: a new ingress entry with the same record id takes effect once
# ---------------------------------------------------------------------------------------------

async def retry(r, settings, feed: str, *recs) -> tuple[dict, dict]:
    """Publish retries (as new ingress entries, respelled), drain; return outlets and figures."""
    for i, rec in enumerate(recs):
        await add(r, feed, styled(rec, i + 2))
    await drain(r, settings)
    return await outlets(r), dict(await read_counters(r, settings.partitions))


async def snapshot(r, settings) -> tuple[dict, dict]:
    return await outlets(r), dict(await read_counters(r, settings.partitions))


async def test_permit_retries_take_effect_once(r, settings):
    gone, mover, settler = make_id(), make_id(), make_id()
    qf = permit("QF", gone, jzzbh="NJ-G", district="320111", ywlsh="GA-G-QF")
    zx = permit("ZX", gone, jzzbh="NJ-G", ywlsh="GA-G-ZX", czsj="2026-05-01 09:00:00")
    qf_m = permit("QF", mover, jzzbh="NJ-M", district="320102", ywlsh="GA-M-QF")
    bg_m = permit("BG", mover, jzzbh="NJ-M", district="320104", ywlsh="GA-M-BG", czsj="2026-02-01 09:00:00")
    qz_m = permit("QZ", mover, jzzbh="NJ-M", qfrq="2026-01-01", yxqz="2029-12-31", district=None,
                  ywlsh="GA-M-QZ", czsj="2026-03-01 09:00:00")
    lh = permit("LH", settler, district="320105", czsj="2025-06-30 10:00:00", ywlsh="GA-S-LH")
    async with services(settings):
        await add(r, "psb:permit", qf)
        await add(r, "psb:permit", qf_m)
        await add(r, "psb:permit", lh)
        for m in months("202501", 6):
            await add(r, "hrss:contribution", contribution(gone, m))
        await drain(r, settings)
        await add(r, "psb:permit", zx)
        await add(r, "psb:permit", bg_m)
        await add(r, "psb:permit", qz_m)
        await drain(r, settings)
        out, figs = await snapshot(r, settings)
        assert view(of(out["outlet:psb"], gone)) == [
            (gone, None, "eligible", "320111", 1, []),
            (gone, None, "revoked", "320111", 2, ["NO_VALID_PERMIT"])]
        assert view(of(out["outlet:health"], mover)) == [
            (mover, None, "eligible", "320102", 1, []), (mover, None, "eligible", "320104", 2, [])]
        assert view(of(out["outlet:medins"], settler)) == [(settler, None, "eligible", "320105", 1, [])]
        assert figs["settlements|320105|2025"] == 1 and "permit_holders|320111" not in figs
        # the departments retry everything, in order and out of order: QF after ZX must not revive
        # the permit, QF after BG must not move it back, a retried ZX/BG/QZ is no UNKNOWN_PERMIT
        out2, figs2 = await retry(r, settings, "psb:permit", qf, zx, qf_m, bg_m, qz_m, lh, qf, qf_m)
    assert out2 == out
    assert figs2 == figs
    assert await r.xlen("quarantine:psb:permit") == 0
    await assert_acknowledged(r, *FEEDS)


async def test_a_retried_old_contribution_does_not_undo_a_correction(r, settings):
    reversed_, paid_late = make_id(), make_id()
    six = months("202501", 6)
    async with services(settings):
        await add(r, "psb:permit", permit("QF", reversed_, district="320116"))
        await add(r, "psb:permit", permit("QF", paid_late, district="320117"))
        await drain(r, settings)
        originals = {m: contribution(reversed_, m, lsh=f"RS-R-{m}") for m in six}
        unpaid = contribution(paid_late, six[5], paid="0", lsh="RS-L-UNPAID")
        for rec in originals.values():
            await add(r, "hrss:contribution", rec)
        for m in six[:5]:
            await add(r, "hrss:contribution", contribution(paid_late, m, lsh=f"RS-L-{m}"))
        await add(r, "hrss:contribution", unpaid)
        await drain(r, settings)
        # corrections: the payment of June is reversed for one, paid late for the other
        await add(r, "hrss:contribution", contribution(reversed_, six[5], paid="0", lsh="RS-R-REVERSAL"))
        await add(r, "hrss:contribution", contribution(paid_late, six[5], paid="1", lsh="RS-L-PAID"))
        await drain(r, settings)
        out, figs = await snapshot(r, settings)
        assert view(of(out["outlet:psb"], reversed_)) == [
            (reversed_, None, "eligible", "320116", 1, []),
            (reversed_, None, "revoked", "320116", 2, ["INSUFFICIENT_CONTRIBUTIONS"])]
        assert of(out["outlet:psb"], reversed_)[1]["caused_by"] == ["RS-R-REVERSAL"]
        assert view(of(out["outlet:psb"], paid_late)) == [(paid_late, None, "eligible", "320117", 1, [])]
        assert of(out["outlet:psb"], paid_late)[0]["caused_by"] == ["RS-L-PAID"]
        # the old records arrive again after the corrections: they must not undo them
        out2, figs2 = await retry(r, settings, "hrss:contribution", originals[six[5]], unpaid,
                                  *originals.values(), originals[six[5]])
    assert out2 == out
    assert figs2 == figs
    assert await r.xlen("quarantine:hrss:contribution") == 0
    await assert_acknowledged(r, *FEEDS)


async def test_a_retried_application_is_decided_once(r, settings):
    guardian, child, applicant = make_id("19850101"), make_id("20180101"), make_id()
    app = school(guardian, child, sqqx="320113", sqbh="JY-RETRY")
    home = housing(applicant, district="320105", no="ZF-RETRY")
    async with services(settings):
        await add(r, "psb:permit", permit("QF", guardian, jzzbh="NJ-G", district="320113"))
        await add(r, "psb:permit", permit("LH", applicant, district="320105", czsj="2025-06-30 10:00:00"))
        await drain(r, settings)
        await add(r, "edu:application", app)
        await add(r, "housing:application", home)
        await drain(r, settings)
        out, figs = await snapshot(r, settings)
        assert view(out["outlet:edu"]) == [(child, "JY-RETRY", "eligible", "320113", 1, [])]
        assert view(out["outlet:housing"]) == [(applicant, "ZF-RETRY", "eligible", "320105", 1, [])]
        out2, figs2 = await retry(r, settings, "edu:application", app, app)
        out3, figs3 = await retry(r, settings, "housing:application", home, home)
        assert (out2, figs2) == (out, figs) and (out3, figs3) == (out, figs)
        # the guardian moves: the open application is decided again (v2); then another retry
        await add(r, "psb:permit", permit("BG", guardian, jzzbh="NJ-G", district="320104"))
        await drain(r, settings)
        out4, figs4 = await snapshot(r, settings)
        assert view(out4["outlet:edu"]) == [(child, "JY-RETRY", "eligible", "320113", 1, []),
                                            (child, "JY-RETRY", "revoked", "320113", 2, ["DISTRICT_MISMATCH"])]
        out5, figs5 = await retry(r, settings, "edu:application", app)
    assert (out5, figs5) == (out4, figs4)
    assert figs4["applications|320113|education.compulsory_enrollment|2026|revoked"] == 1
    assert "applications|320113|education.compulsory_enrollment|2026|eligible" not in figs4
    for feed in FEEDS:
        assert await r.xlen(f"quarantine:{feed}") == 0
    await assert_acknowledged(r, *FEEDS)


# ---------------------------------------------------------------------------------------------
# Roster entitlements are silent while never eligible
# ---------------------------------------------------------------------------------------------

async def test_roster_entitlements_are_silent_for_the_never_eligible(r, settings):
    holder, contributor, insured = make_id(), make_id(), make_id()
    async with services(settings):
        for m in months("202501", 8):
            await add(r, "hrss:contribution", contribution(contributor, m))  # no permit at all
        for m in ("202609", "202610", "202611"):  # employee medical in D's window: no resident cover
            await add(r, "hrss:contribution", contribution(insured, m, aae140="310"))
        await drain(r, settings)  # the contributions first: the settled person is never eligible for medins
        await add(r, "psb:permit", permit("QF", holder, district="320102"))  # not one of the four districts
        await add(r, "psb:permit", permit("LH", insured, district="320106", czsj="2026-01-05 10:00:00"))
        await drain(r, settings)
    out = await outlets(r)
    assert sorted(view(out["outlet:health"])) == sorted([(holder, None, "eligible", "320102", 1, []),
                                                         (insured, None, "eligible", "320106", 1, [])])
    assert out["outlet:psb"] == []
    assert out["outlet:medins"] == []
    assert out["outlet:edu"] == [] and out["outlet:housing"] == []


# ---------------------------------------------------------------------------------------------
# Different records are not duplicates
# ---------------------------------------------------------------------------------------------

async def test_different_record_ids_with_colliding_crc32_both_take_effect(r, settings):
    holder, payer = make_id(), make_id()
    async with services(settings):
        await add(r, "psb:permit", permit("QF", payer, district="320111", ywlsh="GA-PAYER"))
        await add(r, "psb:permit", permit("QF", holder, district="320102", ywlsh="plumless"))
        await add(r, "psb:permit", permit("ZX", holder, ywlsh="buckeroo"))
        await drain(r, settings)
        for m in months("202501", 5):
            await add(r, "hrss:contribution", contribution(payer, m))
        await add(r, "hrss:contribution", contribution(payer, "202506", paid="0", lsh="plumless"))
        await drain(r, settings)
        await add(r, "hrss:contribution", contribution(payer, "202506", paid="1", lsh="buckeroo"))
        await drain(r, settings)
    assert view(of(await read_outlet(r, "outlet:health"), holder)) == [
        (holder, None, "eligible", "320102", 1, []), (holder, None, "revoked", "320102", 2, ["NO_VALID_PERMIT"])]
    assert view(await read_outlet(r, "outlet:psb")) == [(payer, None, "eligible", "320111", 1, [])]
