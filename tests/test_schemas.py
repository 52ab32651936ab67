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
