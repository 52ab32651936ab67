"""Fuzzing the feeds (hypothesis): every payload is either taken into effect or quarantined with a
reason; none is lost, the feed never stops, no worker dies."""

import asyncio
import collections
import time

import pytest
import redis
from hypothesis import HealthCheck, given, settings

from schemas.events import decode_event, encode_event
from services.ingress.fields import REASONS, Reject
from services.ingress.service import understand
from tests import chaos
from tests.fuzz_payloads import FEEDS, any_feed_payload, payloads

FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.parametrize("feed", FEEDS)
def test_understand_never_raises(feed):
    """Pure: whatever the bytes, understand() returns an event that round-trips, or a Reject."""

    @FUZZ
    @given(data=payloads(feed))
    def check(data):
        _check(feed, data)

    check()


def _check(feed, data):
    out = understand(feed, "1-0", {b"payload": data})
    if isinstance(out, Reject):
        assert out.reason in REASONS and out.detail
    else:
        assert decode_event(encode_event(out)) == out


BATCHES, BATCH = 400, 25  # 10,000 fuzzed records through the running services


def test_fuzzed_feeds_through_running_services(redis_url):
    r = redis.Redis.from_url(redis_url)
    asyncio.run(chaos.fresh(redis_url))
    procs = chaos.Procs(redis_url)
    procs.start()
    sent: list[tuple[str, bytes, bytes]] = []  # (feed, entry id, payload)

    @settings(max_examples=BATCHES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(batch=__import__("hypothesis").strategies.lists(any_feed_payload, min_size=BATCH, max_size=BATCH))
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
    assert len(sent) >= 10_000
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
