"""The committed JSON Schema files are what the code says; events round-trip through msgpack."""

import datetime as dt
import pathlib

from schemas.events import ContributionRecorded, DateTick, PermitIssued, decode_event, encode_event
from schemas.export import OUT, render


def test_exported_json_schemas_are_current():
    rendered = render()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in pathlib.Path(OUT).glob("*.json")}
    assert set(on_disk) == set(rendered), "run: python -m schemas.export"
    for name, text in rendered.items():
        assert on_disk[name] == text, f"schemas/json/{name} is stale: run python -m schemas.export"


def test_events_round_trip_with_their_schema_version():
    at = dt.datetime(2025, 1, 1, 9, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    for ev in (
        PermitIssued(record_id="GA1", source_id="1-0", person_id="x", permit_no="J", district="320111",
                     valid_from=dt.date(2025, 1, 1), valid_until=dt.date(2026, 1, 1), at=at),
        ContributionRecorded(record_id="L", source_id="2-0", person_id="x", insurance_type="110", month=202501,
                             region="320102", paid=True),
        DateTick(record_id="tick", source_id="", person_id="", on=dt.date(2026, 1, 1), pseudonym=b"\x00\xff"),
    ):
        back = decode_event(encode_event(ev))
        assert back == ev and back.v == 1
        assert b"\xa1v\x01" in encode_event(ev)  # the version travels on the wire


def test_pictures_stored_before_the_running_count_still_decide_right():
    """A picture written before ``emp_months``, ``due``, ``archived``, ``sid`` and ``born`` existed
    (five fields shorter) decodes with 'not counted' / 'none' / 'nothing apart' / 'not read yet',
    and its recognised months are counted from the slots."""
    import msgspec

    from schemas.picture import Person
    from services.picture.contributions import Contributions
    from services.picture.picture import Picture

    c = Contributions()
    for fp, month in enumerate((202501, 202502, 202503), start=1):
        c.record(fp, month, "110", "320100", True)
    contrib, old = c.pack()
    now = Person(v=1, id="320111199001011234", contrib=contrib, old_fps=old, emp_months=3)
    older = msgspec.msgpack.encode(msgspec.msgpack.decode(msgspec.msgpack.encode(now))[:-5])
    person = msgspec.msgpack.decode(older, type=Person)
    assert (person.emp_months, person.due, person.archived, person.born) == (-1, 0, 0, 0)
    assert Picture(person).recognised_employee_months() == 3
