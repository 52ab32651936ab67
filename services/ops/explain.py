"""``permitbus explain <id> <entitlement> [--as-of D] [--application A] [--json]``: why the rule decides
what it decides about one person, for an operator answering a department or a resident.

The same explanations as the API's (``services/outlets/explain.py``), printed as a trace, one line
a condition and its facts below it; the ID number masked (``320111********123X``; an explanation
holds no other ID, nor a permit number). ``--as-of`` judges the stored picture on another date (what a tick on that date
would decide). Exit 0 when explained, 1 when there is nothing to explain, 2 for a malformed ID or
an unknown entitlement.
"""

from __future__ import annotations

import datetime as dt
import json
import sys

from schemas.ids import id_problem
from services.outlets.explain import NotExplained, explanations
from services.picture.stored import NewerPicture
from services.rules import ALL_RULES, params
from services.runtime.clock import Clock
from schemas.ids import mask
from services.runtime.identity import Pseudonymizer
from services.runtime.redis import client


async def main(settings, subject_id: str, entitlement: str, as_of: dt.date | None = None,
               application_id: str | None = None, as_json: bool = False, out=None) -> int:
    out = out or sys.stdout
    if len(subject_id) != 18 or id_problem(subject_id) is not None:
        print("permitbus explain: not an ID number (17 digits and a check character)", file=sys.stderr)
        return 2
    if entitlement not in ALL_RULES:
        print(f"permitbus explain: unknown entitlement {entitlement!r} (one of {', '.join(ALL_RULES)})",
              file=sys.stderr)
        return 2
    subject_id = subject_id.upper()
    params.start(settings.params_dir)  # the rules decide here too: a bad parameter file, one line
    day = as_of or Clock(settings.today).today()
    r = client(settings)
    try:
        found = await explanations(r, settings.partitions, Pseudonymizer(settings.pseudonym_secret()),
                                   subject_id, entitlement, day, application_id)
    except NotExplained as exc:
        print(f"{entitlement} for {mask(subject_id)}: {exc}", file=out)
        return 1
    except NewerPicture:
        print("permitbus explain: the picture was written by a newer release of permitbus", file=sys.stderr)
        return 2
    except params.ParameterError as exc:  # --as-of before a parameter's first value
        print(f"permitbus explain: {exc}", file=sys.stderr)
        return 1
    finally:
        await r.aclose()
    if as_json:
        doc = {"subject_id": mask(subject_id), "entitlement": entitlement, "as_of": day.isoformat(),
               "explanations": found}
        print(json.dumps(doc, ensure_ascii=False, indent=2), file=out)
    else:
        for e in found:
            print(render(e, mask(subject_id)), file=out)
    return 0


def render(e: dict, who: str) -> str:
    """One explanation as a trace: the outcome, the last decision published, each condition."""
    app = f" application {e['application_id']}" if e["application_id"] else ""
    outcome = (f"eligible in {e['district']}" + (", priority" if e["priority"] else "")) if e["eligible"] \
        else "not eligible: " + " ".join(e["reasons"])
    lines = [f"{e['entitlement']}{app} for {who}, as of {e['as_of']}: {outcome} (basis {''.join(e['basis'])})"]
    if "application" in e:
        lines.append("  application: " + _fmt(e["application"]))
    last = e["last_decision"]
    lines.append("  last decision published: " + (
        f"{last['status']} in {last['district']}, version {last['version']}" if last else "none"))
    for c in e["conditions"]:
        if not c["checked"]:
            state = "not checked"
        elif c["reason"] is None:  # a condition that picks an alternative or the priority: never a reason
            state = "yes" if c["holds"] else "no"
        else:
            state = "holds" if c["holds"] else "fails"
        code = f" -> {c['reason']}" if c["reason"] and c["checked"] and not c["holds"] else ""
        lines.append(f"  [{state}] {c['condition']}: {c['says']}{code}")
        for name, value in c["facts"].items():
            lines += _fact(name, value)
    return "\n".join(lines)


def _fact(name: str, value) -> list[str]:
    if isinstance(value, dict) and any(isinstance(v, list) and v and isinstance(v[0], dict) for v in value.values()):
        out = [f"      {name}:"]  # e.g. the months counted and those not, one a line
        for k, items in value.items():
            if isinstance(items, list) and items and isinstance(items[0], dict):
                out.append(f"        {k}: {len(items)}")
                out += [f"          {_fmt(item)}" for item in items]
            else:
                out.append(f"        {k}: {_fmt(items)}")
        return out
    return [f"      {name}: {_fmt(value)}"]


def _fmt(v) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, list):
        return ", ".join(_fmt(x) for x in v) or "none"
    if isinstance(v, dict):
        if "parameter" in v:
            since = f"since {v['since']}" if v["since"] else "fixed"
            return f"{_fmt(v['value'])} ({v['parameter']}, {since}; {v['reference']})"
        return ", ".join(f"{k} {_fmt(x)}" for k, x in v.items())
    return str(v)
