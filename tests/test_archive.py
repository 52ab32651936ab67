"""A person's older months of contributions are stored apart (``arc:{pN}``) and rewritten only when
they change; what the decider reads back is the whole history, so rules, duplicates and
corrections of archived months work as before."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.decider.worker import _person_decoder
from services.picture.contributions import (
    ARCHIVE_KEEP_MONTHS,
    Contributions,
    first_slot_from,
    month_index,
    split_for_storage,
)
from services.picture.picture import Picture
from services.runtime import topology as t
from services.runtime.identity import partition_of
from tests.people import contribution, make_id, months, permit
from tests.test_decider_cache import append, decider, drain

SLOT = 13


def slots(month_list: list[str]) -> bytes:
    c = Contributions()
    for fp, m in enumerate(month_list, start=1):
        c.record(fp, int(m), "110", "320100", True)
    return c.pack()[0]


def slot_months(packed: bytes) -> list[int]:
    return [packed[o] | packed[o + 1] << 8 for o in range(0, len(packed), SLOT)]


@given(st.lists(st.integers(24000, 24400), max_size=40), st.integers(23990, 24410))
def test_first_slot_from_finds_the_month_in_sorted_slots(month_idxs, month):
    c = Contributions()
    for fp, m in enumerate(month_idxs, start=1):
        c.record(fp, (m // 12) * 100 + m % 12 + 1, "110", "320100", True)
    packed = c.pack()[0]
    expected = next((i * SLOT for i, m in enumerate(slot_months(packed)) if m >= month), len(packed))
    assert first_slot_from(packed, month) == expected


def test_the_boundary_moves_in_steps_of_the_kept_months():
    history = slots(months("202401", 24))  # 2024-01 .. 2025-12
    newest = month_index(202512)
    archived, split, write = split_for_storage(history, 0, False)
    assert (archived, write) == (newest - ARCHIVE_KEEP_MONTHS + 1, True)  # a picture from before: archived now
    assert slot_months(history[:split]) == list(range(month_index(202401), archived))
    assert slot_months(history[split:]) == list(range(archived, newest + 1))
    # the next months go with the picture, the part apart stays as it is ...
    for n in range(1, ARCHIVE_KEEP_MONTHS):
        longer = slots(months("202401", 24 + n))
        assert split_for_storage(longer, archived, False)[::2] == (archived, False)
    # ... until the picture holds twice the kept months
    longer = slots(months("202401", 24 + ARCHIVE_KEEP_MONTHS))
    moved, _, write = split_for_storage(longer, archived, False)
    assert (moved, write) == (archived + ARCHIVE_KEEP_MONTHS, True)
    # a record that changed a month stored apart has it written again, boundary unchanged
    assert split_for_storage(history, archived, True) == (archived, split, True)


def test_a_record_for_an_archived_month_marks_the_archive_changed():
    packed = slots(months("202401", 24))
    c = Contributions(packed, archived=month_index(202407))
    c.record(999, 202408, "110", "320100", False)  # a later record for a recent month
    assert not c.archive_dirty
    c.record(1000, 202403, "110", "320100", False)  # replaces the March 2024 slot, stored apart
    assert c.archive_dirty and c.recognised_months() == 22


def test_a_new_person_stores_nothing_apart():
    from schemas.picture import Person

    pic = Picture(Person(v=1, id="x"))
    pic.contributions.record(1, 202501, "110", "320100", True)
    pic.freeze()
    split, archive = pic.storage_split()
    assert (split, archive) == (0, None)


async def stored(r, d, person: str):
    """The picture in ``ppl`` as stored, the part in ``arc``, and the whole as the decider reads it."""
    p, key = partition_of(person, d.settings.partitions), d.pseudonym(person)
    blob, archive = await r.hget(t.people(p), key), await r.hget(t.archive(p), key)
    return _person_decoder.decode(blob), archive, (await d._read_stored(p, [key]))[key]


@pytest.fixture
def no_cache(settings):
    """Every batch reads the pictures from Redis: what is stored must be enough."""
    return settings.model_copy(update={"decider_entries": 1, "decider_cache": 0})


async def test_history_stored_apart_reads_back_whole(r, no_cache):
    person = make_id()
    d = decider(r, no_cache)
    await append(r, no_cache, "psb:permit", permit("QF", person, district="320111"))
    history = months("202401", 14)
    march = contribution(person, "202403")
    for m in history:  # one batch a month: the picture is written fourteen times
        await append(r, no_cache, "hrss:contribution", march if m == "202403" else contribution(person, m))
        await drain(d)
    own, archive, whole = await stored(r, d, person)
    boundary = 0  # where the steps of split_for_storage have taken it, a write a month
    for n in range(1, len(history) + 1):
        boundary = split_for_storage(slots(history[:n]), boundary, False)[0]
    assert own.archived == boundary and archive  # months are stored apart
    assert slot_months(archive) == [month_index(int(m)) for m in history if month_index(int(m)) < own.archived]
    assert slot_months(own.contrib) == [month_index(int(m)) for m in history if month_index(int(m)) >= own.archived]
    assert whole.contrib == archive + own.contrib
    assert Picture(whole).recognised_employee_months() == 14

    # a department's retry of an archived record is still a duplicate: nothing is written
    before = await r.hget(t.archive(partition_of(person, no_cache.partitions)), d.pseudonym(person))
    await append(r, no_cache, "hrss:contribution", march)
    await drain(d)
    assert (await stored(r, d, person))[1] == before

    # a correction of an archived month (same month, type, region; not paid) rewrites the archive
    await append(r, no_cache, "hrss:contribution", contribution(person, "202403", paid="0"))
    await drain(d)
    own2, archive2, whole2 = await stored(r, d, person)
    assert archive2 != archive and len(archive2) == len(archive) and own2.archived == own.archived
    assert Picture(whole2).recognised_employee_months() == 13 == own2.emp_months

    # a fresh decider (nothing in memory) decides from the stored parts
    fresh = decider(r, no_cache)
    _, _, again = await stored(r, fresh, person)
    assert again.contrib == whole2.contrib


async def test_a_picture_of_a_newer_release_stops_the_decider_before_it_writes(r, no_cache):
    import msgspec

    from services.decider.worker import NewerPicture

    person = make_id()
    d = decider(r, no_cache)
    await append(r, no_cache, "psb:permit", permit("QF", person, district="320111"))
    await drain(d)
    p, key = partition_of(person, no_cache.partitions), d.pseudonym(person)
    newer = msgspec.structs.replace(_person_decoder.decode(await r.hget(t.people(p), key)), v=99)
    await r.hset(t.people(p), key, msgspec.msgpack.encode(newer))
    position = await r.hget(t.decider_meta(p), "pos")
    await append(r, no_cache, "hrss:contribution", contribution(person, "202501"))
    with pytest.raises(NewerPicture, match=key.hex()) as caught:
        await d.step()
    assert person not in str(caught.value)  # named by pseudonym
    assert await r.hget(t.decider_meta(p), "pos") == position  # nothing committed
    assert _person_decoder.decode(await r.hget(t.people(p), key)).v == 99
