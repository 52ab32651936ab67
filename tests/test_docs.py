"""docs/contract.md and docs/policy.md cannot drift from the code silently.

Direction: code -> docs. Every stream, outlet, entitlement, reason code, field, code list entry,
ACL user, metric and parameter file the code has must be named in the document written for the
people who depend on it. The documents may describe more than the code has yet (the contract as
specified); that is not checked here. The examples are checked both ways: each ingress example is
run through the normalizer's own ``understand`` and must give the outcome the document states,
and each decision example must decode as a ``Decision``.
"""

from __future__ import annotations

import datetime as dt
import pathlib
import re

import pytest

from schemas import codes
from schemas.decision import Decision, decision_decoder
from schemas.districts import DISTRICTS
from services.ingress import records
from services.ingress.fields import REASONS, Reject
from services.ingress.service import understand
from services.ops import metrics, status
from services.ops.asyncapi import STATUSES
from services.rules import ALL_RULES, params
from services.rules.verdict import REASON_ORDER
from services.runtime import access
from services.runtime import topology as t

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"
CONTRACT = (DOCS / "contract.md").read_text(encoding="utf-8")
POLICY = (DOCS / "policy.md").read_text(encoding="utf-8")
# Quarantine reasons that no payload alone can show: no `payload` field, over 64 KiB, and the
# decider's UNKNOWN_PERMIT (it needs the person's permit). The contract describes them in words.
NOT_A_PAYLOAD = {"NO_PAYLOAD", "TOO_LARGE", "UNKNOWN_PERMIT"}
EXAMPLE = re.compile(r"<!-- example (\S+)(?: (\S+))? -->\n```\w*\n(.*?)\n```", re.S)


def section(doc: str, heading: str) -> str:
    """The text under the first heading that starts with ``heading`` (e.g. ``"## Outlets"``), up
    to the next heading of the same or a higher level."""
    level = len(heading) - len(heading.lstrip("#"))
    m = re.search(rf"^{re.escape(heading)}.*$", doc, re.M)
    assert m, f"no heading {heading!r}"
    end = re.compile(rf"^#{{1,{level}}} ", re.M).search(doc, m.end())
    return doc[m.start():end.start() if end else len(doc)]


def missing(doc: str, names, fmt: str = "`{}`") -> list[str]:
    return sorted(n for n in names if fmt.format(n) not in doc)


def examples() -> list[tuple[str, str | None, str]]:
    return EXAMPLE.findall(CONTRACT)


# -- docs/contract.md ------------------------------------------------------------------------

def test_contract_names_every_stream_and_outlet():
    streams = {f.ingress for f in t.FEEDS.values()} | {f.quarantine for f in t.FEEDS.values()}
    streams |= {o.stream for o in t.OUTLETS.values()} | set(t.DEPARTMENT_OUTLETS.values())
    streams |= {t.DECIDER_DLQ}
    assert not missing(CONTRACT, streams)
    outlets = section(CONTRACT, "## Outlets")
    for o in t.OUTLETS.values():  # each outlet with its entitlement, on one row of the table
        assert re.search(rf"^\| `{re.escape(o.stream)}` \|.*`{re.escape(o.entitlement)}`", outlets, re.M), o


def test_contract_names_every_field_and_code_of_every_feed():
    for feed in t.FEEDS.values():
        part = section(CONTRACT, f"### `{feed.ingress}`")
        fields = records.record_schema(feed.name)["properties"]
        assert not missing(part, fields, "| `{}` |"), feed.name
    assert not missing(section(CONTRACT, "### `ingress:psb:permit`"), codes.OPERATIONS)
    assert not missing(section(CONTRACT, "### `ingress:hrss:contribution`"), codes.INSURANCE_TYPES)
    assert not missing(section(CONTRACT, "### `ingress:edu:application`"), codes.STAGES)
    assert not missing(section(CONTRACT, "## Ingress"), DISTRICTS)
    assert not missing(CONTRACT, DISTRICTS.values(), "{}")  # the districts' names too


def test_contract_names_every_quarantine_reason():
    bad_input = section(CONTRACT, "## What bad input gets")
    assert not missing(bad_input, REASONS, "| `{}` |")


def test_contract_names_every_decision_field_status_and_rule_reason():
    outlets = section(CONTRACT, "## Outlets")
    assert not missing(outlets, Decision.__struct_fields__, "| `{}` |")
    assert not missing(outlets, STATUSES)
    assert not missing(CONTRACT + POLICY, REASON_ORDER)


def test_contract_names_every_acl_user():
    users = set(access.users()) | {d.user for d in access.departments()}
    assert not missing(section(CONTRACT, "## Access"), users)


def _exposed_metric_names() -> set[str]:
    """The names ``GET /metrics`` exposes: the families of one reading, counters with ``_total``."""
    reading = {
        "stages": [], "records": {}, "decisions": {}, "quarantine": {}, "dead_letters": {}, "deliveries": {},
        "lease_changes": {},
        "latency": {"buckets": {le: 0 for le in status.LATENCY_MS}, "inf": 0, "sum_s": 0.0},
        "redis": {"used_memory_bytes": 0, "maxmemory_bytes": 0, "aof_last_rewrite_ok": 1, "aof_rewrites": 0},
    }
    return {f.name + ("_total" if f.type == "counter" else "") for f in metrics.families(reading)}


def test_contract_names_every_metric_stage_and_verdict():
    names = _exposed_metric_names()
    assert len(names) >= 8  # the contract's eight at least
    operations = section(CONTRACT, "## Operations")
    assert not missing(operations, names)
    assert not missing(operations, status.VERDICTS)
    for stage in ("normalize:<feed>", "decide", "relay:<outlet>", "schedule"):
        assert f"`{stage}`" in operations, stage


def test_every_ingress_example_gives_the_outcome_it_states():
    seen: dict[str, set[str]] = {}
    for kind, expect, body in examples():
        if kind == "decision":
            continue
        assert kind in t.FEEDS, f"example for an unknown feed {kind!r}"
        got = understand(kind, "1700000000000-0", {b"payload": body.encode()})
        outcome = got.reason if isinstance(got, Reject) else "ok"
        assert outcome == expect, (kind, expect, outcome, getattr(got, "detail", ""), body)
        seen.setdefault(kind, set()).add(outcome)
        if kind == "psb:permit" and outcome == "ok":
            seen[kind].add("op:" + got.__class__.__name__)
    assert all("ok" in seen.get(f, ()) for f in t.FEEDS), "a feed without a valid example"
    assert len({s for s in seen["psb:permit"] if s.startswith("op:")}) == len(codes.OPERATIONS), \
        "every permit operation has an example"
    shown = set().union(*seen.values())
    assert not missing(" ".join(f"`{s}`" for s in shown), set(REASONS) - NOT_A_PAYLOAD), "a reason without example"


def test_every_decision_example_decodes_as_a_decision():
    decisions = [decision_decoder.decode(body.encode()) for kind, _, body in examples() if kind == "decision"]
    assert decisions
    for d in decisions:
        assert d.status in STATUSES
        assert d.district is None or d.district in DISTRICTS
        assert (d.status == "eligible") == (not d.reasons), d
        assert d.decided_at.utcoffset() == dt.timedelta(hours=8)
    assert {d.status for d in decisions} == set(STATUSES), "an example of each status"


def test_the_example_checks_can_fail():
    """A wrong stated outcome is caught: the checks above are not vacuous."""
    kind, _, body = next(e for e in examples() if e[0] == "psb:permit" and e[1] == "ok")
    broken = body.replace('"sfzh": "340102198503151234"', '"sfzh": "340102198503151235"')
    assert broken != body
    got = understand(kind, "1700000000000-0", {b"payload": broken.encode()})
    assert isinstance(got, Reject) and got.reason == "BAD_ID_CHECKSUM"
    assert missing("`A`", {"A", "B"}) == ["B"]


# -- docs/policy.md --------------------------------------------------------------------------

@pytest.mark.parametrize("entitlement", sorted(ALL_RULES))
def test_policy_states_every_rule_with_its_clauses_and_outlet(entitlement):
    part = section(POLICY, f"### `{entitlement}`")
    heading = part.splitlines()[0]
    for clause in ALL_RULES[entitlement].BASIS:
        assert clause in heading, (entitlement, clause)
    assert f"`{t.OUTLETS[entitlement].stream}`" in heading
    assert part.count("\n> ") >= 1, "the seed clause quoted"


def test_policy_names_every_entitlement_and_outlet():
    assert not missing(POLICY, set(ALL_RULES) | set(t.OUTLETS))
    assert not missing(CONTRACT, set(ALL_RULES) | set(t.OUTLETS))


def test_policy_lists_the_reason_codes_in_the_code_order():
    table = section(POLICY, "## Reason codes")
    listed = re.findall(r"^\| \d+ \| `([A-Z_]+)` \|", table, re.M)
    assert not missing(table, REASON_ORDER)
    in_code_order = [r for r in listed if r in REASON_ORDER]
    assert in_code_order == list(REASON_ORDER)


def test_policy_states_every_parameter_file_with_its_values():
    files = sorted(params.DEFAULT_DIR.glob("*.toml"))
    assert files
    table = section(POLICY, "## Parameters")
    for path in files:
        row = re.search(rf"^\| `{re.escape(path.stem)}` \|.*$", table, re.M)
        assert row, f"docs/policy.md, 'Parameters', has no row for {path.name}"
        p = params.load(path.stem, params.DEFAULT_DIR)
        for day, value in zip(p.dates, p.values):
            shown = (f"{value:g}" if isinstance(value, float) else " ".join(f"`{v}`" for v in sorted(value))
                     if isinstance(value, frozenset) else str(value))
            assert f"{shown} from {day.isoformat()}" in row.group(0), (path.name, day, value, row.group(0))
