"""Fuzzing the feeds (hypothesis): every payload is either taken into effect or quarantined with a
reason; none is lost, the feed never stops, no worker dies. The payloads include the extreme values
of docs/contract.md's limits (tests/fuzz_payloads.py ``extreme_record``): dates, months and birth dates
at and past their bounds, huge and non-finite numbers, deep nesting, duplicate fields, payloads at
and past the size limit."""

import asyncio
import collections
import json
import math
import time

import pytest
import redis
from hypothesis import HealthCheck, given, settings

from schemas.events import decode_event, encode_event
from services.ingress import limits
from services.ingress.fields import REASONS, Reject
from services.ingress.service import understand
from tests import chaos
from tests.fuzz_payloads import MAX_BYTES, FEEDS, any_feed_extreme, extreme_payloads, payloads

FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.parametrize("feed", FEEDS)
def test_understand_never_raises(feed):
    """Pure: whatever the bytes, understand() returns an event that round-trips, or a Reject."""

    @FUZZ
    @given(data=extreme_payloads(feed))
    def check(data):
        _check(feed, data)

    check()


def _depth(raw: bytes) -> int:
    """Nesting depth, one character at a time (the plain model of ``limits.parse``'s regex)."""
    depth = deepest = 0
    in_string = escaped = False
    for c in raw:
        if in_string:
            if escaped:
                escaped = False
            elif c == 0x5C:
                escaped = True
            elif c == 0x22:
                in_string = False
        elif c == 0x22:
            in_string = True
        elif c in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in b"]}":
            depth -= 1
    return deepest


def _model(raw: bytes) -> str | None:
    """What the limits say of a payload, by the standard library's json (a second parser)."""
    if len(raw) > MAX_BYTES:
        return "TOO_LARGE"
    if _depth(raw) > limits.MAX_DEPTH:
        return "INVALID_JSON"
    seen = {"dup": False, "inf": False}

    def pairs(items):
        seen["dup"] |= len({k for k, _ in items}) != len(items)
        return dict(items)

    def number(text):
        value = float(text)
        seen["inf"] |= not math.isfinite(value)
        return value

    def constant(name):
        raise ValueError(name)  # NaN, Infinity: not JSON

    try:
        value = json.loads(raw.decode("utf-8"), object_pairs_hook=pairs, parse_float=number, parse_constant=constant)
    except (ValueError, RecursionError):
        return "INVALID_JSON"
    if seen["inf"]:
        return "BAD_NUMBER"
    if not isinstance(value, dict):
        return "NOT_AN_OBJECT"
    return "DUPLICATE_FIELD" if seen["dup"] else None


@pytest.mark.parametrize("feed", FEEDS)
def test_the_limits_agree_with_a_plain_model(feed):
    """Differential: size, depth, duplicate fields and non-finite numbers as ``limits`` finds them
    (regular expressions, byte counts, msgspec) and as the standard library's parser does."""

    @settings(FUZZ, max_examples=500)
    @given(data=extreme_payloads(feed))
    def check(data):
        got = limits.too_large(data, MAX_BYTES) or limits.parse(data)
        got = got.reason if isinstance(got, Reject) else None
        assert got == _model(data), data[:200]

    check()


def _check(feed, data):
    out = understand(feed, "1-0", {b"payload": data})
    if isinstance(out, Reject):
        assert out.reason in REASONS and out.detail
    else:
        assert decode_event(encode_event(out)) == out


BATCHES, BATCH = 300, 25  # 7,500 fuzzed records through the running services (generating them is most of the time)


def test_fuzzed_feeds_through_running_services(redis_url):
    r = redis.Redis.from_url(redis_url)
    asyncio.run(chaos.fresh(redis_url))
    procs = chaos.Procs(redis_url)
    procs.start()
    sent: list[tuple[str, bytes, bytes]] = []  # (feed, entry id, payload)

    @settings(max_examples=BATCHES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(batch=__import__("hypothesis").strategies.lists(any_feed_extreme, min_size=BATCH, max_size=BATCH))
    def publish_batch(batch):
        pipe = r.pipeline(transaction=False)
        for feed, payload in batch:
            pipe.xadd(f"ingress:{feed}", {"payload": payload})
        for (feed, payload), eid in zip(batch, pipe.execute()):
            sent.append((feed, eid, payload))
        assert procs.alive(), "a worker died"

    try:
        publish_batch()
        deadline = time.monotonic() + 120
        while True:  # every feed read and acknowledged
            groups = [r.xinfo_groups(f"ingress:{f}")[0] for f in FEEDS]
            if all(g["pending"] == 0 and g["lag"] == 0 for g in groups):
                break
            assert procs.alive(), "a worker died"
            assert time.monotonic() < deadline, f"feeds stopped: {groups}"
            time.sleep(0.1)
        assert procs.alive(), "a worker died"
    finally:
        codes = procs.stop()
    assert codes == [0], b"".join(procs.logs).decode()[-3000:]
    assert len(sent) >= BATCHES * BATCH
    quarantined = {}
    for feed in FEEDS:
        for _, f in r.xrange(f"quarantine:{feed}"):
            if f[b"reason"] != b"UNKNOWN_PERMIT":  # the decider's, for well-formed records
                key = (feed, f[b"source_id"])  # entry ids are unique per stream only
                assert key not in quarantined, "quarantined twice"
                quarantined[key] = (f[b"reason"].decode(), f[b"payload"])
    reasons = collections.Counter()
    for feed, eid, payload in sent:
        expected = understand(feed, eid.decode(), {b"payload": payload})
        if isinstance(expected, Reject):
            assert quarantined.pop((feed, eid)) == (expected.reason, payload)  # once, byte for byte
            reasons[expected.reason] += 1
        else:
            assert (feed, eid) not in quarantined
    assert not quarantined, "quarantined something that was never sent"
    for stream in [f"dlq:ingress:{f}" for f in FEEDS] + ["dlq:decider"]:
        assert r.xlen(stream) == 0
    print(f"fuzzed {len(sent):,} records: {sum(reasons.values()):,} quarantined ({dict(reasons)}), "
          f"{len(sent) - sum(reasons.values()):,} taken into effect")
    r.flushdb()
