"""``permitbus params check [DIR]``: a parameter folder read and checked as a service does at start.

For the city's policy office, before a restart (docs/policy.md, "Changing a parameter"). Prints each
parameter with its values and their dates, the value in force on D marked; exit 0 when the folder
can be used, 1 with one line per problem, each naming its file (``services/rules/params.py``).
"""

from __future__ import annotations

import datetime as dt
import pathlib
import sys

from services.rules import params


def check(directory: pathlib.Path, day: dt.date, out=None, err=None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    found, problems = params.problems(directory)
    problems += [f"parameter file {found[n].path}: no value on D = {day.isoformat()} (its first value is dated "
                 f"{found[n].dates[0].isoformat()})" for n in params.Folder(directory, found).covering(day)]
    for problem in problems:
        print(f"permitbus params check: {problem}", file=err)
    if problems:
        print(f"permitbus params check: {directory}: {len(problems)} problem{'s' * (len(problems) > 1)}; a service "
              "would refuse to start with this folder", file=err)
        return 1
    print(f"{directory}: {len(found)} parameters, all readable; values in force on D = {day.isoformat()} marked *",
          file=out)
    for name, p in sorted(found.items()):
        declared = params.DECLARED[name]
        print(f"\n{name}  ({p.unit or 'no unit'}; read on {declared.on})\n  {p.description}\n  reference: "
              f"{p.reference}", file=out)
        now = p.in_force(day).since if declared.on == "D" or day >= p.dates[0] else None
        for since, value in zip(p.dates, p.values):
            mark = "*" if since == now else " "
            print(f"  {mark} from {since.isoformat()}: {show(value, declared.kind)}", file=out)
    return 0


def show(value: object, kind: params.Kind) -> str:
    if isinstance(value, frozenset):
        known = getattr(kind, "known", None) or {}
        return " ".join(f"{v} {known[v]}" if v in known else v for v in sorted(value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
