"""Read the figures: the decider keeps counters per partition in ``fig:{pN}``; this sums them.

Counter names (``|``-separated):
``permit_holders|<district>`` · ``settlements|<district>|<year>`` ·
``eligible|<district>|<entitlement>`` · ``applications|<district>|<entitlement>|<year>|<status>``
(``status``: ``eligible``, ``ineligible``, or ``revoked``: an application eligible once, no longer).
"""

from __future__ import annotations

from collections import Counter

from schemas.districts import DISTRICTS
from services.runtime import topology as t


async def read_counters(r, partitions: int) -> Counter[str]:
    pipe = r.pipeline(transaction=False)
    for p in range(partitions):
        pipe.hgetall(t.figures(p))
    total: Counter[str] = Counter()
    for h in await pipe.execute():
        for k, v in h.items():
            total[k.decode()] += int(v)
    return +total  # drop zeros


def by_district(counters: Counter[str]) -> dict[str, dict]:
    """{district: {"name", "permit_holders", "settlements": {year: n}, "eligible": {ent: n},
    "applications": {ent: {year: {status: n}}}}}"""
    out: dict[str, dict] = {
        code: {"name": name, "permit_holders": 0, "settlements": {}, "eligible": {}, "applications": {}}
        for code, name in DISTRICTS.items()
    }
    for key, n in counters.items():
        kind, district, *rest = key.split("|")
        row = out.setdefault(district, {"name": "?", "permit_holders": 0, "settlements": {}, "eligible": {},
                                        "applications": {}})
        if kind == "permit_holders":
            row["permit_holders"] += n
        elif kind == "settlements":
            row["settlements"][rest[0]] = row["settlements"].get(rest[0], 0) + n
        elif kind == "eligible":
            row["eligible"][rest[0]] = row["eligible"].get(rest[0], 0) + n
        elif kind == "applications":
            ent, year, status = rest
            bucket = row["applications"].setdefault(ent, {}).setdefault(year, {})
            bucket[status] = bucket.get(status, 0) + n
    return out


SHORT = {
    "settlement.four_districts": "settle",
    "health.family_doctor": "doctor",
    "medins.resident_enrollment": "medins",
    "employment.unemployment_registration": "unemp",
    "civil.temporary_assistance": "assist",
    "education.compulsory_enrollment": "school",
    "housing.security": "housing",
}
ROSTERS = tuple(o.entitlement for o in t.OUTLETS.values() if not o.application_based)
APPLICATIONS = tuple(o.entitlement for o in t.OUTLETS.values() if o.application_based)


def render_table(table: dict[str, dict]) -> str:
    """The figures as a table. An application's ``no`` counts those decided ineligible and those
    revoked (eligible once, no longer): the applications not eligible now."""
    years = sorted({y for row in table.values() for y in row["settlements"]}
                   | {y for row in table.values() for a in row["applications"].values() for y in a})
    head = ["district", "", "permits", *[f"settled {y}" for y in years], *[SHORT[e] for e in ROSTERS],
            *[f"{SHORT[e]} {y} ok/no" for e in APPLICATIONS for y in years]]
    rows = [head]
    for code, row in table.items():
        cells = [code, row["name"], str(row["permit_holders"])]
        cells += [str(row["settlements"].get(y, 0)) for y in years]
        cells += [str(row["eligible"].get(e, 0)) for e in ROSTERS]
        for e in APPLICATIONS:
            for y in years:
                b = row["applications"].get(e, {}).get(y, {})
                cells.append(f"{b.get('eligible', 0)}/{b.get('ineligible', 0) + b.get('revoked', 0)}")
        rows.append(cells)
    total = ["total", ""] + [str(sum(int(r[i]) for r in rows[1:])) for i in range(2, 3 + len(years) + len(ROSTERS))]
    rows.append(total + [""] * (len(head) - len(total)))
    widths = [max(_w(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c + " " * (w - _w(c)) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def _w(s: str) -> int:
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in s)
