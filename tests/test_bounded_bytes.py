"""Bounded by bytes, not only by count (issue 10, point 4): envelopes on the partition streams,
the normalizer's pipelines and acknowledgements, and what a normalizer reads at a time.

Today's finding: a batch is up to ``batch_size`` entries whatever their size (2,500 x 64 KiB =
160 MB, plus the read-ahead); a few large events made an envelope larger than Redis accepts."""

from __future__ import annotations

import json

import msgspec

from schemas.events import decode_event, encode_event, envelopes, open_envelope
from schemas.events import ContributionRecorded
from services.ingress.budget import ReadBudget, batch_bytes
from services.ingress.service import PIPELINE_BYTES, Normalizer
from services.runtime import topology as t
from tests.conftest import publish, wait_until
from tests.harness import services
from tests.people import contribution, make_id, months

FEED = "hrss:contribution"
KIB = 1024


def test_envelopes_split_by_count_and_by_bytes_in_order():
    events = [msgspec.msgpack.encode(bytes([i]) * size)  # msgpack items of size + 2 or + 3 bytes
              for i, size in enumerate([10] * 7 + [600] + [10] * 3 + [2000, 5])]
    out = list(envelopes(events, max_events=4, max_bytes=1000))
    items = [bytes(x) for env in out for x in open_envelope(env)]
    assert items == events  # all of them, in order
    sizes = [[len(x) for x in open_envelope(env)] for env in out]
    assert sizes == [[12, 12, 12, 12], [12, 12, 12, 603], [12, 12, 12], [2003], [7]]
    assert list(envelopes([])) == []


def test_envelopes_of_small_events_split_by_count_only():
    """The usual case takes a shortcut (the sizes summed once): the same envelopes as the walk."""
    events = [bytes([0xA0 + i % 16]) + b"x" * (i % 16) for i in range(1203)]
    out = list(envelopes(events, max_events=500, max_bytes=1 << 20))
    assert [len(open_envelope(e)) for e in out] == [500, 500, 203]
    assert [bytes(x) for e in out for x in open_envelope(e)] == events
    just_over = list(envelopes(events[:30], max_events=500, max_bytes=5 + sum(map(len, events[:30])) - 1))
    assert [len(open_envelope(e)) for e in just_over] == [29, 1]  # one byte over: the walk splits


def test_envelopes_of_real_events_stay_under_the_limit():
    ev = [encode_event(ContributionRecorded(record_id=f"R{i}", source_id=f"{i}-0", person_id=make_id(),
                                            insurance_type="110", month=202501, region="320102", paid=True))
          for i in range(5000)]
    out = list(envelopes(ev, max_bytes=20_000))
    assert all(len(e) <= 20_000 for e in out) and len(out) > 10
    assert [decode_event(x) for e in out for x in open_envelope(e)] == [decode_event(x) for x in ev]


def test_batch_bytes_counts_every_field_name_and_value():
    entries = [(b"1-0", {b"payload": b"x" * 150}), (b"1-1", {}), (b"1-2", {b"a": b"", b"payload": b"yy"})]
    assert batch_bytes(entries) == 7 + 150 + 1 + 7 + 2
    assert batch_bytes([]) == 0


def test_read_budget_starts_at_one_entry_and_follows_the_sizes_seen():
    b = ReadBudget(max_count=2500, budget_bytes=4 << 20)
    assert b.count() == 1  # the first read of a burst: one entry, whatever its size
    b.saw(1, 10_000_000)
    assert b.count() == 1
    b.saw(1, 150)  # small records: grows, doubling at most
    assert b.count() == 2
    for _ in range(12):
        b.saw(b.count(), b.count() * 150)
    assert b.count() == 2500  # ordinary records get the full batch size
    b.saw(2500, 2500 * 64 * KIB)  # large ones: down at once
    assert b.count() * 64 * KIB <= 4 << 20
    b.saw(10, 10 * 10_000_000)  # larger than the budget: one at a time
    assert b.count() == 1
    b.idle()
    assert b.count() == 1


def padded(rec: dict, size: int) -> bytes:
    head = json.dumps({**rec, "pad": ""}).encode()
    return head[:-2] + b"x" * (size - len(head)) + b'"}'


async def test_a_burst_of_large_records_is_read_in_batches_bounded_by_bytes(r, settings, monkeypatch):
    """500 records of 60 KiB (29 MB) with batch_size 500: every batch read holds at most the byte
    budget (1 MiB here); before, the first read took all 500. All of them take effect, in order."""
    settings = settings.model_copy(update={"normalizer_read_bytes": 1 << 20, "batch_size": 500})
    person = make_id("19800101")
    ids = await publish(r, FEED, *[padded(contribution(person, m, lsh=f"RS{i}"), 60 * KIB)
                                   for i, m in enumerate((months("200001", 250)) * 2)])
    batches: list[tuple[int, int]] = []
    submit = Normalizer.submit

    async def recorded(self, entries):
        batches.append((len(entries), sum(len(f[b"payload"]) for _, f in entries)))
        await submit(self, entries)

    monkeypatch.setattr(Normalizer, "submit", recorded)
    async def normalized():
        group = (await r.xinfo_groups(t.FEEDS[FEED].ingress))[0]
        return group["lag"] == 0 and group["pending"] == 0

    async with services(settings, services=("normalize",)):
        await wait_until(normalized, timeout=60)
    assert sum(n for n, _ in batches) == len(ids)
    assert max(size for _, size in batches) <= (1 << 20) + 60 * KIB, batches
    seen = [decode_event(x).source_id for p in range(settings.partitions)
            for _, f in await r.xrange(t.evt(p)) for x in open_envelope(f[b"b"])]
    assert seen == [i.decode() for i in ids]


async def test_a_batch_of_large_bad_records_is_written_in_pipelines_bounded_by_bytes(r, settings):
    """20 records of 1 MB each, quarantined: five or more pipelines of at most PIPELINE_BYTES
    (plus one record), written in order; the quarantine copies are the original bytes."""
    n = Normalizer(r, settings, FEED, "test")
    payloads = [b'{"x": "' + bytes([65 + i]) * 1_000_000 + b'"}' for i in range(20)]
    ids = await publish(r, FEED, *payloads)
    entries = (await r.xreadgroup(t.NORMALIZER_GROUP, "test", {t.FEEDS[FEED].ingress: ">"}, count=100))[0][1]
    pipes, n_events, rejected = n.prepare(entries)
    assert n_events == 0 and rejected == [eid for eid, _ in entries]
    chunks = pipes.done()
    assert len(chunks) >= 20_000_000 // PIPELINE_BYTES
    for pipe in chunks:
        assert sum(len(a) for args, _ in pipe.command_stack for a in args if isinstance(a, bytes)) \
            <= PIPELINE_BYTES + 1_000_100
    await n.apply(entries, (pipes, n_events, rejected))
    await n.ack(entries)
    got = await r.xrange(t.FEEDS[FEED].quarantine)
    assert [(f[b"source_id"], f[b"reason"], f[b"payload"]) for _, f in got] == \
        [(i, b"TOO_LARGE", p) for i, p in zip(ids, payloads)]
    assert (await r.xpending(t.FEEDS[FEED].ingress, t.NORMALIZER_GROUP))["pending"] == 0
